// ScoringModel: a LibTorch-free copy of a ranker's weights that scores in
// plain C++. Snapshots hold one, so serving threads never touch the
// trainer's tensors and need no autograd; serving replicas (replica/)
// receive one through Kafka and score with the same code. Immutable once
// built; Score is safe to call from many threads at once.
#ifndef CFREC_LEARNER_SCORING_MODEL_H_
#define CFREC_LEARNER_SCORING_MODEL_H_

#include <cstdint>
#include <span>
#include <vector>

namespace cfrec::learner {

struct DenseLayer {
  int in = 0;
  int out = 0;
  std::vector<float> w;  // out x in, row-major
  std::vector<float> b;  // out
};

struct ScoringModel {
  enum class Kind { kDot, kNeural };
  Kind kind = Kind::kDot;
  int64_t num_users = 0;
  int64_t num_items = 0;
  // kDot: f = user[u] . item[i] (BPR, LightGCN's propagated embeddings).
  // kNeural: GMF part h_gmf . (gmf_user[u] * gmf_item[i]) (when gmf_dim>0)
  // plus MLP tower over [mlp_user[u]; mlp_item[i]] then h_mlp . z + bias.
  int dot_dim = 0;
  std::vector<float> user, item;
  int gmf_dim = 0;
  std::vector<float> gmf_user, gmf_item, h_gmf;
  int mlp_dim = 0;
  std::vector<float> mlp_user, mlp_item, h_mlp;
  std::vector<DenseLayer> mlp;
  float bias = 0;

  // scores[k] = f(user, items[k]); rows past the model's tables score -inf.
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> scores) const;
};

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_SCORING_MODEL_H_
