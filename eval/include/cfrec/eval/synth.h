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
// 3. A news stream (`--mode news`) for the stream features: items are born
//    over time, peak and fade; a few trend; users have topics and most are
//    seen once. See NewsOptions.
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

// The news stream. Items are born as a Poisson process (`items_per_hour`),
// from `warmup_hours` before the first list until the last one, and get ids
// "N1".. in order of birth. Item j has a topic (Zipf-skewed topic
// popularity), a quality q_j ~ N(0, quality_std^2), a half-life h_j
// (log-normal around `half_life_hours`) and, with probability
// `trending_share`, a trending flag. Its appeal at age a (hours) is
//   life_j(a) = (1 - exp(-a / rise_hours)) * 2^(-a / h_j),   0 before birth,
// and a user u shown it at that moment clicks with probability
//   sigmoid(base_logit + q_j + trending_boost [j trending]
//           + topic_boost [topic_j in topics_u] + log life_j(a)),
// independently per shown item. A list without a click is drawn again (items
// and clicks): MIND logs only lists with a click.
//
// Users have 1..max_user_topics topics (by topic popularity). A share
// `return_share` of them return: they get 1 + floor(Pareto(return_tail))
// lists (at least 2, heavy-tailed, capped at max_user_impressions) and a
// history column of items born before the stream, of their topics (mean
// length `mean_history_length`); the others are seen once, without history.
// Users are made until their lists add up to `num_impressions`; each list
// goes out at a uniform moment (whole seconds, as in MIND; several lists may
// share one) of the `days`-long stream.
//
// A list holds distinct items born before its moment: each slot is, with
// probability `stale_share`, any such item (uniformly), else an item drawn
// with weight 2^(-age / shelf_hours), so fresh items dominate. Exposure does
// not depend on the user or on appeal; only clicks do. List lengths are
// log-normal as in GenerateMindLike.
struct NewsOptions {
  uint64_t num_impressions = 100000;  // Lists. Default 100,000.
  double days = 6;                    // Stream length. Default 6.
  double items_per_hour = 6;          // Item births. Default 6 per hour.
  // Items are born from this long before the first list, so the first
  // lists and the histories have items. Default 48 h.
  double warmup_hours = 48;
  uint32_t num_topics = 15;      // Default 15 (MIND has 17 categories).
  double topic_zipf = 0.7;       // Skew of topic popularity. Default 0.7.
  uint32_t max_user_topics = 3;  // A user has 1..this many. Default 3.
  double topic_boost = 1.5;      // Click log-odds on the user's topics.
  double trending_share = 0.03;  // Share of trending items. Default 0.03.
  double trending_boost = 2.0;   // Click log-odds of trending. Default 2.
  double quality_std = 0.5;      // Std of q_j. Default 0.5.
  double base_logit = -3.0;      // Default -3 (about 5% clicks).
  double half_life_hours = 6;    // Median appeal half-life. Default 6 h.
  double half_life_sigma = 0.5;  // Its log-normal sigma. Default 0.5.
  double rise_hours = 0.5;       // Time constant of the rise. Default 0.5 h.
  double shelf_hours = 8;        // Half-life of exposure. Default 8 h.
  double stale_share = 0.1;      // Slots drawn from any born item. 0.1.
  double return_share = 0.3;     // Share of users who return. Default 0.3.
  double return_tail = 1.5;      // Pareto exponent of their lists. 1.5.
  uint32_t max_user_impressions = 300;  // Default 300.
  double median_list_length = 20;       // Log-normal median. Default 20.
  double list_length_sigma = 0.8;       // Default 0.8.
  uint32_t min_list_length = 2;         // Default 2.
  uint32_t max_list_length = 300;       // Default 300.
  double mean_history_length = 5;       // Returning users' history. Default 5.
  uint64_t seed = 1;                    // Default 1.
  int64_t start_ms = 1573257600000;     // Default 2019-11-09T00:00:00Z.
};

struct NewsItem {
  int64_t birth_ms = 0;
  uint32_t topic = 0;
  bool trending = false;
  double half_life_hours = 0;
  double quality = 0;  // q_j, in click log-odds
};

struct NewsUser {
  std::vector<uint32_t> topics;   // sorted
  std::vector<uint32_t> history;  // item indices, sorted
  uint32_t impressions = 0;       // lists in the stream
  bool returning = false;
};

struct NewsData {
  NewsOptions options;
  std::vector<NewsItem> items;  // index j is "N<j+1>", in order of birth
  std::vector<NewsUser> users;  // index i is "U<i+1>"
  std::vector<MindRow> rows;    // in time order, whole seconds
};

// life_j(a) at `now_ms` (0 before birth).
double NewsLifetime(const NewsItem& item, double rise_hours, int64_t now_ms);
// P(click) of `item` shown to `user` at `now_ms`, before the redraw of lists
// without a click.
double NewsClickProbability(const NewsOptions& options, const NewsItem& item,
                            const NewsUser& user, int64_t now_ms);

Result<NewsData> GenerateNews(const NewsOptions& options);

// Writes dir/behaviors.tsv and dir/ground_truth.json (the options, every
// item's birth, topic, trending flag, half-life and quality, and every
// user's topics), creating `dir` if needed.
Status WriteNews(const NewsData& data, const std::string& dir);

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_SYNTH_H_
