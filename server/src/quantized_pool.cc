#include "quantized_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kth_largest.h"

namespace cfrec::server {
namespace {

constexpr int kUserLevels = 2047;  // user codes in [-2047, 2047]
constexpr int kItemLevels = 127;   // item codes in [-127, 127]
// sum(c * (q + 128)) must fit int32: dim * 2047 * 255 < 2^31.
constexpr int kMaxDim = 4096;
constexpr double kMargin = 1.01;

// What the bounds need per position, and of the query.
struct BoundInputs {
  const float* step;
  const float* residual;
  const float* coded;
  const float* norm;
  float t, user_norm, user_residual, rounding, margin;
};

using Entry = QuantizedPool::Scratch::Entry;

// The survivors of one pass: every position seen so far whose hi reaches
// `threshold`, which only rises. The threshold is always at most the k-th
// largest lo of the whole pool (it is the k-th largest lo of a subset, or
// a start value that Reachable checks afterwards), so an item dropped for
// its hi cannot be kept by the final cut, and every item whose lo reaches
// the threshold is held.
struct Survivors {
  // Room for cap + kRoom entries: a kernel appends up to two blocks
  // before it checks the cap.
  static constexpr size_t kRoom = 2 * QuantizedPool::kBlock;
  std::vector<Entry>* store;
  Entry* entries;    // store->data()
  size_t count = 0;  // held
  size_t cap = 0;    // tighten when count reaches it
  size_t k = 0;
  float threshold;
  std::vector<float>* values;  // scratch for the selection
};

// The k-th largest lo of the held entries (ties counted); count >= k.
float KthLargestLo(const Entry* entries, size_t count, size_t k,
                   std::vector<float>& values) {
  values.resize(count);
  for (size_t i = 0; i < count; ++i) values[i] = entries[i].lo;
  return KthLargest(values, k);
}

// Raises the threshold to the k-th largest lo held and drops the entries
// whose hi falls below it (order kept). When that frees less than half the
// buffer (bounds too loose to separate), the buffer grows instead of being
// tightened again at every block.
__attribute__((noinline)) void Tighten(Survivors& s) {
  if (s.count >= s.k) {
    s.threshold =
        std::max(s.threshold, KthLargestLo(s.entries, s.count, s.k, *s.values));
  }
  size_t out = 0;
  for (size_t i = 0; i < s.count; ++i) {
    if (s.entries[i].hi >= s.threshold) s.entries[out++] = s.entries[i];
  }
  s.count = out;
  if (s.count * 2 > s.cap) {
    s.cap *= 2;
    if (s.store->size() < s.cap + Survivors::kRoom) {
      s.store->resize(s.cap + Survivors::kRoom);
    }
    s.entries = s.store->data();
  }
}

// Appends the positions of `mask` (bit j: position base + j) with their
// bounds.
inline void Append(Survivors& s, unsigned mask, size_t base, const float* lo,
                   const float* hi) {
  while (mask != 0) {
    const int j = __builtin_ctz(mask);
    mask &= mask - 1;
    s.entries[s.count++] = {lo[j], hi[j], static_cast<uint32_t>(base + j)};
  }
}

// Lanes of block b that hold items (the last block may be partly padding).
inline unsigned ValidLanes(size_t b, size_t n) {
  const size_t first = b * QuantizedPool::kBlock;
  if (first + QuantizedPool::kBlock <= n) return 0xffffu;
  return first >= n ? 0u : (1u << (n - first)) - 1u;
}

// The bounds of one position from its integer sum, in the order and with
// the operations the vector kernels use (the same floats).
inline void PositionBounds(const BoundInputs& in, size_t i, int32_t sum,
                           float* lo, float* hi) {
  const float approx = in.t * in.step[i] * static_cast<float>(sum);
  float err = in.user_norm * in.residual[i];
  err = err + in.user_residual * in.coded[i];
  err = err + in.rounding * in.norm[i];
  err = in.margin * err + 1e-6f * std::fabs(approx);
  *lo = approx - err;
  *hi = approx + err;
}

// The codes of one request and the pool's, as the kernels read them.
struct SumInputs {
  const uint8_t* codes;  // the pool's q + 128, quad layout
  int quads;
  const uint32_t* pairs;  // the user's codes, two int16 per pair of dims
  const uint32_t* high;   // per quad: four signed bytes h
  const uint32_t* low;    // per quad: four signed bytes l
  int32_t offset;         // 128 * sum(c)
};

// Bytes of one block of codes.
inline size_t BlockBytes(int quads) {
  return static_cast<size_t>(quads) * QuantizedPool::kBlock * 4;
}

// The 16 integer sums sum(c q) of block b, portably: sum(c (q + 128)) over
// the stored bytes, less the offset (the loop over items vectorises).
inline void BlockSums(const SumInputs& in, size_t b, int32_t* out) {
  constexpr size_t kB = QuantizedPool::kBlock;
  const uint8_t* p = in.codes + b * BlockBytes(in.quads);
  for (size_t j = 0; j < kB; ++j) out[j] = 0;
  for (int g = 0; g < in.quads; ++g) {
    const auto c0 = static_cast<int16_t>(in.pairs[2 * g]);
    const auto c1 = static_cast<int16_t>(in.pairs[2 * g] >> 16);
    const auto c2 = static_cast<int16_t>(in.pairs[2 * g + 1]);
    const auto c3 = static_cast<int16_t>(in.pairs[2 * g + 1] >> 16);
    const uint8_t* q = p + static_cast<size_t>(g) * kB * 4;
    for (size_t j = 0; j < kB; ++j) {
      out[j] += c0 * q[j * 4] + c1 * q[j * 4 + 1] + c2 * q[j * 4 + 2] +
                c3 * q[j * 4 + 3];
    }
  }
  for (size_t j = 0; j < kB; ++j) out[j] -= in.offset;
}

// One pass of Reachable over blocks first, first + stride, ... < end.
void ScanPortable(const SumInputs& sum, const BoundInputs& in, size_t n,
                  size_t first, size_t stride, size_t end, Survivors& s) {
  constexpr size_t kB = QuantizedPool::kBlock;
  for (size_t b = first; b < end; b += stride) {
    int32_t sums[kB];
    float lo[kB], hi[kB];
    BlockSums(sum, b, sums);
    unsigned mask = 0;
    for (size_t j = 0; j < kB; ++j) {
      PositionBounds(in, b * kB + j, sums[j], &lo[j], &hi[j]);
      if (hi[j] >= s.threshold) mask |= 1u << j;
    }
    Append(s, mask & ValidLanes(b, n), b * kB, lo, hi);
    if (s.count >= s.cap) Tighten(s);
  }
}

// lo and hi of the 8 positions from i on, from their integer sums.
__attribute__((target("avx2"), always_inline)) inline void BoundsAvx2(
    const BoundInputs& in, size_t i, __m256i sums, __m256* lo, __m256* hi) {
  const __m256 approx = _mm256_mul_ps(
      _mm256_mul_ps(_mm256_set1_ps(in.t), _mm256_loadu_ps(in.step + i)),
      _mm256_cvtepi32_ps(sums));
  const __m256 magnitude =
      _mm256_andnot_ps(_mm256_set1_ps(-0.0f), approx);  // |approx|
  __m256 err = _mm256_mul_ps(_mm256_set1_ps(in.user_norm),
                             _mm256_loadu_ps(in.residual + i));
  err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(in.user_residual),
                                         _mm256_loadu_ps(in.coded + i)));
  err = _mm256_add_ps(err, _mm256_mul_ps(_mm256_set1_ps(in.rounding),
                                         _mm256_loadu_ps(in.norm + i)));
  err = _mm256_add_ps(_mm256_mul_ps(_mm256_set1_ps(in.margin), err),
                      _mm256_mul_ps(_mm256_set1_ps(1e-6f), magnitude));
  *lo = _mm256_sub_ps(approx, err);
  *hi = _mm256_add_ps(approx, err);
}

