// Ranking metrics of the two evaluation protocols.
//
// Ties. A ranker that gives several candidates the same score has not ordered
// them, so every metric here is its expected value when tied candidates are
// put in a uniformly random order. A constant scorer therefore scores chance
// level (HR@k = k/n, AUC = 0.5) instead of whatever a sort happens to do. For
// AUC this is the usual "ties count half" rule (the Mann-Whitney statistic).
// MIND's evaluate script sorts with numpy's argsort, whose order of ties is
// unspecified; without ties the values are identical to that script's.
//
// All functions are pure and thread-safe.
#ifndef CFREC_EVAL_METRICS_H_
#define CFREC_EVAL_METRICS_H_

#include <cstddef>
#include <cstdint>
#include <span>

namespace cfrec::eval {

// Leave-one-out metrics of one held-out item ranked against negatives.
struct HeldOutMetrics {
  double hr = 0;    // HR@k: probability that the item lands in the top k
  double ndcg = 0;  // NDCG@k with one relevant item: E[1/log2(rank+1)], rank<=k
  double auc = 0;   // share of negatives scored below it, ties count half
  double rank = 0;  // expected 1-based rank among the 1 + negatives candidates
};

// Scores one held-out item against `negative_scores` (any order). With no
// negatives the item ranks first: hr = ndcg = auc = 1.
HeldOutMetrics ScoreHeldOut(float positive_score,
                            std::span<const float> negative_scores, int k);

// Metrics of one impression list as MIND's evaluate script defines them:
// per-impression AUC, MRR = sum(y_i / rank_i) / sum(y_i), and nDCG@k with
// gain 2^y - 1 and discount log2(rank + 1), normalised by the ideal order.
struct ImpressionMetrics {
  // False when the list has no click or no non-click; such a list has no
  // defined AUC and is skipped by the averages (MIND's script would fail).
  bool valid = false;
  double auc = 0;
  double mrr = 0;
  double ndcg5 = 0;
  double ndcg10 = 0;
};

// `scores` and `labels` are parallel; labels are 0 or 1.
ImpressionMetrics ScoreImpression(std::span<const float> scores,
                                  std::span<const uint8_t> labels);

// Mean of a metric over many evaluations, with a count. Not thread-safe.
class Mean {
 public:
  void Add(double value) {
    sum_ += value;
    ++count_;
  }
  void Merge(const Mean& other) {
    sum_ += other.sum_;
    count_ += other.count_;
  }
  double value() const { return count_ == 0 ? 0.0 : sum_ / count_; }
  size_t count() const { return count_; }

 private:
  double sum_ = 0;
  size_t count_ = 0;
};

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_METRICS_H_
