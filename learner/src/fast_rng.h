// FastRng: a small, fast generator (xoshiro256**, seeded through
// SplitMix64) with Lemire's bounded draw (one multiply, a rejection only
// when the draw falls in the short biased range), for the sampling loops of
// training, where std::mt19937_64 and std::uniform_int_distribution (a
// division per draw) cost more than the work they feed.
//
// Streams are derived from (seed, stream): the learner draws one seed per
// round from its checkpointed generator and gives every fixed chunk of the
// round its own stream, so the draws do not depend on how many threads
// build the chunks.
//
// Thread-safety: none; one generator per thread or chunk.
#ifndef CFREC_LEARNER_SRC_FAST_RNG_H_
#define CFREC_LEARNER_SRC_FAST_RNG_H_

#include <cstdint>

namespace cfrec::learner {

// SplitMix64's output function: a bijective mix of 64 bits.
inline uint64_t Mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class FastRng {
 public:
  // Stream `stream` of `seed`: streams of one seed are independent.
  FastRng(uint64_t seed, uint64_t stream) {
    uint64_t x = Mix64(seed) ^ Mix64(stream + 0x9e3779b97f4a7c15ULL);
    for (uint64_t& word : s_) {
      x += 0x9e3779b97f4a7c15ULL;
      word = Mix64(x);
    }
  }

  uint64_t Next() {
    const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

  // Uniform in [0, range) for range >= 1 (Lemire, "Fast random integer
  // generation in an interval", 2019): unbiased.
  uint64_t Below(uint64_t range) {
    __uint128_t m = static_cast<__uint128_t>(Next()) * range;
    uint64_t low = static_cast<uint64_t>(m);
    if (low < range) {
      const uint64_t threshold = (0 - range) % range;
      while (low < threshold) {
        m = static_cast<__uint128_t>(Next()) * range;
        low = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_FAST_RNG_H_
