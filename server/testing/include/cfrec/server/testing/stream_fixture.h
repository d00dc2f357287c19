// A stream scorer as a snapshot of `cfrec serve` would carry it, learned
// from generated lists: for serving benchmarks and load tests.
#ifndef CFREC_SERVER_TESTING_STREAM_FIXTURE_H_
#define CFREC_SERVER_TESTING_STREAM_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "cfrec/stream/scorer.h"
#include "cfrec/stream/stream_model.h"

namespace cfrec::server::testing {

// `lists` lists of 24 of `items` items, drawn with a popularity skew, shown
// to random users of `users`, one list a second of event time, clicked at a
// per-item rate. Deterministic for a seed.
inline std::shared_ptr<const stream::StreamScorer> MakeGeneratedStreamScorer(
    uint32_t items, uint32_t users, size_t lists, uint32_t seed) {
  stream::StreamModel model;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> unit(0, 1);
  std::vector<uint32_t> list(24);
  std::vector<uint16_t> clicked;
  for (size_t n = 0; n < lists && items > 0 && users > 0; ++n) {
    for (uint32_t& i : list) {
      i = static_cast<uint32_t>(items * unit(rng) * unit(rng));  // skewed
    }
    clicked.clear();
    for (uint16_t k = 0; k < list.size(); ++k) {
      if (unit(rng) < 0.02 + 0.08 * double(list[k] % 7) / 6) {
        clicked.push_back(k);
      }
    }
    model.OnImpression(static_cast<uint32_t>(rng() % users),
                       static_cast<int64_t>(n) * 1000, list, clicked, {}, {});
  }
  return model.MakeScorer();
}

}  // namespace cfrec::server::testing

#endif  // CFREC_SERVER_TESTING_STREAM_FIXTURE_H_
