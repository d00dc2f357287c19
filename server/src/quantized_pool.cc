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
// sum(c * q) must fit int32: dim * 2047 * 127 < 2^31.
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
    s.store->resize(s.cap + Survivors::kRoom);
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

// The 16 integer sums of block b, portably.
inline void BlockSums(const int8_t* codes, int groups, const uint32_t* user,
                      size_t b, int32_t* out) {
  constexpr size_t kB = QuantizedPool::kBlock;
  const int8_t* p = codes + b * static_cast<size_t>(groups) * kB * 2;
  for (size_t j = 0; j < kB; ++j) out[j] = 0;
  for (int g = 0; g < groups; ++g) {
    const auto c0 = static_cast<int16_t>(user[g] & 0xffff);
    const auto c1 = static_cast<int16_t>(user[g] >> 16);
    const int8_t* q = p + static_cast<size_t>(g) * kB * 2;
    for (size_t j = 0; j < kB; ++j) {
      out[j] += c0 * q[j * 2] + c1 * q[j * 2 + 1];
    }
  }
}

// One pass of Reachable over blocks first, first + stride, ... < end.
void ScanPortable(const int8_t* codes, int groups, const uint32_t* user,
                  const BoundInputs& in, size_t n, size_t first, size_t stride,
                  size_t end, Survivors& s) {
  constexpr size_t kB = QuantizedPool::kBlock;
  for (size_t b = first; b < end; b += stride) {
    int32_t sums[kB];
    float lo[kB], hi[kB];
    BlockSums(codes, groups, user, b, sums);
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

// 8 items x 2 dims of int8, widened to int16.
__attribute__((target("avx2"), always_inline)) inline __m256i Widen(
    const int8_t* p) {
  return _mm256_cvtepi8_epi16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
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

// The integer sums with AVX2: vpmovsxbw widens 8 items x 2 dims of int8 to
// int16, vpmaddwd multiplies them with the user's two codes and adds the
// pair into int32. Two blocks (four accumulators) at a time share the
// broadcast of the user's codes.
__attribute__((target("avx2"))) void ScanAvx2(const int8_t* codes, int groups,
                                              const uint32_t* user,
                                              const BoundInputs& in, size_t n,
                                              size_t first, size_t stride,
                                              size_t end, Survivors& s) {
  const size_t bytes = static_cast<size_t>(groups) * QuantizedPool::kBlock * 2;
  size_t b = first;
  for (; b + stride < end; b += 2 * stride) {
    const int8_t* p = codes + b * bytes;
    const int8_t* q = codes + (b + stride) * bytes;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
    for (int g = 0; g < groups; ++g) {
      const __m256i u = _mm256_set1_epi32(static_cast<int>(user[g]));
      const size_t o = static_cast<size_t>(g) * 32;
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(Widen(p + o), u));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(Widen(p + o + 16), u));
      a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(Widen(q + o), u));
      a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(Widen(q + o + 16), u));
    }
    FinishAvx2(in, n, b, a0, a1, s);
    FinishAvx2(in, n, b + stride, a2, a3, s);
    if (s.count >= s.cap) Tighten(s);
  }
  for (; b < end; b += stride) {
    const int8_t* p = codes + b * bytes;
    __m256i a0 = _mm256_setzero_si256(), a1 = a0;
    for (int g = 0; g < groups; ++g) {
      const __m256i u = _mm256_set1_epi32(static_cast<int>(user[g]));
      const size_t o = static_cast<size_t>(g) * 32;
      a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(Widen(p + o), u));
      a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(Widen(p + o + 16), u));
    }
    FinishAvx2(in, n, b, a0, a1, s);
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

