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
      "ctr_30m",      "ctr_2h",      "ctr_6h",        "ctr_24h",
      "clicks_30m",   "clicks_2h",   "clicks_6h",     "clicks_24h",
      "shows_30m",    "shows_2h",    "shows_6h",      "shows_24h",
      "age",          "never_shown", "never_clicked", "since_click",
      "total_clicks", "total_ctr",   "history_users", "user_clicked",
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
}

}  // namespace cfrec::stream
