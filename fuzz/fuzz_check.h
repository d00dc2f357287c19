// FUZZ_CHECK: a property a fuzz target asserts on its input. A failure
// prints what broke and aborts, which libFuzzer reports as a crash (and
// keeps the input).
#ifndef CFREC_FUZZ_FUZZ_CHECK_H_
#define CFREC_FUZZ_FUZZ_CHECK_H_

#include <cstdio>
#include <cstdlib>

#define FUZZ_CHECK(cond)                                               \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: FUZZ_CHECK failed: %s\n", __FILE__, \
                   __LINE__, #cond);                                   \
      std::abort();                                                    \
    }                                                                  \
  } while (0)

#endif  // CFREC_FUZZ_FUZZ_CHECK_H_
