// A small generated click log for learner tests: users and items have hidden
// 4-d preference vectors; every impression shows a random list of 5-20 items
// and the user clicks the item drawn from softmax(sharpness * u.i) over the
// list (sometimes a second one). Deterministic for a seed.
#ifndef CFREC_TESTS_LEARNER_SYNTHETIC_H_
#define CFREC_TESTS_LEARNER_SYNTHETIC_H_

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "cfrec/state/applied_event.h"

namespace cfrec::learner::testing {

struct SyntheticLog {
  std::vector<state::AppliedEvent> train;
  std::vector<state::AppliedEvent> test;  // later impressions, same users
  std::vector<std::vector<float>> user_factors, item_factors;
};

struct SyntheticOptions {
  uint32_t users = 200;
  uint32_t items = 150;
  int impressions_per_user = 12;
  int test_per_user = 2;
  int min_list = 5;
  int max_list = 20;
  double sharpness = 4.0;
  uint64_t seed = 7;
};

inline SyntheticLog MakeSyntheticLog(const SyntheticOptions& o = {}) {
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<float> normal(0, 1);
  SyntheticLog log;
  auto factors = [&](uint32_t n) {
    std::vector<std::vector<float>> f(n, std::vector<float>(4));
    for (auto& v : f) {
      for (float& x : v) x = normal(rng);
    }
    return f;
  };
  log.user_factors = factors(o.users);
  log.item_factors = factors(o.items);
  std::vector<uint32_t> all(o.items);
  std::iota(all.begin(), all.end(), 0);
  uint64_t seq = 0;
  int64_t ts = 1'700'000'000'000;
  int rounds = o.impressions_per_user + o.test_per_user;
  for (int r = 0; r < rounds; ++r) {
    for (uint32_t u = 0; u < o.users; ++u) {
      state::AppliedEvent e;
      e.seq = ++seq;
      e.user = u;
      e.ts_ms = (ts += 1000);
      int k = std::uniform_int_distribution<int>(o.min_list, o.max_list)(rng);
      std::shuffle(all.begin(), all.end(), rng);
      e.items.assign(all.begin(), all.begin() + k);
      std::vector<double> w(k);
      for (int j = 0; j < k; ++j) {
        const auto& a = log.user_factors[u];
        const auto& b = log.item_factors[e.items[j]];
        double dot = 0;
        for (int d = 0; d < 4; ++d) dot += a[d] * b[d];
        w[j] = std::exp(o.sharpness * dot / 2.0);
      }
      std::discrete_distribution<int> pick(w.begin(), w.end());
      int first = pick(rng);
      e.clicked.push_back(static_cast<uint16_t>(first));
      if (std::uniform_real_distribution<double>(0, 1)(rng) < 0.3) {
        int second = pick(rng);
        if (second != first) e.clicked.push_back(static_cast<uint16_t>(second));
      }
      std::sort(e.clicked.begin(), e.clicked.end());
      (r < o.impressions_per_user ? log.train : log.test).push_back(e);
    }
  }
  return log;
}

}  // namespace cfrec::learner::testing

#endif  // CFREC_TESTS_LEARNER_SYNTHETIC_H_
