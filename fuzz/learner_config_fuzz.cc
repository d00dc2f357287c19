// The learner's JSON config parser (learner/options.h) on arbitrary text,
// as `cfrec serve --config FILE` reads it. Besides not crashing (UBSan
// included: numbers out of a field's range must be rejected, not cast), an
// accepted config is valid, and printing it gives a config that parses to
// the same printout.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cfrec/learner/options.h"
#include "fuzz_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto options = cfrec::learner::ParseTrainerOptions(text);
  if (!options.ok()) return 0;
  FUZZ_CHECK(cfrec::learner::ValidateTrainerOptions(*options).ok());
  const std::string printed = cfrec::learner::TrainerOptionsToJson(*options);
  auto again = cfrec::learner::ParseTrainerOptions(printed);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(cfrec::learner::TrainerOptionsToJson(*again) == printed);
  return 0;
}
