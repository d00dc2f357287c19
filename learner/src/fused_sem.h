// FusedSemStep: one training step of CPR's structural equation models
// without LibTorch, on the same storage and with the same arithmetic as the
// LibTorch path (models.cc, learner.cc): gather, forward, backward and
// row-wise Adam of the touched rows, in one pass per batch.
//
//  - p_R, eq. (6): logit(u, k) = P_u . Q_k + w^R_k alpha, binary
//    cross-entropy against "shown", averaged over the alpha draws and terms.
//  - p_S, eq. (7): logit(u, j) = X_u . Y_j + w^S_pos(j) beta, the negative
//    log of the in-list softmax at the clicked entries, averaged over draws
//    and clicks; w^S is dense (every position is updated, as in LibTorch).
//
// The noise (alpha, beta) is drawn by the caller, from the learner's
// generator, in the same order as the LibTorch path draws it.
//
// Thread-safety: none; the Learner's thread.
#ifndef CFREC_LEARNER_SRC_FUSED_SEM_H_
#define CFREC_LEARNER_SRC_FUSED_SEM_H_

#include <cstdint>
#include <span>
#include <vector>

#include "row_index.h"
#include "sparse_adam.h"

namespace cfrec::learner {

struct ImpressionParams {
  RawParam p, q, w;  // P [users, d], Q [items, d], w^R [items, 1]
};
struct SelectionParams {
  RawParam x, y;  // X [users, d], Y [items, d]
  RawParam w;     // w^S [max_positions], dense
};

// p_S's data: entries of the clicked lists (user, item, position, list)
// and the clicked entries with their list.
struct SelectionBatch {
  std::span<const int64_t> user, item, position, segment;
  std::span<const int64_t> click_entry, click_segment;
  int64_t segments = 0;
};

class FusedSemStep {
 public:
  // alpha holds `draws` x n values (draw-major). Returns the mean loss.
  double Impression(const ImpressionParams& params,
                    std::span<const int64_t> user,
                    std::span<const int64_t> item, std::span<const float> shown,
                    std::span<const float> alpha, int draws,
                    const AdamOptions& adam);
  // beta holds `draws` x entries values (draw-major). Returns the mean loss.
  double Selection(const SelectionParams& params, const SelectionBatch& batch,
                   std::span<const float> beta, int draws,
                   const AdamOptions& adam);

 private:
  // Sizes scratch for a batch of `n` entries over two tables of `dim`.
  void Prepare(int64_t n, int64_t users, int64_t items, int64_t dim);
  // Adam on the touched rows of `table` (gradients slot x cols).
  static void UpdateRows(const RawParam& table, const RowIndex& index,
                         const float* grad, const AdamOptions& adam);

  RowIndex users_, items_;
  std::vector<int32_t> su_, si_;
  std::vector<float> user_grad_, item_grad_, w_grad_;
  std::vector<float> logits_, lse_;
  std::vector<double> dots_;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SRC_FUSED_SEM_H_
