// Hyper-parameters of the learner and of the online trainer, and their JSON
// config file. Plain structs: every field documents its default; options are
// validated once by ValidateLearnerOptions / LoadTrainerOptions.
#ifndef CFREC_LEARNER_OPTIONS_H_
#define CFREC_LEARNER_OPTIONS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::learner {

// Models, losses and their optimisation (CPR sections 2.2 and 3.1).
struct LearnerOptions {
  // Ranker f(u, i): "bpr" (matrix factorisation), "gmf", "mlp", "neumf",
  // "lightgcn". Default "bpr".
  std::string ranker = "bpr";
  // "pairwise" (CPR eq. 1) or "pointwise" (CPR eq. 2). Default "pairwise".
  std::string loss = "pairwise";
  // Where negatives come from: "impression" (non-clicked items of the same
  // list), "catalog" (uniform over known items the user never clicked) or
  // "mix" (alternating, as the paper uses both). Default "mix".
  std::string negatives = "mix";
  // Negatives per clicked item. Default 5 (reference code).
  int num_negatives = 5;
  // Ranker embedding size. Default 64.
  int dim = 64;
  // Hidden layer sizes of the MLP tower (mlp, neumf). Default {64, 32}.
  std::vector<int> mlp_hidden = {64, 32};
  // LightGCN propagation layers. Default 2.
  int lightgcn_layers = 2;
  // LightGCN rebuilds its normalised click graph at most every this many
  // ranker steps when new clicks arrived. Default 20.
  int lightgcn_rebuild_steps = 20;
  // Ranker samples per optimizer step. Default 2048 (reference code).
  int batch_size = 2048;
  // Adam learning rate of the ranker. Default 1e-3 (reference code).
  double lr = 1e-3;
  // L2 weight decay, applied to the rows a step touches. Default 1e-3.
  double weight_decay = 1e-3;
  // History items (clicked before the stream) become positives with catalog
  // negatives, once per user. Default true.
  bool train_on_history = true;

  // --- Structural equation models and posteriors (CPR eqs. 4-9) ---
  // Train p_R, p_S and q(alpha), q(beta) alongside the ranker. Default true.
  bool train_sems = true;
  // Embedding size d_R of P, Q and d_S of X, Y. Default 32.
  int sem_dim = 32;
  // Adam learning rate of p_R and p_S. Default 1e-3.
  double sem_lr = 1e-3;
  // Adam learning rate of the variational parameters. Default 1e-2.
  double posterior_lr = 1e-2;
  // Monte-Carlo draws of alpha per step of eq. (6), loss averaged (CPR
  // footnote 3). Default 4.
  int alpha_samples = 4;
  // Reparameterised draws per ELBO estimate (eq. 9). Default 2.
  int posterior_samples = 2;
  // p_R positives per impression list (a random subset of long lists).
  // Default 16.
  int sem_positives_per_list = 16;
  // p_R negatives (non-recommended items) per positive. Default 1.
  int sem_negatives_per_positive = 1;
  // Positions with their own w_S and beta; later positions share the last.
  // Default 300 (MIND lists have 2 to 300 items).
  int max_positions = 300;

  // Initial rows of every embedding table; tables double when a larger
  // index arrives. Default 1024.
  int initial_rows = 1024;
  // Seed of every random choice (init, sampling, shuffling). Default 42.
  uint64_t seed = 42;
};

// The online trainer: LearnerOptions plus the service's own settings.
struct TrainerOptions {
  LearnerOptions learner;
  // Publish a scoring snapshot at this interval. Default 500 ms.
  int snapshot_interval_ms = 500;
  // Write a checkpoint to the store at this interval (and on Stop).
  // Default 60 s; 0 disables periodic checkpoints.
  int checkpoint_interval_s = 60;
  // Checkpoint name in the store. Default "learner".
  std::string checkpoint_name = "learner";
  // Serving candidate pool: items impressed within this event-time window
  // before the newest event. Default 48 h.
  int64_t candidate_window_ms = 48LL * 3600 * 1000;
  // Bounded input queue, in applied events; Enqueue blocks when full.
  // Default 65536.
  int queue_capacity = 65536;
  // Most new events handed to the learner in one training round.
  // Default 4096.
  int max_events_per_round = 4096;
  // Old events re-read from the applied log per new event trained (replay
  // buffer). Default 0.25.
  double replay_ratio = 0.25;
  // Nice value of the trainer thread (0-19; 0 = same priority as the rest).
  // Default 10: serving latency before training throughput.
  int nice = 10;
  // Intervention for the counterfactual engine: "none", "random",
  // "learned". Default "none" (kept for the next issue; only recorded).
  std::string intervention = "none";
  // Training mode: "default", "ps", "acl". Default "default" (recorded).
  std::string trainer = "default";
};

// Checks ranges and enumerations; the error names the field.
Status ValidateLearnerOptions(const LearnerOptions& options);
Status ValidateTrainerOptions(const TrainerOptions& options);

// Reads a JSON object whose keys are the field names above (one flat
// object; LearnerOptions fields at the top level too). Missing keys keep
// their defaults; unknown keys and wrong types are rejected.
Result<TrainerOptions> LoadTrainerOptions(const std::string& json_path);
Result<TrainerOptions> ParseTrainerOptions(const std::string& json_text);
// The options as that JSON object (round-trips through ParseTrainerOptions).
std::string TrainerOptionsToJson(const TrainerOptions& options);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_OPTIONS_H_