// 16 items x 2 dims of int8, widened to int16.
__attribute__((target("avx512f,avx512bw"), always_inline)) inline __m512i
Widen512(const int8_t* p) {
  return _mm512_cvtepi8_epi16(
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// The integer sums with AVX-512 VNNI: vpdpwssd multiplies 16 items x 2 dims
// of int16 with the user's two codes and adds both products into the int32
// accumulator in one instruction. Four blocks (four independent
// accumulators) at a time share the broadcast of the user's codes.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) void ScanAvx512(
    const int8_t* codes, int groups, const uint32_t* user,
    const BoundInputs& in, size_t n, size_t first, size_t stride, size_t end,
    Survivors& s) {
  const size_t bytes = static_cast<size_t>(groups) * QuantizedPool::kBlock * 2;
  size_t b = first;
  for (; b + 3 * stride < end; b += 4 * stride) {
    const int8_t* p0 = codes + b * bytes;
    const int8_t* p1 = p0 + stride * bytes;
    const int8_t* p2 = p1 + stride * bytes;
    const int8_t* p3 = p2 + stride * bytes;
    // Two accumulators per block (even and odd pairs of dimensions): eight
    // independent chains cover vpdpwssd's latency.
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
    __m512i b0 = a0, b1 = a0, b2 = a0, b3 = a0;
    int g = 0;
    for (; g + 2 <= groups; g += 2) {
      const __m512i u = _mm512_set1_epi32(static_cast<int>(user[g]));
      const __m512i v = _mm512_set1_epi32(static_cast<int>(user[g + 1]));
      const size_t o = static_cast<size_t>(g) * 32;
      a0 = _mm512_dpwssd_epi32(a0, Widen512(p0 + o), u);
      a1 = _mm512_dpwssd_epi32(a1, Widen512(p1 + o), u);
      a2 = _mm512_dpwssd_epi32(a2, Widen512(p2 + o), u);
      a3 = _mm512_dpwssd_epi32(a3, Widen512(p3 + o), u);
      b0 = _mm512_dpwssd_epi32(b0, Widen512(p0 + o + 32), v);
      b1 = _mm512_dpwssd_epi32(b1, Widen512(p1 + o + 32), v);
      b2 = _mm512_dpwssd_epi32(b2, Widen512(p2 + o + 32), v);
      b3 = _mm512_dpwssd_epi32(b3, Widen512(p3 + o + 32), v);
    }
    if (g < groups) {
      const __m512i u = _mm512_set1_epi32(static_cast<int>(user[g]));
      const size_t o = static_cast<size_t>(g) * 32;
      a0 = _mm512_dpwssd_epi32(a0, Widen512(p0 + o), u);
      a1 = _mm512_dpwssd_epi32(a1, Widen512(p1 + o), u);
      a2 = _mm512_dpwssd_epi32(a2, Widen512(p2 + o), u);
      a3 = _mm512_dpwssd_epi32(a3, Widen512(p3 + o), u);
    }
    // Integer sums: the order of the additions does not matter.
    a0 = _mm512_add_epi32(a0, b0);
    a1 = _mm512_add_epi32(a1, b1);
    a2 = _mm512_add_epi32(a2, b2);
    a3 = _mm512_add_epi32(a3, b3);
    FinishAvx512(in, n, b, a0, s);
    FinishAvx512(in, n, b + stride, a1, s);
    if (s.count >= s.cap) Tighten(s);
    FinishAvx512(in, n, b + 2 * stride, a2, s);
    FinishAvx512(in, n, b + 3 * stride, a3, s);
    if (s.count >= s.cap) Tighten(s);
  }
  for (; b < end; b += stride) {
    const int8_t* p = codes + b * bytes;
    __m512i a = _mm512_setzero_si512();
    for (int g = 0; g < groups; ++g) {
      const __m512i u = _mm512_set1_epi32(static_cast<int>(user[g]));
      a = _mm512_dpwssd_epi32(a, Widen512(p + static_cast<size_t>(g) * 32), u);
    }
    FinishAvx512(in, n, b, a, s);
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
  pool->groups_ = (dim + 1) / 2;
  pool->n_ = n;
  pool->num_blocks_ = (n + kBlock - 1) / kBlock;
  pool->kernel_ = Supported(Kernel::kAvx512Vnni) ? Kernel::kAvx512Vnni
                  : Supported(Kernel::kAvx2)     ? Kernel::kAvx2
                                                 : Kernel::kPortable;
  const size_t padded = pool->num_blocks_ * kBlock;
  const size_t block_bytes = static_cast<size_t>(pool->groups_) * kBlock * 2;
  pool->codes_.assign(pool->num_blocks_ * block_bytes, 0);
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
    int8_t* out = pool->codes_.data() + (i / kBlock) * block_bytes;
    const size_t lane = i % kBlock;
    double residual = 0, coded = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = v[static_cast<size_t>(d) * kFloatBlock];
      long q = 0;
      if (s > 0)
        q = std::clamp<long>(std::lrint(x / s), -kItemLevels, kItemLevels);
      out[(d / 2) * kBlock * 2 + lane * 2 + d % 2] = static_cast<int8_t>(q);
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
  q.codes.assign(groups_, 0);
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
  }
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

}  // namespace

void QuantizedPool::Bounds(const Query& query, float* lo, float* hi) const {
  const BoundInputs in = Inputs(query, step_.data(), residual_.data(),
                                coded_.data(), norm_.data(), dim_);
  for (size_t b = 0; b < num_blocks_; ++b) {
    int32_t sums[kBlock];
    BlockSums(codes_.data(), groups_, query.codes.data(), b, sums);
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
  const auto scan = [&](size_t first, size_t stride, Survivors& s) {
    if (kernel == Kernel::kAvx512Vnni) {
      ScanAvx512(codes_.data(), groups_, query.codes.data(), in, n_, first,
                 stride, num_blocks_, s);
    } else if (kernel == Kernel::kAvx2) {
      ScanAvx2(codes_.data(), groups_, query.codes.data(), in, n_, first,
               stride, num_blocks_, s);
    } else {
      ScanPortable(codes_.data(), groups_, query.codes.data(), in, n_, first,
                   stride, num_blocks_, s);
    }
  };
  constexpr float kLowest = -std::numeric_limits<float>::infinity();
  const auto start_pass = [&](size_t cap, float threshold) {
    scratch.entries.resize(cap + Survivors::kRoom);
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
