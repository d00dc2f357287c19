// Small dense kernels for the MLP towers (y = x W^T + b and its gradients),
// row-major float. Debian's LibTorch calls the reference (unblocked,
// unvectorised) BLAS for these products; rows of a few dozen floats in L1
// and inner loops the compiler vectorises are several times faster here,
// and they skip the zeros ReLU leaves behind.
#ifndef CFREC_LEARNER_SRC_DENSE_KERNELS_H_
#define CFREC_LEARNER_SRC_DENSE_KERNELS_H_

#include <cstdint>

namespace cfrec::learner {

// y[n, out] = x[n, in] * w[out, in]^T + b[out]; wt is w transposed
// ([in, out]).
void LinearForward(const float* x, const float* wt, const float* b, int64_t n,
                   int64_t in, int64_t out, float* y);
// dx[n, in] = dy[n, out] * w[out, in].
void LinearBackwardInput(const float* dy, const float* w, int64_t n, int64_t in,
                         int64_t out, float* dx);
// dw[out, in] = dy^T x; db[out] = column sums of dy. Overwrites dw, db.
void LinearBackwardWeight(const float* dy, const float* x, int64_t n,
                          int64_t in, int64_t out, float* dw, float* db);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_DENSE_KERNELS_H_
