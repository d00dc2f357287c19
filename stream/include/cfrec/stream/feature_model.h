// FeatureModel: a linear score over the stream features, learned online on
// the impression lists themselves: each click against the items shown but
// not clicked in the same list (a softmax over the list, the MIND task).
// Training is AdaGrad with a small L2 term; weights start at zero, so an
// untrained model ties every item and learns from the first clicked list.
//
// Thread-safety: none; one owner.
#ifndef CFREC_STREAM_FEATURE_MODEL_H_
#define CFREC_STREAM_FEATURE_MODEL_H_

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "cfrec/schemas/status.h"
#include "cfrec/stream/features.h"

namespace cfrec::stream {

struct FeatureModelOptions {
  double learning_rate = 0.1;  // AdaGrad step. Default 0.1.
  double l2 = 1e-4;            // weight decay per step. Default 1e-4.
};

using Weights = std::array<float, kNumFeatures>;

class FeatureModel {
 public:
  explicit FeatureModel(FeatureModelOptions options = {}) : options_(options) {
    weights_.fill(0.0f);
    grad_sq_.fill(1e-6);
  }

  float Score(const FeatureRow& row) const;
  // One step on a list: `rows` are its items' features at the moment it was
  // shown; `clicked` marks the clicks. The softmax of each click runs over
  // itself and the unclicked items. Lists without a click or without a
  // non-click teach nothing and are skipped; returns whether it trained.
  bool TrainList(std::span<const FeatureRow> rows,
                 std::span<const uint8_t> clicked);
  // The same for one click at position `pos` of a list whose clicks are
  // still arriving: `clicked` marks those known so far (pos included).
  bool TrainClick(std::span<const FeatureRow> rows,
                  std::span<const uint8_t> clicked, size_t pos);

  const Weights& weights() const { return weights_; }
  uint64_t lists_trained() const { return steps_; }
  double loss() const { return loss_ema_; }  // EMA of the list log-loss

  void AppendTo(std::string* out) const;
  Status ReadFrom(std::string_view* in);

 private:
  // Accumulates the softmax gradient of one click; returns its log-loss.
  double AddClickGradient(std::span<const FeatureRow> rows,
                          std::span<const uint8_t> clicked, size_t pos,
                          std::array<double, kNumFeatures>& grad) const;
  void Step(const std::array<double, kNumFeatures>& grad, int clicks,
            double loss);

  FeatureModelOptions options_;
  Weights weights_;
  std::array<double, kNumFeatures> grad_sq_;
  uint64_t steps_ = 0;
  double loss_ema_ = 0;
};

}  // namespace cfrec::stream

#endif  // CFREC_STREAM_FEATURE_MODEL_H_
