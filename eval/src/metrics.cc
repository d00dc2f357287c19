#include "cfrec/eval/metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <vector>

namespace cfrec::eval {
namespace {

// NaN would break the strict weak order of the sort; it ranks last.
float Sanitize(float score) {
  return std::isnan(score) ? -std::numeric_limits<float>::infinity() : score;
}

double Discount(size_t rank) {  // rank is 1-based
  return 1.0 / std::log2(static_cast<double>(rank) + 1.0);
}

}  // namespace

HeldOutMetrics ScoreHeldOut(float positive_score,
                            std::span<const float> negative_scores, int k) {
  const float pos = Sanitize(positive_score);
  size_t greater = 0;
  size_t tied = 0;
  for (float raw : negative_scores) {
    const float s = Sanitize(raw);
    if (s > pos) {
      ++greater;
    } else if (s == pos) {
      ++tied;
    }
  }
  HeldOutMetrics m;
  // Under a random order of the t ties, the item's rank is 1 + greater + u
  // with u uniform on {0, ..., t}.
  const double weight = 1.0 / static_cast<double>(tied + 1);
  for (size_t u = 0; u <= tied; ++u) {
    const size_t rank = 1 + greater + u;
    if (rank <= static_cast<size_t>(std::max(k, 0))) {
      m.hr += weight;
      m.ndcg += weight * Discount(rank);
    }
  }
  m.rank = 1.0 + static_cast<double>(greater) + 0.5 * static_cast<double>(tied);
  const size_t n = negative_scores.size();
  m.auc = n == 0 ? 1.0
                 : (static_cast<double>(n - greater - tied) + 0.5 * tied) /
                       static_cast<double>(n);
  return m;
}

ImpressionMetrics ScoreImpression(std::span<const float> scores,
                                  std::span<const uint8_t> labels) {
  ImpressionMetrics m;
  const size_t n = std::min(scores.size(), labels.size());
  size_t positives = 0;
  for (size_t i = 0; i < n; ++i) positives += labels[i] != 0 ? 1 : 0;
  const size_t negatives = n - positives;
  if (positives == 0 || negatives == 0) return m;
  m.valid = true;

  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return Sanitize(scores[a]) > Sanitize(scores[b]);
  });

  // Walk groups of tied scores from the top. A group at ranks [s+1, s+g]
  // holding c clicks puts an expected c/g clicks on each of its ranks, so
  // the expected MRR and DCG are sums of c/g times the rank's weight.
  double rr_sum = 0;
  double dcg5 = 0;
  double dcg10 = 0;
  double auc_pairs = 0;        // pairs (click, non-click) ordered right
  size_t negatives_above = 0;  // non-clicks in earlier groups
  size_t start = 0;
  while (start < n) {
    size_t end = start + 1;
    const float s = Sanitize(scores[order[start]]);
    while (end < n && Sanitize(scores[order[end]]) == s) ++end;
    const size_t group = end - start;
    size_t clicks = 0;
    for (size_t i = start; i < end; ++i) clicks += labels[order[i]] != 0;
    const size_t non_clicks = group - clicks;
    const double share = static_cast<double>(clicks) / group;
    for (size_t rank = start + 1; rank <= end; ++rank) {
      rr_sum += share / static_cast<double>(rank);
      if (rank <= 5) dcg5 += share * Discount(rank);
      if (rank <= 10) dcg10 += share * Discount(rank);
    }
    // Each click here beats every non-click below and ties those beside it.
    const size_t negatives_below = negatives - negatives_above - non_clicks;
    auc_pairs += static_cast<double>(clicks) *
                 (static_cast<double>(negatives_below) + 0.5 * non_clicks);
    negatives_above += non_clicks;
    start = end;
  }
  auto ideal = [&](size_t k) {
    double sum = 0;
    for (size_t rank = 1; rank <= std::min(k, positives); ++rank) {
      sum += Discount(rank);
    }
    return sum;
  };
  m.auc = auc_pairs / (static_cast<double>(positives) * negatives);
  m.mrr = rr_sum / static_cast<double>(positives);
  m.ndcg5 = dcg5 / ideal(5);
  m.ndcg10 = dcg10 / ideal(10);
  return m;
}

}  // namespace cfrec::eval