// Bounds of block b from its two halves' sums, filtered by the threshold.
__attribute__((target("avx2"), always_inline)) inline void FinishAvx2(
    const BoundInputs& in, size_t n, size_t b, __m256i sums0, __m256i sums1,
    Survivors& s) {
  constexpr size_t kB = QuantizedPool::kBlock;
  __m256 lo0, hi0, lo1, hi1;
  BoundsAvx2(in, b * kB, sums0, &lo0, &hi0);
  BoundsAvx2(in, b * kB + 8, sums1, &lo1, &hi1);
  const __m256 t = _mm256_set1_ps(s.threshold);
  const unsigned mask =
      (static_cast<unsigned>(
           _mm256_movemask_ps(_mm256_cmp_ps(hi0, t, _CMP_GE_OQ))) |
       (static_cast<unsigned>(
            _mm256_movemask_ps(_mm256_cmp_ps(hi1, t, _CMP_GE_OQ)))
        << 8)) &
      ValidLanes(b, n);
  if (mask == 0) return;
  alignas(32) float lo[kB], hi[kB];
  _mm256_store_ps(lo, lo0);
  _mm256_store_ps(lo + 8, lo1);
  _mm256_store_ps(hi, hi0);
  _mm256_store_ps(hi + 8, hi1);
  Append(s, mask, b * kB, lo, hi);
}

