#include "quantized_pool.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace cfrec::server {
namespace {

constexpr int kUserLevels = 2047;  // user codes in [-2047, 2047]
constexpr int kItemLevels = 127;   // item codes in [-127, 127]
// sum(c * q) must fit int32: dim * 2047 * 127 < 2^31.
constexpr int kMaxDim = 4096;
constexpr double kMargin = 1.01;

// What Bounds() needs per position, and of the query.
struct BoundInputs {
  const float* step;
  const float* residual;
  const float* coded;
  const float* norm;
  float t, user_norm, user_residual, rounding, margin;
};

// lo and hi of the 8 positions of one block from their integer sums.
__attribute__((target("avx2,fma"))) inline void BlockBoundsAvx2(
    const BoundInputs& in, size_t i, __m256i sums, float* lo, float* hi) {
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
  _mm256_storeu_ps(lo + i, _mm256_sub_ps(approx, err));
  _mm256_storeu_ps(hi + i, _mm256_add_ps(approx, err));
}

// 8 items x 2 dims of int8, widened to int16.
__attribute__((target("avx2"))) inline __m256i Widen(const int8_t* p) {
  return _mm256_cvtepi8_epi16(
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// sum over d of c[d] * q[d] for every position, by blocks, then its bounds:
// vpmovsxbw widens 8 items x 2 dims of int8 to int16, vpmaddwd multiplies
// them with the user's two codes and adds the pair into int32. Two blocks at
// a time share the broadcast of the user's codes.
__attribute__((target("avx2,fma"))) void BoundsAvx2(
    const int8_t* codes, size_t num_blocks, int groups, const uint32_t* user,
    const BoundInputs& in, float* lo, float* hi) {
  const size_t stride = static_cast<size_t>(groups) * 16;
  size_t b = 0;
  for (; b + 2 <= num_blocks; b += 2) {
    const int8_t* p = codes + b * stride;
    __m256i acc0 = _mm256_setzero_si256(), acc1 = acc0;
    for (int g = 0; g < groups; ++g) {
      const __m256i u = _mm256_set1_epi32(static_cast<int>(user[g]));
      const size_t o = static_cast<size_t>(g) * 16;
      acc0 = _mm256_add_epi32(acc0, _mm256_madd_epi16(Widen(p + o), u));
      acc1 =
          _mm256_add_epi32(acc1, _mm256_madd_epi16(Widen(p + stride + o), u));
    }
    BlockBoundsAvx2(in, b * 8, acc0, lo, hi);
    BlockBoundsAvx2(in, (b + 1) * 8, acc1, lo, hi);
  }
  for (; b < num_blocks; ++b) {
    const int8_t* p = codes + b * stride;
    __m256i acc = _mm256_setzero_si256();
    for (int g = 0; g < groups; ++g) {
      const __m256i u = _mm256_set1_epi32(static_cast<int>(user[g]));
      acc = _mm256_add_epi32(
          acc, _mm256_madd_epi16(Widen(p + static_cast<size_t>(g) * 16), u));
    }
    BlockBoundsAvx2(in, b * 8, acc, lo, hi);
  }
}

// The same sums without AVX2 (integer arithmetic: identical results).
void SumsBaseline(const int8_t* codes, size_t num_blocks, int groups,
                  const uint32_t* user, int32_t* out) {
  for (size_t b = 0; b < num_blocks; ++b) {
    const int8_t* p = codes + b * static_cast<size_t>(groups) * 16;
    int32_t acc[8] = {};
    for (int g = 0; g < groups; ++g) {
      const auto c0 = static_cast<int16_t>(user[g] & 0xffff);
      const auto c1 = static_cast<int16_t>(user[g] >> 16);
      for (int j = 0; j < 8; ++j) {
        acc[j] += c0 * p[static_cast<size_t>(g) * 16 + j * 2] +
                  c1 * p[static_cast<size_t>(g) * 16 + j * 2 + 1];
      }
    }
    std::copy(acc, acc + 8, out + b * 8);
  }
}

}  // namespace

std::unique_ptr<const QuantizedPool> QuantizedPool::Build(
    std::span<const float> blocks, size_t num_blocks, int dim, size_t n) {
  if (dim <= 0 || dim > kMaxDim || n > num_blocks * kBlock ||
      blocks.size() < num_blocks * kBlock * static_cast<size_t>(dim)) {
    return nullptr;
  }
  auto pool = std::unique_ptr<QuantizedPool>(new QuantizedPool());
  pool->dim_ = dim;
  pool->groups_ = (dim + 1) / 2;
  pool->n_ = n;
  pool->num_blocks_ = num_blocks;
  pool->use_avx2_ = __builtin_cpu_supports("avx2");
  const size_t padded = num_blocks * kBlock;
  pool->codes_.assign(num_blocks * pool->groups_ * kBlock * 2, 0);
  pool->step_.assign(padded, 0.0f);
  pool->residual_.assign(padded, 0.0f);
  pool->coded_.assign(padded, 0.0f);
  pool->norm_.assign(padded, 0.0f);
  const size_t stride = static_cast<size_t>(dim) * kBlock;
  for (size_t i = 0; i < n; ++i) {
    const size_t b = i / kBlock, lane = i % kBlock;
    const float* v = blocks.data() + b * stride + lane;  // v[d * kBlock]
    float max_abs = 0;
    double norm = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = v[static_cast<size_t>(d) * kBlock];
      if (!std::isfinite(x)) return nullptr;
      max_abs = std::max(max_abs, std::fabs(x));
      norm += double(x) * x;
    }
    const float s = max_abs / kItemLevels;
    int8_t* out = pool->codes_.data() + b * pool->groups_ * kBlock * 2;
    double residual = 0, coded = 0;
    for (int d = 0; d < dim; ++d) {
      const float x = v[static_cast<size_t>(d) * kBlock];
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

void QuantizedPool::Bounds(const Query& query, float* lo, float* hi) const {
  const size_t padded = num_blocks_ * kBlock;
  // The float dot product's own rounding: at most dim * 2^-24 / (1 - ...)
  // of sum|u_d v_d| <= |u|_2 |v|_2; 2^-23 per term covers it.
  const BoundInputs in{step_.data(),
                       residual_.data(),
                       coded_.data(),
                       norm_.data(),
                       query.t,
                       query.norm,
                       query.residual,
                       static_cast<float>(dim_) * 0x1p-23f * query.norm,
                       static_cast<float>(kMargin)};
  if (use_avx2_) {
    BoundsAvx2(codes_.data(), num_blocks_, groups_, query.codes.data(), in, lo,
               hi);
  } else {
    std::vector<int32_t> sums(padded);
    SumsBaseline(codes_.data(), num_blocks_, groups_, query.codes.data(),
                 sums.data());
    for (size_t i = 0; i < padded; ++i) {
      const float approx = in.t * in.step[i] * static_cast<float>(sums[i]);
      const float err = in.margin * (in.user_norm * in.residual[i] +
                                     in.user_residual * in.coded[i] +
                                     in.rounding * in.norm[i]) +
                        1e-6f * std::fabs(approx);
      lo[i] = approx - err;
      hi[i] = approx + err;
    }
  }
  const float inf = std::numeric_limits<float>::infinity();
  for (size_t i = n_; i < padded; ++i) lo[i] = hi[i] = -inf;
}

}  // namespace cfrec::server
