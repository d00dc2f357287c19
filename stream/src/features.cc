#include "cfrec/stream/features.h"

#include <algorithm>
#include <cmath>

namespace cfrec::stream {
namespace {

constexpr double kMsPerHour = 3.6e6;

float LogOdds(double p) {
  p = std::clamp(p, 1e-4, 1 - 1e-4);
  return static_cast<float>(std::log(p / (1 - p)));
}

}  // namespace

std::string_view FeatureName(int feature) {
  static constexpr std::string_view kNames[kNumFeatures] = {
      "ctr_30m",      "ctr_2h",       "ctr_6h",        "ctr_24h",
      "clicks_30m",   "clicks_2h",    "clicks_6h",     "clicks_24h",
      "shows_30m",    "shows_2h",     "shows_6h",      "shows_24h",
      "age",          "never_shown",  "never_clicked", "since_click",
      "total_clicks", "total_ctr",    "history_users", "age_lt_1h",
      "age_1h_3h",    "age_3h_6h",    "age_6h_12h",    "age_12h_24h",
      "age_24h_48h",  "age_ge_48h",   "shows_6h_0",    "shows_6h_1",
      "shows_6h_2_3", "shows_6h_4_7", "shows_6h_8_15", "shows_6h_ge_16",
      "clicks_6h_0",  "clicks_6h_1",  "clicks_6h_2_3", "clicks_6h_ge_4",
      "user_clicked", "shown_1",      "shown_2",       "shown_ge_3",
      "ranker"};
  return feature >= 0 && feature < kNumFeatures ? kNames[feature] : "?";
}

void ItemFeatures(const ItemCounts* counts, const ItemCounts& global,
                  int64_t now_ms, std::span<float, kNumItemFeatures> out) {
  const ItemCounts g = global.At(now_ms);
  const ItemCounts c = counts != nullptr ? counts->At(now_ms) : ItemCounts{};
  for (int h = 0; h < kHalfLives; ++h) {
    const double prior = (double(g.clicks[h]) + 1) / (double(g.shows[h]) + 20);
    const double ctr = (double(c.clicks[h]) + kPriorShows * prior) /
                       (double(c.shows[h]) + kPriorShows);
    out[kCtr0 + h] = LogOdds(ctr);
    out[kClicks0 + h] = std::log1p(std::max(0.0f, c.clicks[h]));
    out[kShows0 + h] = std::log1p(std::max(0.0f, c.shows[h]));
  }
  const bool shown = c.first_shown_ms >= 0;
  out[kAge] =
      shown ? static_cast<float>(std::log1p(
                  double(std::max<int64_t>(0, now_ms - c.first_shown_ms)) /
                  kMsPerHour))
            : 0.0f;
  out[kNeverShown] = shown ? 0.0f : 1.0f;
  const bool clicked = c.last_clicked_ms >= 0;
  out[kNeverClicked] = clicked ? 0.0f : 1.0f;
  out[kSinceClick] =
      clicked ? static_cast<float>(std::log1p(
                    double(std::max<int64_t>(0, now_ms - c.last_clicked_ms)) /
                    kMsPerHour))
              : 0.0f;
  out[kTotalClicks] = std::log1p(c.total_clicks);
  out[kTotalCtr] = static_cast<float>(
      std::log((double(c.total_clicks) + 0.1) / (double(c.total_shows) + 3)));
  out[kHistoryUsers] = std::log1p(c.history_users);
  // Bins.
  auto one_hot = [&](int first, int n, int which) {
    for (int b = 0; b < n; ++b) out[first + b] = b == which ? 1.0f : 0.0f;
  };
  int age_bin = -1;  // none for a never-shown item
  if (shown) {
    static constexpr double kAgeEdges[] = {1, 3, 6, 12, 24, 48};
    const double hours =
        double(std::max<int64_t>(0, now_ms - c.first_shown_ms)) / kMsPerHour;
    age_bin = 0;
    while (age_bin < 6 && hours >= kAgeEdges[age_bin]) ++age_bin;
  }
  one_hot(kAgeBin0, 7, age_bin);
  auto bin = [](double v, std::span<const double> edges) {
    int b = 0;
    while (b < static_cast<int>(edges.size()) && v >= edges[b]) ++b;
    return b;
  };
  static constexpr double kShowEdges[] = {0.5, 1.5, 3.5, 7.5, 15.5};
  static constexpr double kClickEdges[] = {0.5, 1.5, 3.5};
  one_hot(kShowsBin0, 6, bin(c.shows[2], kShowEdges));
  one_hot(kClicksBin0, 4, bin(c.clicks[2], kClickEdges));
}

}  // namespace cfrec::stream