// 4 items x 4 dims of q + 128, widened to int16.
__attribute__((target("avx2"), always_inline)) inline __m256i Widen(
    const uint8_t* p) {
  return _mm256_cvtepu8_epi16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// The user's four codes of quad g, as int16 pairs in every 64-bit lane.
__attribute__((target("avx2"), always_inline)) inline __m256i Quad(
    const uint32_t* pairs, int g) {
  return _mm256_set1_epi64x(
      static_cast<long long>(pairs[2 * g] | uint64_t{pairs[2 * g + 1]} << 32));
}

// The 16 sums of a block from its four accumulators (items 0-3, 4-7, 8-11,
// 12-15; per item the sums of its two pairs of dimensions side by side),
// less the offset the stored q + 128 adds.
__attribute__((target("avx2"), always_inline)) inline void Fold(
    __m256i a0, __m256i a1, __m256i a2, __m256i a3, int32_t offset,
    __m256i* sums0, __m256i* sums1) {
  // hadd gives items 0 1 4 5 | 2 3 6 7; the permutation puts them in order.
  const __m256i off = _mm256_set1_epi32(offset);
  *sums0 = _mm256_sub_epi32(
      _mm256_permute4x64_epi64(_mm256_hadd_epi32(a0, a1), 0xD8), off);
  *sums1 = _mm256_sub_epi32(
      _mm256_permute4x64_epi64(_mm256_hadd_epi32(a2, a3), 0xD8), off);
}

// The integer sums with AVX2: vpmovzxbw widens 4 items x 4 dims of q + 128
// to int16, vpmaddwd multiplies them with the user's codes and adds each
// pair into int32. Two blocks (eight accumulators) at a time share the
// broadcast of the user's codes.
__attribute__((target("avx2"))) void ScanAvx2(const SumInputs& sum,
                                              const BoundInputs& in, size_t n,
                                              size_t first, size_t stride,
                                              size_t end, Survivors& s) {
  const size_t bytes = BlockBytes(sum.quads);
  size_t b = first;
  for (; b + stride < end; b += 2 * stride) {
    const uint8_t* p = sum.codes + b * bytes;
    const uint8_t* q = sum.codes + (b + stride) * bytes;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    __m256i c0 = a0, c1 = a0, c2 = a0, c3 = a0;
    for (int g = 0; g < sum.quads; ++g) {
      const __m256i u = Quad(sum.pairs, g);
      const size_t o = static_cast<size_t>(g) * 64;
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(Widen(p + o), u));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(Widen(p + o + 16), u));
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(Widen(p + o + 32), u));
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(Widen(p + o + 48), u));
      c0 = _mm256_add_epi32(c0, _mm256_madd_epi16(Widen(q + o), u));
      c1 = _mm256_add_epi32(c1, _mm256_madd_epi16(Widen(q + o + 16), u));
      c2 = _mm256_add_epi32(c2, _mm256_madd_epi16(Widen(q + o + 32), u));
      c3 = _mm256_add_epi32(c3, _mm256_madd_epi16(Widen(q + o + 48), u));
    }
    __m256i s0, s1;
    Fold(a0, a1, a2, a3, sum.offset, &s0, &s1);
    FinishAvx2(in, n, b, s0, s1, s);
    Fold(c0, c1, c2, c3, sum.offset, &s0, &s1);
    FinishAvx2(in, n, b + stride, s0, s1, s);
    if (s.count >= s.cap) Tighten(s);
  }
  for (; b < end; b += stride) {
    const uint8_t* p = sum.codes + b * bytes;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int g = 0; g < sum.quads; ++g) {
      const __m256i u = Quad(sum.pairs, g);
      const size_t o = static_cast<size_t>(g) * 64;
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(Widen(p + o), u));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(Widen(p + o + 16), u));
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(Widen(p + o + 32), u));
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(Widen(p + o + 48), u));
    }
    __m256i s0, s1;
    Fold(a0, a1, a2, a3, sum.offset, &s0, &s1);
    FinishAvx2(in, n, b, s0, s1, s);
    if (s.count >= s.cap) Tighten(s);
  }
}

