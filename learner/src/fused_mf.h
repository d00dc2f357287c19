// FusedMfStep: one training step of a matrix-factorisation ranker (BPR-MF:
// f = U_u . I_i; GMF: f = b + h . (P_u * Q_i)) on a batch of (u, i+, i-)
// triples, in one pass without LibTorch: index the batch's unique rows,
// score and differentiate each triple (CPR eq. 1 pairwise or eq. 2
// pointwise), sum the gradients per unique row, and apply row-wise ("lazy")
// Adam with weight decay to the touched rows (and plain Adam to GMF's h and
// b). No autograd graph and no batch x dim temporaries: per-row gradient
// buffers (unique rows x dim) and per-triple scalars are reused scratch.
//
// It updates the ParamSet storage of the LibTorch path in place with the
// same arithmetic (sparse_adam.h), so checkpoints, snapshots and the
// LibTorch path read and continue the same parameters.
//
// Threads: the triples are split into as many contiguous parts as threads;
// each part indexes its own rows (the slots are numbered as the part's
// loop meets them, so no thread indexes the whole batch first) and sums its
// gradients in its own per-row buffers; the update is split by rows (the
// parts' row lists, each row taken where it first appears), summing the
// parts of a row in part order. Parts
// are tasks of a WorkPool, taken by whichever thread is free, so results
// are deterministic for a given thread count (and differ between counts
// only in the order of float sums).
//
// Thread-safety: one caller thread (the Learner's); the pool is internal.
#ifndef CFREC_LEARNER_SRC_FUSED_MF_H_
#define CFREC_LEARNER_SRC_FUSED_MF_H_

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "row_index.h"
#include "sparse_adam.h"
#include "work_pool.h"

namespace cfrec::learner {

// The parameters of an MF ranker as raw storage.
struct MfParams {
  bool gmf = false;
  RawParam user, item;  // tables: rows x dim
  RawParam h, bias;     // GMF only: h [dim], b [1]
};

// Seconds spent in each phase, summed over steps.
struct MfPhaseTimes {
  double index = 0;     // range checks and buffers (the rows are indexed
                        // inside the gradient pass)
  double gradient = 0;  // scores, loss and per-row gradient sums
  double update = 0;    // Adam on the touched rows and dense parameters
};

class FusedMfStep {
 public:
  explicit FusedMfStep(int threads);

  // One step on triples (user[n], pos[n], neg[n]); returns the mean loss.
  // `pairwise`: CPR eq. (1), -log sigma(f_i - f_j); else eq. (2), binary
  // cross-entropy of f_i (label 1) and f_j (label 0), averaged over 2n.
  // With `weights` (n of them), triple k's loss is multiplied by weights[k]
  // and the step minimises the mean of weight x loss (as the LibTorch
  // path's weighted loss); empty: every weight is 1. Indices must lie
  // within the tables' rows.
  double Step(const MfParams& params, bool pairwise,
              std::span<const int64_t> user, std::span<const int64_t> pos,
              std::span<const int64_t> neg, const AdamOptions& adam,
              std::span<const float> weights = {});

  const MfPhaseTimes& times() const { return times_; }
  int threads() const { return pool_.threads(); }
  // The kernel's threads, for other per-batch work split the same way.
  WorkPool& pool() { return pool_; }

 private:
  // One thread's gradient sums.
  struct Part {
    RowIndex users, items;                    // the part's rows and slots
    std::vector<float> user_grad, item_grad;  // slot x dim
    std::vector<float> h_grad;
    double bias_grad = 0;
    double loss = 0;
  };
  void Gradients(int t, const MfParams& p, bool pairwise, int64_t n);
  void Update(int t, const MfParams& p, const AdamOptions& adam);

  WorkPool pool_;
  std::vector<Part> parts_;
  MfPhaseTimes times_;
  AdamScalars user_adam_{AdamOptions{}, 1}, item_adam_{AdamOptions{}, 1};
  const int64_t* user_ = nullptr;
  const int64_t* pos_ = nullptr;
  const int64_t* neg_ = nullptr;
  const float* weights_ = nullptr;  // null: all 1
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_FUSED_MF_H_
