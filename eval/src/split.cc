#include "cfrec/eval/split.h"

#include <algorithm>
#include <cmath>

#include "random.h"

namespace cfrec::eval {
namespace {

struct PositiveEvent {
  uint32_t item;
  int64_t impression;  // index into Dataset::impressions(), -1 for history
};

// Draws up to `count` distinct items outside the sorted `excluded` set.
std::vector<uint32_t> SampleNegatives(uint32_t num_items,
                                      const std::vector<uint32_t>& excluded,
                                      uint32_t count, uint64_t seed) {
  std::vector<uint32_t> out;
  const uint32_t available = num_items - static_cast<uint32_t>(excluded.size());
  if (available == 0 || count == 0) return out;
  Rng rng(seed);
  auto is_excluded = [&](uint32_t item) {
    return std::binary_search(excluded.begin(), excluded.end(), item);
  };
  if (count >= available || available < 4 * count) {
    // Few candidates: a partial Fisher-Yates shuffle of all of them.
    std::vector<uint32_t> pool;
    pool.reserve(available);
    for (uint32_t i = 0; i < num_items; ++i) {
      if (!is_excluded(i)) pool.push_back(i);
    }
    const uint32_t take = std::min(count, available);
    for (uint32_t i = 0; i < take; ++i) {
      const uint64_t j = i + rng.Below(pool.size() - i);
      std::swap(pool[i], pool[j]);
    }
    pool.resize(take);
    return pool;
  }
  // Many candidates: rejection sampling, expected < 4/3 draws per item.
  while (out.size() < count) {
    const uint32_t item = static_cast<uint32_t>(rng.Below(num_items));
    if (is_excluded(item)) continue;
    if (std::find(out.begin(), out.end(), item) != out.end()) continue;
    out.push_back(item);
  }
  return out;
}

std::vector<Interaction> HistoryPositives(const Dataset& data, uint32_t user) {
  std::vector<Interaction> out;
  for (uint32_t item : data.histories()[user]) {
    out.push_back({user, item, kHistoryTimestamp});
  }
  return out;
}

void AppendClicks(const Impression& imp, std::vector<Interaction>* out) {
  for (size_t i = 0; i < imp.items.size(); ++i) {
    if (imp.clicked[i]) out->push_back({imp.user, imp.items[i], imp.ts_ms});
  }
}

// Time order with history first; stable so that equal times keep log order.
void SortByTime(std::vector<Interaction>* positives) {
  std::stable_sort(positives->begin(), positives->end(),
                   [](const Interaction& a, const Interaction& b) {
                     return a.ts_ms < b.ts_ms;
                   });
}

}  // namespace

Result<LeaveOneOutSplit> SplitLeaveOneOut(const Dataset& data,
                                          const LeaveOneOutOptions& options) {
  const uint32_t n_users = data.num_users();
  const std::vector<Impression>& imps = data.impressions();
  std::vector<std::vector<PositiveEvent>> events(n_users);
  for (uint32_t u = 0; u < n_users; ++u) {
    for (uint32_t item : data.histories()[u]) events[u].push_back({item, -1});
  }
  for (size_t k = 0; k < imps.size(); ++k) {
    for (size_t i = 0; i < imps[k].items.size(); ++i) {
      if (imps[k].clicked[i]) {
        events[imps[k].user].push_back(
            {imps[k].items[i], static_cast<int64_t>(k)});
      }
    }
  }

  LeaveOneOutSplit split;
  split.train.num_users = n_users;
  split.train.num_items = data.num_items();
  split.interacted.resize(n_users);
  // Per user: the held-out items and the first impression index no longer
  // in training (imps.size() when the user keeps everything).
  struct Cut {
    bool held_out = false;
    uint32_t test = 0;
    uint32_t validation = 0;
    size_t first_dropped = 0;
  };
  std::vector<Cut> cuts(n_users);
  for (uint32_t u = 0; u < n_users; ++u) {
    std::vector<uint32_t>& seen = split.interacted[u];
    for (const PositiveEvent& e : events[u]) seen.push_back(e.item);
    std::sort(seen.begin(), seen.end());
    seen.erase(std::unique(seen.begin(), seen.end()), seen.end());
    Cut& cut = cuts[u];
    cut.first_dropped = imps.size();
    if (seen.size() < std::max<uint32_t>(options.min_distinct_positives, 2)) {
      continue;
    }
    cut.held_out = true;
    cut.test = events[u].back().item;
    for (auto it = events[u].rbegin(); it != events[u].rend(); ++it) {
      if (it->item != cut.test) {
        cut.validation = it->item;
        cut.first_dropped =
            it->impression < 0 ? 0 : static_cast<size_t>(it->impression);
        break;
      }
    }
  }

  // Training impressions and positives: history first, then time order.
  for (uint32_t u = 0; u < n_users; ++u) {
    for (const Interaction& x : HistoryPositives(data, u)) {
      const Cut& cut = cuts[u];
      if (cut.held_out && (x.item == cut.test || x.item == cut.validation)) {
        continue;
      }
      split.train.positives.push_back(x);
    }
  }
  for (size_t k = 0; k < imps.size(); ++k) {
    const Cut& cut = cuts[imps[k].user];
    if (k >= cut.first_dropped) continue;
    Impression kept;
    kept.user = imps[k].user;
    kept.ts_ms = imps[k].ts_ms;
    for (size_t i = 0; i < imps[k].items.size(); ++i) {
      const uint32_t item = imps[k].items[i];
      if (cut.held_out && (item == cut.test || item == cut.validation)) {
        continue;
      }
      kept.items.push_back(item);
      kept.clicked.push_back(imps[k].clicked[i]);
    }
    if (kept.items.empty()) continue;
    AppendClicks(kept, &split.train.positives);
    split.train.impressions.push_back(std::move(kept));
  }
  SortByTime(&split.train.positives);

  for (uint32_t u = 0; u < n_users; ++u) {
    const Cut& cut = cuts[u];
    if (!cut.held_out) continue;
    const uint64_t user_seed = MixSeed(options.seed, u);
    split.validation.push_back(
        {u, cut.validation,
         SampleNegatives(data.num_items(), split.interacted[u],
                         options.num_negatives, MixSeed(user_seed, 1))});
    split.test.push_back(
        {u, cut.test,
         SampleNegatives(data.num_items(), split.interacted[u],
                         options.num_negatives, MixSeed(user_seed, 2))});
  }
  return split;
}

std::vector<uint32_t> NonInteracted(const LeaveOneOutSplit& split,
                                    uint32_t num_items, uint32_t user) {
  std::vector<uint32_t> out;
  const std::vector<uint32_t>& seen = split.interacted[user];
  out.reserve(num_items - seen.size());
  size_t s = 0;
  for (uint32_t i = 0; i < num_items; ++i) {
    while (s < seen.size() && seen[s] < i) ++s;
    if (s < seen.size() && seen[s] == i) continue;
    out.push_back(i);
  }
  return out;
}

Result<TimeSplit> SplitByTime(const Dataset& data,
                              const TimeSplitOptions& options) {
  if (!(options.test_fraction > 0 && options.test_fraction < 1) ||
      !(options.validation_fraction >= 0) ||
      options.test_fraction + options.validation_fraction >= 1) {
    return Status::InvalidArgument(
        "time split: need 0 < test_fraction, 0 <= validation_fraction, "
        "test_fraction + validation_fraction < 1");
  }
  const std::vector<Impression>& imps = data.impressions();
  const size_t n = imps.size();
  if (n < 3) return Status::InvalidArgument("time split: too few impressions");
  auto ts_at = [&](double fraction) {
    size_t index = static_cast<size_t>(std::floor(n * fraction));
    return imps[std::min(index, n - 1)].ts_ms;
  };
  TimeSplit split;
  split.test_start_ms = ts_at(1.0 - options.test_fraction);
  split.validation_start_ms =
      options.validation_fraction > 0
          ? ts_at(1.0 - options.test_fraction - options.validation_fraction)
          : split.test_start_ms;
  split.train.num_users = data.num_users();
  split.train.num_items = data.num_items();
  for (uint32_t u = 0; u < data.num_users(); ++u) {
    for (const Interaction& x : HistoryPositives(data, u)) {
      split.train.positives.push_back(x);
    }
  }
  for (const Impression& imp : imps) {
    if (imp.ts_ms >= split.test_start_ms) {
      split.test.push_back(imp);
    } else if (imp.ts_ms >= split.validation_start_ms) {
      split.validation.push_back(imp);
    } else {
      AppendClicks(imp, &split.train.positives);
      split.train.impressions.push_back(imp);
    }
  }
  if (split.train.impressions.empty() || split.test.empty()) {
    return Status::InvalidArgument(
        "time split: the log's timestamps leave an empty train or test part");
  }
  return split;
}

std::vector<Window> PrequentialWindows(const Dataset& data,
                                       uint32_t num_windows) {
  std::vector<Window> out;
  const std::vector<Impression>& imps = data.impressions();
  const size_t n = imps.size();
  if (n == 0 || num_windows == 0) return out;
  size_t begin = 0;
  for (uint32_t w = 1; w <= num_windows && begin < n; ++w) {
    size_t end = w == num_windows ? n : (n * w) / num_windows;
    end = std::max(end, begin + 1);
    while (end < n && imps[end].ts_ms == imps[end - 1].ts_ms) ++end;
    out.push_back({begin, end, imps[begin].ts_ms, imps[end - 1].ts_ms});
    begin = end;
  }
  return out;
}

TrainData WindowData(const Dataset& data, const Window& window,
                     std::vector<uint8_t>* users_seen) {
  TrainData out;
  out.num_users = data.num_users();
  out.num_items = data.num_items();
  users_seen->resize(data.num_users(), 0);
  for (size_t k = window.begin; k < window.end; ++k) {
    const Impression& imp = data.impressions()[k];
    if (!(*users_seen)[imp.user]) {
      (*users_seen)[imp.user] = 1;
      for (const Interaction& x : HistoryPositives(data, imp.user)) {
        out.positives.push_back(x);
      }
    }
    AppendClicks(imp, &out.positives);
    out.impressions.push_back(imp);
  }
  SortByTime(&out.positives);
  return out;
}

Coldness ColdnessOf(uint32_t train_interactions) {
  if (train_interactions < 5) return Coldness::kLow;
  if (train_interactions <= 15) return Coldness::kMiddle;
  return Coldness::kHigh;
}

std::string_view ColdnessName(Coldness c) {
  switch (c) {
    case Coldness::kLow:
      return "low";
    case Coldness::kMiddle:
      return "middle";
    case Coldness::kHigh:
      return "high";
  }
  return "?";
}

std::vector<uint32_t> ItemInteractionCounts(const TrainData& train) {
  std::vector<uint32_t> counts(train.num_items, 0);
  for (const Interaction& x : train.positives) {
    if (x.item < counts.size()) ++counts[x.item];
  }
  return counts;
}

}  // namespace cfrec::eval
