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
// Layout for vpmaddwd (AVX2) and vpdpwssd (AVX-512 VNNI): per block of 16
// items, per pair of dimensions, 16 x 2 int8 (one 256-bit load, widened to
// int16); the user's codes as one 32-bit word (two int16) per pair.
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
    float t = 0;                  // the user's step
    float norm = 0;               // |u|_2
    float residual = 0;           // |u - t c|_2
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
  int groups_ = 0;  // ceil(dim / 2)
  size_t n_ = 0;
  size_t num_blocks_ = 0;  // of kBlock items
  Kernel kernel_ = Kernel::kPortable;
  float max_norm_ = 0;           // the largest |v|_2
  std::vector<int8_t> codes_;    // num_blocks * groups * kBlock * 2
  std::vector<float> step_;      // s per position
  std::vector<float> residual_;  // |v - s q|_2 per position
  std::vector<float> coded_;     // |s q|_2 per position
  std::vector<float> norm_;      // |v|_2 per position
};

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_QUANTIZED_POOL_H_