// The same with AVX-512: 16 positions per vector, the comparison straight
// into a mask register.
__attribute__((target("avx512f,avx512bw,avx512vnni"),
               always_inline)) inline void
FinishAvx512(const BoundInputs& in, size_t n, size_t b, __m512i sums,
             Survivors& s) {
  constexpr size_t kB = QuantizedPool::kBlock;
  const size_t i = b * kB;
  const __m512 approx = _mm512_mul_ps(
      _mm512_mul_ps(_mm512_set1_ps(in.t), _mm512_loadu_ps(in.step + i)),
      _mm512_maskz_cvtepi32_ps(0xffff, sums));
  const __m512 magnitude = _mm512_abs_ps(approx);
  __m512 err = _mm512_mul_ps(_mm512_set1_ps(in.user_norm),
                             _mm512_loadu_ps(in.residual + i));
  err = _mm512_add_ps(err, _mm512_mul_ps(_mm512_set1_ps(in.user_residual),
                                         _mm512_loadu_ps(in.coded + i)));
  err = _mm512_add_ps(err, _mm512_mul_ps(_mm512_set1_ps(in.rounding),
                                         _mm512_loadu_ps(in.norm + i)));
  err = _mm512_add_ps(_mm512_mul_ps(_mm512_set1_ps(in.margin), err),
                      _mm512_mul_ps(_mm512_set1_ps(1e-6f), magnitude));
  const __m512 hi = _mm512_add_ps(approx, err);
  const unsigned mask =
      _mm512_cmp_ps_mask(hi, _mm512_set1_ps(s.threshold), _CMP_GE_OQ) &
      ValidLanes(b, n);
  if (mask == 0) return;
  alignas(64) float lo_out[kB], hi_out[kB];
  _mm512_store_ps(lo_out, _mm512_sub_ps(approx, err));
  _mm512_store_ps(hi_out, hi);
  Append(s, mask, i, lo_out, hi_out);
}

// The 16 sums of a block from its accumulators of the h and l parts.
__attribute__((target("avx512f"), always_inline)) inline __m512i Combine(
    __m512i high, __m512i low, __m512i offset) {
  return _mm512_sub_epi32(
      _mm512_add_epi32(_mm512_maskz_slli_epi32(0xffff, high, 5), low), offset);
}

// acc += the four products of unsigned bytes `u` and signed bytes `s` per
// 32-bit lane (vpdpbusd, not saturating). As inline assembly: with the
// intrinsic, GCC 12 copies every accumulator of the loop below through
// another register and loads each operand twice.
__attribute__((target("avx512f,avx512vnni"), always_inline)) inline void Dpbusd(
    __m512i& acc, __m512i u, __m512i s) {
  asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(s));
}

