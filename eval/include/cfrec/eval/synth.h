// Synthetic interaction logs.
//
// 1. The CPR paper's generator (section 4.1.1, eq. 12). Users i and items j
//    get vectors p_i, q_j ~ N(0, I_d). With y = [p_i, q_j] (length 2d),
//      phi2(x) = max(x, 0)
//      phi1(x) = x - 0.5 if x > 0 else 0
//      phi3(x) = x + 0.5 if x < 0 else 0
//      x1 = a^T phi1(phi2(y)) + b            (a = all ones, b = 0)
//      x2 = a^T phi3(-phi2(-y)) + b
//    the exposure score is r_ij = 1 - sigmoid(x1); each of a user's lists
//    holds `list_length` distinct items, drawn one after another with
//    probability proportional to exp(r_ij) among the items not yet in the
//    list (so the first position follows exp(r_ij) / sum_k exp(r_ik)
//    exactly). A shown item is clicked by
//      linear:     s = I(sigmoid(x1) + N_y - 0.5 > 0)
//      non-linear: s = I(sigmoid(x1 + x1 * x2) + N_y - 0.5 > 0)
//    with N_y ~ N(0, noise_std^2) drawn per shown item (0 by default).
//    About x2: the paper prints phi3(phi2([-p, -q])); phi2's output is never
//    negative, so taken literally phi3 would always be 0, x2 = 0, and the
//    non-linear model would equal the linear one, which the paper's Table 1
//    contradicts. We read x2 as the mirror image of x1 on the negative
//    coordinates, sum over y_k < 0 of (y_k + 0.5), which is phi3 applied to
//    the negated output of phi2 on the negated input. docs/EVALUATION.md
//    discusses it.
//
// 2. A "MIND-like" stream for ingest and crash tests: many users and items,
//    Zipf-skewed activity and popularity, log-normal list lengths (median
//    ~24, clamped to [2, 300]) and about 4% clicks, with a history column.
//
// All generators are deterministic for a given seed and thread-compatible
// (no shared state).
#ifndef CFREC_EVAL_SYNTH_H_
#define CFREC_EVAL_SYNTH_H_

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/schemas/mind.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

enum class ResponseModel { kLinear, kNonlinear };
std::string_view ResponseModelName(ResponseModel m);
Result<ResponseModel> ParseResponseModel(std::string_view name);

struct SynthOptions {
  uint32_t num_users = 600;      // N_U. Default 600.
  uint32_t num_items = 300;      // N_I. Default 300.
  uint32_t dim = 16;             // d; the paper uses 16 and 32. Default 16.
  uint32_t lists_per_user = 25;  // Default 25.
  uint32_t list_length = 5;      // Default 5; must be <= num_items.
  ResponseModel response = ResponseModel::kLinear;  // Default linear.
  double noise_std = 0.0;  // std of N_y; the paper's noisy setting: 0.2.
  uint64_t seed = 1;       // Default 1.
  // Event time of the first list, ms since the epoch. Default
  // 2019-11-09T00:00:00Z (MIND-small's first day).
  int64_t start_ms = 1573257600000;
  // Time between consecutive lists. Lists go out in rounds: round r shows
  // every user's r-th list, users in a fresh random order each round, so
  // every user is active over the whole time range. Default 1000 ms.
  int64_t step_ms = 1000;
};

// The parameters the log was drawn from, for checks and oracle baselines.
struct SynthGroundTruth {
  SynthOptions options;
  std::vector<std::vector<double>> user_vectors;  // p_i, num_users x dim
  std::vector<std::vector<double>> item_vectors;  // q_j, num_items x dim
  // a (length 2 dim, all ones) and b (0) of eq. 12.
  std::vector<double> a;
  double b = 0;
};

struct SynthData {
  SynthGroundTruth truth;
  // One row per list: impression ids "1".., users "U1".., items "N1".. (the
  // dense index + 1), increasing timestamps, empty history.
  std::vector<MindRow> rows;
};

Result<SynthData> GenerateSynthetic(const SynthOptions& options);

// x1 and x2 of eq. 12 for one (user, item) pair. `a` has length 2 dim.
double ResponseX1(std::span<const double> p, std::span<const double> q,
                  std::span<const double> a, double b);
double ResponseX2(std::span<const double> p, std::span<const double> q,
                  std::span<const double> a, double b);
// r_ij = 1 - sigmoid(x1).
double ExposureScore(std::span<const double> p, std::span<const double> q,
                     std::span<const double> a, double b);
// The argument of sigmoid in the click rule: x1 (linear) or x1 + x1 x2.
double ResponseLogit(ResponseModel m, std::span<const double> p,
                     std::span<const double> q, std::span<const double> a,
                     double b);
// P(click) of a shown item: I(sigmoid(z) > 0.5) without noise, otherwise
// Phi((sigmoid(z) - 0.5) / noise_std).
double ClickProbability(ResponseModel m, double noise_std,
                        std::span<const double> p, std::span<const double> q,
                        std::span<const double> a, double b);

// Writes dir/behaviors.tsv and dir/ground_truth.json (vectors, a, b and the
// options), creating `dir` if needed.
Status WriteSynthetic(const SynthData& data, const std::string& dir);

// Writes rows as a behaviors.tsv file.
Status WriteMindFile(const std::vector<MindRow>& rows, const std::string& path);

struct MindLikeOptions {
  uint32_t num_users = 50000;         // Default 50,000 (MIND-small).
  uint32_t num_items = 20000;         // Default 20,000.
  uint64_t num_impressions = 200000;  // Default 200,000.
  double median_list_length = 24;     // Log-normal median. Default 24.
  double list_length_sigma = 0.9;     // Log-normal sigma. Default 0.9.
  uint32_t min_list_length = 2;       // Default 2.
  uint32_t max_list_length = 300;     // Default 300.
  // Share of shown items clicked, over the whole stream. Every list gets at
  // least one click, as in MIND, so the rate cannot fall below 1 / (mean
  // list length), about 2.8% for the default lengths. Default 0.04.
  double click_rate = 0.04;
  // Mean length of a user's history column (geometric). Default 10.
  double mean_history_length = 10;
  // Zipf exponents of user activity and item popularity. Defaults 0.8, 1.0.
  double user_zipf = 0.8;
  double item_zipf = 1.0;
  uint32_t dim = 16;  // Latent size of user/item affinity. Default 16.
  uint64_t seed = 1;  // Default 1.
  int64_t start_ms = 1573257600000;  // Default 2019-11-09T00:00:00Z.
  int64_t mean_gap_ms = 50;          // Mean time between lists. Default 50.
};

// Rows in time order; ids as in GenerateSynthetic. Clicked items are chosen
// among the shown ones with probability rising with a latent user-item
// affinity, so there is signal to learn.
Result<std::vector<MindRow>> GenerateMindLike(const MindLikeOptions& options);

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_SYNTH_H_
