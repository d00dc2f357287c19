#include "dense_kernels.h"

#include <algorithm>

namespace cfrec::learner {

void LinearForward(const float* x, const float* wt, const float* b, int64_t n,
                   int64_t in, int64_t out, float* y) {
  for (int64_t i = 0; i < n; ++i) {
    float* __restrict yi = y + i * out;
    const float* xi = x + i * in;
    std::copy(b, b + out, yi);
    for (int64_t k = 0; k < in; ++k) {
      const float xk = xi[k];
      if (xk == 0) continue;
      const float* __restrict wk = wt + k * out;
      for (int64_t o = 0; o < out; ++o) yi[o] += xk * wk[o];
    }
  }
}

void LinearBackwardInput(const float* dy, const float* w, int64_t n, int64_t in,
                         int64_t out, float* dx) {
  for (int64_t i = 0; i < n; ++i) {
    float* __restrict dxi = dx + i * in;
    const float* dyi = dy + i * out;
    std::fill(dxi, dxi + in, 0.0f);
    for (int64_t o = 0; o < out; ++o) {
      const float g = dyi[o];
      if (g == 0) continue;
      const float* __restrict wo = w + o * in;
      for (int64_t k = 0; k < in; ++k) dxi[k] += g * wo[k];
    }
  }
}

void LinearBackwardWeight(const float* dy, const float* x, int64_t n,
                          int64_t in, int64_t out, float* dw, float* db) {
  std::fill(dw, dw + out * in, 0.0f);
  std::fill(db, db + out, 0.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float* dyi = dy + i * out;
    const float* __restrict xi = x + i * in;
    for (int64_t o = 0; o < out; ++o) {
      const float g = dyi[o];
      if (g == 0) continue;
      db[o] += g;
      float* __restrict dwo = dw + o * in;
      for (int64_t k = 0; k < in; ++k) dwo[k] += g * xi[k];
    }
  }
}

}  // namespace cfrec::learner