// The integer sums with AVX-512 VNNI: vpdpbusd multiplies 16 items x 4
// dims of q + 128 (unsigned bytes, one load) with four signed bytes of the
// user's codes and adds the four products into the int32 accumulator in
// one instruction; once for the h parts and once for the l parts. Four
// blocks (eight independent accumulators) at a time share the broadcasts.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ScanAvx512(
    const SumInputs& sum, const BoundInputs& in, size_t n, size_t first,
    size_t stride, size_t end, Survivors& s) {
  const size_t bytes = BlockBytes(sum.quads);
  const __m512i offset = _mm512_set1_epi32(sum.offset);
  size_t b = first;
  for (; b + 3 * stride < end; b += 4 * stride) {
    const uint8_t* p0 = sum.codes + b * bytes;
    const uint8_t* p1 = p0 + stride * bytes;
    const uint8_t* p2 = p1 + stride * bytes;
    const uint8_t* p3 = p2 + stride * bytes;
    __m512i h0 = _mm512_setzero_si512(), h1 = h0, h2 = h0, h3 = h0;
    __m512i l0 = h0, l1 = h0, l2 = h0, l3 = h0;
    for (int g = 0; g < sum.quads; ++g) {
      const __m512i uh = _mm512_set1_epi32(static_cast<int>(sum.high[g]));
      const __m512i ul = _mm512_set1_epi32(static_cast<int>(sum.low[g]));
      const size_t o = static_cast<size_t>(g) * 64;
      const __m512i v0 = _mm512_loadu_si512(p0 + o);
      const __m512i v1 = _mm512_loadu_si512(p1 + o);
      const __m512i v2 = _mm512_loadu_si512(p2 + o);
      const __m512i v3 = _mm512_loadu_si512(p3 + o);
      Dpbusd(h0, v0, uh);
      Dpbusd(h1, v1, uh);
      Dpbusd(h2, v2, uh);
      Dpbusd(h3, v3, uh);
      Dpbusd(l0, v0, ul);
      Dpbusd(l1, v1, ul);
      Dpbusd(l2, v2, ul);
      Dpbusd(l3, v3, ul);
    }
    FinishAvx512(in, n, b, Combine(h0, l0, offset), s);
    FinishAvx512(in, n, b + stride, Combine(h1, l1, offset), s);
    if (s.count >= s.cap) Tighten(s);
    FinishAvx512(in, n, b + 2 * stride, Combine(h2, l2, offset), s);
    FinishAvx512(in, n, b + 3 * stride, Combine(h3, l3, offset), s);
    if (s.count >= s.cap) Tighten(s);
  }
  for (; b < end; b += stride) {
    const uint8_t* p = sum.codes + b * bytes;
    __m512i h = _mm512_setzero_si512(), l = h;
    for (int g = 0; g < sum.quads; ++g) {
      const __m512i v = _mm512_loadu_si512(p + static_cast<size_t>(g) * 64);
      Dpbusd(h, v, _mm512_set1_epi32(static_cast<int>(sum.high[g])));
      Dpbusd(l, v, _mm512_set1_epi32(static_cast<int>(sum.low[g])));
    }
    FinishAvx512(in, n, b, Combine(h, l, offset), s);
    if (s.count >= s.cap) Tighten(s);
  }
}

}  // namespace

bool QuantizedPool::Supported(Kernel kernel) {
  switch (kernel) {
    case Kernel::kPortable:
      return true;
    case Kernel::kAvx2:
      return __builtin_cpu_supports("avx2");
    case Kernel::kAvx512Vnni:
      return __builtin_cpu_supports("avx512f") &&
             __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vnni");
  }
  return false;
}

