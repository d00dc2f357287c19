// QuantizedPool: an int8 copy of the candidate matrix for a first,
// approximate pass of retrieval, with a guaranteed bound on the error of
// every approximate dot product.
//
// Each item vector v is stored as q = round(v / s) with s = max|v| / 127;
// the user vector u of a request as 12-bit codes c = round(u / t) with
// t = max|u| / 2047. The integer sum sum(c * q) is exact, and by
// Cauchy-Schwarz
//   |dot(u, v) - t * s * sum(c * q)|  <=  |u|_2 * |v - s q|_2
//                                       + |u - t c|_2 * |s q|_2
// (the first term from rounding v, the second from rounding u), plus the
// rounding of the float dot product itself (at most dim * 2^-23 *
// |u|_2 * |v|_2), all widened by 1%. Bounds() gives lo <= dot(u, v) <= hi
// for every item, where dot is the float dot product CandidateIndex::DotAll
// computes. Retrieval keeps the items whose hi reaches the k-th largest lo
// (Reachable) and scores only those in float: the exact top k is always
// among them.
//
// Layout for vpdpbusd (AVX-512 VNNI): per block of 16 items, per quad of
// dimensions, 16 x 4 codes stored as q + 128 in [1, 255] (one 512-bit
// load, the unsigned operand). The user's 12-bit codes are split as
// c = 32 h + l with h in [-64, 64] and l in [-16, 15], both signed bytes,
// so sum(c q) = 32 sum((q + 128) h) + sum((q + 128) l) - 128 sum(c): two
// vpdpbusd per quad and block, no widening. AVX2 (vpmaddwd) widens the
// same bytes to int16 and multiplies them with the codes in pairs.
//
// Immutable after Build; thread-safe to share.
#ifndef CFREC_SERVER_SRC_QUANTIZED_POOL_H_
#define CFREC_SERVER_SRC_QUANTIZED_POOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace cfrec::server {

class QuantizedPool {
 public:
  // Items per block of the int8 layout.
  static constexpr size_t kBlock = 16;
  // Items per block of the float matrix Build() reads.
  static constexpr size_t kFloatBlock = 8;

  // The integer sums and bounds of Reachable(), each giving the same values.
  enum class Kernel { kPortable, kAvx2, kAvx512Vnni };
  static bool Supported(Kernel kernel);

  // From a block matrix as CandidateIndex lays it out ([block][d][8]
  // floats, `num_float_blocks` blocks) with `n` items. Null when a value is
  // not finite (the exact scan serves such a pool).
  static std::unique_ptr<const QuantizedPool> Build(
      std::span<const float> blocks, size_t num_float_blocks, int dim,
      size_t n);

  // A user vector (at least dim() floats) prepared for Bounds(). `ok` is
  // false when the vector or the bound is not finite: use the exact scan.
  struct Query {
    bool ok = false;
    std::vector<uint32_t> codes;  // per pair of dims: two int16 codes
    // Per quad of dims: the four h (high) and the four l (low) parts of the
    // codes as signed bytes (c = 32 h + l).
    std::vector<uint32_t> high, low;
    int32_t offset = 0;  // 128 * sum(c): what the stored q + 128 adds
    float t = 0;         // the user's step
    float norm = 0;      // |u|_2
    float residual = 0;  // |u - t c|_2
  };
  Query Prepare(std::span<const float> user) const;

  // lo[i] <= dot(user, item i) <= hi[i] for every pool position; positions
  // at or past n() (the last block's padding) get -infinity. `lo` and `hi`
  // hold padded_size() floats. Portable code: the reference of Reachable().
  void Bounds(const Query& query, float* lo, float* hi) const;

  // Per-thread buffers of Reachable(), reused between calls.
  struct Scratch {
    struct Entry {
      float lo, hi;
      uint32_t pos;
    };
    std::vector<Entry> entries;
    std::vector<float> values;
  };
  // Replaces `kept` with every position i < n() (ascending) whose hi reaches
  // the k-th largest lo over the pool (of Bounds()' lo and hi), found in one
  // pass that computes the bounds block by
  // block and keeps only those whose hi reaches a rising threshold (no
  // array of the pool's size is written). Requires 1 <= k <= n().
  void Reachable(const Query& query, size_t k, std::vector<uint32_t>& kept,
                 Scratch& scratch) const {
    Reachable(query, k, kept, scratch, kernel_);
  }
  // The same with a given kernel (Supported() must be true), for tests.
  void Reachable(const Query& query, size_t k, std::vector<uint32_t>& kept,
                 Scratch& scratch, Kernel kernel) const;

  size_t n() const { return n_; }
  size_t padded_size() const { return num_blocks_ * kBlock; }

 private:
  int dim_ = 0;
  int quads_ = 0;  // ceil(dim / 4)
  size_t n_ = 0;
  size_t num_blocks_ = 0;  // of kBlock items
  Kernel kernel_ = Kernel::kPortable;
  float max_norm_ = 0;  // the largest |v|_2
  // q + 128: num_blocks * quads * kBlock * 4 from codes_offset_, which
  // puts every block's quad on one cache line of 64 bytes.
  std::vector<uint8_t> codes_;
  size_t codes_offset_ = 0;
  const uint8_t* codes() const { return codes_.data() + codes_offset_; }
  std::vector<float> step_;      // s per position
  std::vector<float> residual_;  // |v - s q|_2 per position
  std::vector<float> coded_;     // |s q|_2 per position
  std::vector<float> norm_;      // |v|_2 per position
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_QUANTIZED_POOL_H_
