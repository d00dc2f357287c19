// The generating model of a `cfrec synth` log (CPR section 4.1.1, eq. 12),
// read back from its ground_truth.json and re-indexed to a Dataset's dense
// ids: the true exposure score and the true click rule of every (user,
// item) pair. The oracle counterfactual simulator and the fidelity figures
// of `cfrec eval` read it; nothing else does.
//
// Immutable after Load; safe to share between threads.
#ifndef CFREC_EVAL_TRUTH_H_
#define CFREC_EVAL_TRUTH_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/synth.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

class TrueModel {
 public:
  // Reads `path` (written by WriteSynthetic) and maps its users "U<n>" and
  // items "N<n>" to `data`'s dense ids. Fails when the file is not a CPR
  // generator's ground truth or an id of `data` has no vector.
  static Result<std::shared_ptr<const TrueModel>> Load(const std::string& path,
                                                       const Dataset& data);
  // From vectors already in dense ids (tests).
  static std::shared_ptr<const TrueModel> FromTruth(
      const SynthGroundTruth& truth);

  uint32_t num_users() const { return static_cast<uint32_t>(users_.size()); }
  uint32_t num_items() const { return static_cast<uint32_t>(items_.size()); }
  ResponseModel response() const { return response_; }
  double noise_std() const { return noise_std_; }

  // r_ij = 1 - sigmoid(x1): the logging policy shows item j to user i with
  // weight exp(r_ij).
  double Exposure(uint32_t user, uint32_t item) const;
  // The argument of sigmoid in the click rule (x1, or x1 + x1 x2): a larger
  // value is a more likely click, so it orders any list by true preference.
  double ClickLogit(uint32_t user, uint32_t item) const;
  // P(click | shown) under the generator's noise.
  double ClickProbability(uint32_t user, uint32_t item) const;

 private:
  TrueModel() = default;
  std::vector<std::vector<double>> users_;  // by dense user id
  std::vector<std::vector<double>> items_;  // by dense item id
  std::vector<double> a_;
  double b_ = 0;
  ResponseModel response_ = ResponseModel::kNonlinear;
  double noise_std_ = 0;
};

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_TRUTH_H_