std::unique_ptr<const QuantizedPool> QuantizedPool::Build(
    std::span<const float> blocks, size_t num_float_blocks, int dim, size_t n) {
  if (dim <= 0 || dim > kMaxDim || n > num_float_blocks * kFloatBlock ||
      blocks.size() <
          num_float_blocks * kFloatBlock * static_cast<size_t>(dim)) {
    return nullptr;
  }
  auto pool = std::unique_ptr<QuantizedPool>(new QuantizedPool());
  pool->dim_ = dim;
  pool->quads_ = (dim + 3) / 4;
  pool->n_ = n;
  pool->num_blocks_ = (n + kBlock - 1) / kBlock;
  pool->kernel_ = Supported(Kernel::kAvx512Vnni) ? Kernel::kAvx512Vnni
                  : Supported(Kernel::kAvx2)     ? Kernel::kAvx2
                                                 : Kernel::kPortable;
  const size_t padded = pool->num_blocks_ * kBlock;
  const size_t block_bytes = BlockBytes(pool->quads_);
  pool->codes_.assign(pool->num_blocks_ * block_bytes + 63, 128);  // q = 0
  pool->codes_offset_ =
      (64 - reinterpret_cast<uintptr_t>(pool->codes_.data()) % 64) % 64;
  pool->step_.assign(padded, 0.0f);
  pool->residual_.assign(padded, 0.0f);
  pool->coded_.assign(padded, 0.0f);
  pool->norm_.assign(padded, 0.0f);
  const size_t stride = static_cast<size_t>(dim) * kFloatBlock;
  for (size_t i = 0; i < n; ++i) {
    // v[d * kFloatBlock] is component d of item i.
    const float* v =
        blocks.data() + (i / kFloatBlock) * stride + i % kFloatBlock;
    float max_abs = 0;
    double norm = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = v[static_cast<size_t>(d) * kFloatBlock];
      if (!std::isfinite(x)) return nullptr;
      max_abs = std::max(max_abs, std::fabs(x));
      norm += double(x) * x;
    }
    const float s = max_abs / kItemLevels;
    uint8_t* out =
        pool->codes_.data() + pool->codes_offset_ + (i / kBlock) * block_bytes;
    const size_t lane = i % kBlock;
    double residual = 0, coded = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = v[static_cast<size_t>(d) * kFloatBlock];
      long q = 0;
      if (s > 0)
        q = std::clamp<long>(std::lrint(x / s), -kItemLevels, kItemLevels);
      out[(d / 4) * kBlock * 4 + lane * 4 + d % 4] =
          static_cast<uint8_t>(q + 128);
      const double sq = double(s) * q;
      residual += (x - sq) * (x - sq);
      coded += sq * sq;
    }
    pool->step_[i] = s;
    // Rounded up: these bound errors.
    pool->residual_[i] = std::nextafter(float(std::sqrt(residual)), INFINITY);
    pool->coded_[i] = std::nextafter(float(std::sqrt(coded)), INFINITY);
    pool->norm_[i] = std::nextafter(float(std::sqrt(norm)), INFINITY);
    pool->max_norm_ = std::max(pool->max_norm_, pool->norm_[i]);
  }
  return pool;
}

QuantizedPool::Query QuantizedPool::Prepare(std::span<const float> user) const {
  Query q;
  if (user.size() < static_cast<size_t>(dim_)) return q;
  float max_abs = 0;
  double norm = 0;
  for (int d = 0; d < dim_; ++d) {
    if (!std::isfinite(user[d])) return q;
    max_abs = std::max(max_abs, std::fabs(user[d]));
    norm += double(user[d]) * user[d];
  }
  // Keep every bound and product far from overflow.
  if (!(std::sqrt(norm) * max_norm_ < 1e30)) return q;
  q.t = max_abs / kUserLevels;
  // Pairs and quads past dim hold zero codes.
  q.codes.assign(2 * static_cast<size_t>(quads_), 0);
  q.high.assign(quads_, 0);
  q.low.assign(quads_, 0);
  int32_t sum = 0;
  double residual = 0;
  for (int d = 0; d < dim_; ++d) {
    long c = 0;
    if (q.t > 0) {
      c = std::clamp<long>(std::lrint(user[d] / q.t), -kUserLevels,
                           kUserLevels);
    }
    const double r = double(user[d]) - double(q.t) * c;
    residual += r * r;
    q.codes[d / 2] |= static_cast<uint32_t>(static_cast<uint16_t>(c))
                      << (16 * (d % 2));
    // c = 32 h + l, h = floor((c + 16) / 32) in [-64, 64], l in [-16, 15].
    const int h = (static_cast<int>(c) + 16) >> 5;
    const int l = static_cast<int>(c) - 32 * h;
    q.high[d / 4] |= static_cast<uint32_t>(static_cast<uint8_t>(h))
                     << (8 * (d % 4));
    q.low[d / 4] |= static_cast<uint32_t>(static_cast<uint8_t>(l))
                    << (8 * (d % 4));
    sum += static_cast<int32_t>(c);
  }
  q.offset = 128 * sum;
  q.norm = std::nextafter(float(std::sqrt(norm)), INFINITY);
  q.residual = std::nextafter(float(std::sqrt(residual)), INFINITY);
  q.ok = true;
  return q;
}

