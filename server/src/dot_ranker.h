// Whether a snapshot's active ranker is the dot product of the very vectors
// retrieval reads: a ScoringModel of kind kDot (BPR, LightGCN) whose tables
// are the arrays UserVector() and ItemVector() point into. Then the float
// dot products retrieval computes for its candidates are the ranker's
// scores, and serving scores with them instead of calling Score() again
// (the same f(u, i), summed in the order the retrieval kernels sum it).
//
// Decided by identity of memory, not by equal values: a snapshot whose
// retrieval vectors are a separate copy (another ranker, or a model that
// publishes both) keeps its own Score().
#ifndef CFREC_SERVER_SRC_DOT_RANKER_H_
#define CFREC_SERVER_SRC_DOT_RANKER_H_

#include <cstddef>
#include <cstdint>

#include "cfrec/learner/scoring_model.h"
#include "cfrec/learner/snapshot.h"

namespace cfrec::server {

// The snapshot's ScoringModel when it ranks by a plain dot product of
// dim() floats; null otherwise.
inline const learner::ScoringModel* DotRanker(
    const learner::ModelSnapshot& snapshot) {
  const learner::ScoringModel* model = snapshot.scoring_model();
  if (model == nullptr || model->kind != learner::ScoringModel::Kind::kDot ||
      model->dot_dim != snapshot.dim() || model->dot_dim <= 0) {
    return nullptr;
  }
  return model;
}

// True when Score(user, .) reads the row UserVector(user) points at.
inline bool SharesUserRow(const learner::ModelSnapshot& snapshot,
                          const learner::ScoringModel& model, uint32_t user) {
  if (static_cast<int64_t>(user) >= model.num_users) return false;
  const size_t offset = size_t{user} * static_cast<size_t>(model.dot_dim);
  if (offset + model.dot_dim > model.user.size()) return false;
  return snapshot.UserVector(user).data() == model.user.data() + offset &&
         snapshot.UserVector(user).size() == static_cast<size_t>(model.dot_dim);
}

// True when Score(., item) reads the row ItemVector(item) points at.
inline bool SharesItemRow(const learner::ModelSnapshot& snapshot,
                          const learner::ScoringModel& model, uint32_t item) {
  if (static_cast<int64_t>(item) >= model.num_items) return false;
  const size_t offset = size_t{item} * static_cast<size_t>(model.dot_dim);
  if (offset + model.dot_dim > model.item.size()) return false;
  return snapshot.ItemVector(item).data() == model.item.data() + offset &&
         snapshot.ItemVector(item).size() == static_cast<size_t>(model.dot_dim);
}

}  // namespace cfrec::server

#endif  // CFREC_SERVER_SRC_DOT_RANKER_H_