namespace {

BoundInputs Inputs(const QuantizedPool::Query& query, const float* step,
                   const float* residual, const float* coded, const float* norm,
                   int dim) {
  // The float dot product's own rounding: at most dim * 2^-24 / (1 - ...)
  // of sum|u_d v_d| <= |u|_2 |v|_2; 2^-23 per term covers it.
  return BoundInputs{step,
                     residual,
                     coded,
                     norm,
                     query.t,
                     query.norm,
                     query.residual,
                     static_cast<float>(dim) * 0x1p-23f * query.norm,
                     static_cast<float>(kMargin)};
}

SumInputs Sums(const QuantizedPool::Query& query, const uint8_t* codes,
               int quads) {
  return SumInputs{codes,
                   quads,
                   query.codes.data(),
                   query.high.data(),
                   query.low.data(),
                   query.offset};
}

}  // namespace

void QuantizedPool::Bounds(const Query& query, float* lo, float* hi) const {
  const BoundInputs in = Inputs(query, step_.data(), residual_.data(),
                                coded_.data(), norm_.data(), dim_);
  const SumInputs sum = Sums(query, codes(), quads_);
  for (size_t b = 0; b < num_blocks_; ++b) {
    int32_t sums[kBlock];
    BlockSums(sum, b, sums);
    for (size_t j = 0; j < kBlock; ++j) {
      const size_t i = b * kBlock + j;
      PositionBounds(in, i, sums[j], &lo[i], &hi[i]);
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t i = n_; i < padded_size(); ++i) lo[i] = hi[i] = -inf;
}

void QuantizedPool::Reachable(const Query& query, size_t k,
                              std::vector<uint32_t>& kept, Scratch& scratch,
                              Kernel kernel) const {
  const BoundInputs in = Inputs(query, step_.data(), residual_.data(),
                                coded_.data(), norm_.data(), dim_);
  const SumInputs sum = Sums(query, codes(), quads_);
  const auto scan = [&](size_t first, size_t stride, Survivors& s) {
    if (kernel == Kernel::kAvx512Vnni) {
      ScanAvx512(sum, in, n_, first, stride, num_blocks_, s);
    } else if (kernel == Kernel::kAvx2) {
      ScanAvx2(sum, in, n_, first, stride, num_blocks_, s);
    } else {
      ScanPortable(sum, in, n_, first, stride, num_blocks_, s);
    }
  };
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  const auto start_pass = [&](size_t cap, float threshold) {
    // Grown, never shrunk: a shrink between the two passes would make the
    // next request's first pass value-initialise the regrown entries.
    if (scratch.entries.size() < cap + Survivors::kRoom) {
      scratch.entries.resize(cap + Survivors::kRoom);
    }
    return Survivors{&scratch.entries, scratch.entries.data(), 0, cap, k,
                     threshold,        &scratch.values};
  };
  // A first threshold from every stride-th block, about 4k items, at the
  // rank that leaves about 2k items of the whole pool above it (more than
  // three standard deviations of the sample's error on a random order). It
  // starts the full pass high, so that pass keeps about 2k items instead of
  // tightening its buffer log2(n / k) times; when fewer than k items' lo
  // reach it, the pass is repeated from the lowest threshold.
  float start = kLowest;
  const size_t stride = n_ / (4 * k);  // in blocks: 4k / kBlock of them
  if (stride >= 4) {
    const size_t sampled = (num_blocks_ + stride - 1) / stride * kBlock;
    Survivors s = start_pass(sampled, kLowest);
    s.cap = sampled + 1;  // never tightened
    scan(0, stride, s);
    const size_t rank = std::max<size_t>(1, 2 * k * s.count / n_);
    if (s.count >= rank) {
      start = KthLargestLo(s.entries, s.count, rank, scratch.values);
    }
  }
  Survivors s = start_pass(std::max<size_t>(4 * k, 1024), start);
  scan(0, 1, s);
  size_t reach = 0;  // items whose lo reaches the start
  for (size_t i = 0; i < s.count; ++i) reach += s.entries[i].lo >= start;
  if (reach < k) {
    s = start_pass(std::max<size_t>(4 * k, 1024), kLowest);
    scan(0, 1, s);
  }
  // Every item whose lo reaches the k-th largest lo of the pool is held, so
  // the k-th largest held is that value.
  const float threshold = KthLargestLo(s.entries, s.count, k, scratch.values);
  kept.clear();
  for (size_t i = 0; i < s.count; ++i) {
    if (s.entries[i].hi >= threshold) kept.push_back(s.entries[i].pos);
  }
}

}  // namespace cfrec::server
