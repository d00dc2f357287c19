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
  // L2 weight decay lambda, applied to the parameters a step touches as the
  // gradient of lambda/2 ||theta||^2 / batch_size: the reference code's
  // regulariser (squared norms of the batch's embeddings, summed and divided
  // by the batch size, like the mean loss beside it), with each touched row
  // counted once. Applied undivided, it outweighed the mean loss's per-row
  // gradients (about 1/batch_size of a sample's) and held GMF at chance.
  // Default 1e-3.
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

  // --- Training kernels (docs/LEARNER.md, "Training kernels") ---
  // "fused": BPR-MF and GMF (trainer "default") and p_R, p_S train with
  // the fused CPU kernels (one pass per batch: gather, forward, backward,
  // row-wise Adam; no autograd); the other models through LibTorch.
  // "torch": everything through LibTorch's autograd. Both give the same
  // updates to float rounding and read each other's checkpoints.
  // Default "fused".
  std::string kernel = "fused";
  // Threads of the fused ranker kernel: a batch's triples are split among
  // them and the row updates too (deterministic for a given count). 1 to
  // 64. Default 1.
  int train_threads = 1;
  // Pipelined rounds: Train prepares a round (records its clicks, samples
  // and shuffles its triples) on the calling thread, hands its batches to
  // a thread of the learner's own and returns while they train, so the
  // next round is prepared while this one trains (one more thread than
  // train_threads). The same triples and the same steps in the same order
  // as without it: results are identical. Every other call (snapshots,
  // checkpoints, scores, stats) waits for the round in training first; a
  // round that fails is reported by the next Train. Takes effect only for
  // the fused BPR-MF and GMF kernel without SEMs (train_sems false) and
  // without ACL, whose batches draw no random numbers; otherwise rounds
  // train on the calling thread. Default false.
  bool train_pipeline = false;
  // Products of the MLP tower (mlp, neumf): "blas" (LibTorch's addmm, i.e.
  // the system BLAS: OpenBLAS, which scripts/dev.sh installs) or "own" (the
  // kernels of dense_kernels.cc, faster than Debian's reference BLAS but
  // not than OpenBLAS; docs/BENCHMARKS.md). Default "blas".
  std::string mlp_matmul = "blas";

  // --- Training mode and exposure model (ACL paper, A.5 and A.6.4) ---
  // "default" (unweighted ranker loss), "ps" (inverse-propensity weights
  // from a pre-fitted exposure model g_psi, A.6.4) or "acl" (the minimax
  // objective (8): g_psi plays against the ranker). In "ps" and "acl" `lr`
  // is r_theta, the ranker's rate. The JSON key "trainer" sets this field
  // and TrainerOptions::trainer together. Default "default".
  std::string trainer = "default";
  // Exposure model g_psi(u, i): "gmf", "mlp" or "neumf" (its MLP tower uses
  // mlp_hidden). Default "gmf".
  std::string exposure_model = "gmf";
  // Embedding size of g_psi. Default 32 (the appendix's hidden size).
  int exposure_dim = 32;
  // alpha of (8): weight of g_psi's exposure-fitting loss against the
  // weighted ranker loss it maximises; any value > 0 (paper: 0.1, 1, 2).
  // Default 1.
  double acl_alpha = 1.0;
  // r_psi: Adam learning rate of g_psi (two-timescale, A.6.4; larger than
  // r_theta = lr so g fits the exposure quickly, A.6.6). Default 1e-2.
  double acl_r_psi = 1e-2;
  // Propensities G_beta are clipped to [propensity_clip_min,
  // propensity_clip_max] (0 < min <= max <= 1), so every weight 1/G lies in
  // [1/max, 1/min]. Defaults 0.05 and 1.
  double propensity_clip_min = 0.05;
  double propensity_clip_max = 1.0;
  // g_psi-only steps (mini-batches of batch_size exposure terms) on the
  // first events trained, before the ranker's first weighted step: stage 1
  // of "ps", a warm start for "acl". Default 200.
  int exposure_pretrain_steps = 200;
};

// The counterfactual engine (CPR sections 3.1.3-3.3, Algorithms 1-2). In
// the JSON config these are flat keys with the prefix "cf_" (e.g.
// "cf_list_size"), except `intervention`: the trainer takes it from
// TrainerOptions::intervention (the "intervention" key and the CLI flag).
struct CounterfactualOptions {
  // "none" (observed data only), "random" (uniform lists: the paper's CPR-r
  // ablation) or "learned" (CPR's Gaussian policy). Default "none".
  std::string intervention = "none";
  // K, the length of a simulated recommendation list. Default 5 (paper 4.1).
  int list_size = 5;
  // k of section 3.3.3: the k most and k least likely clicked items of a
  // list form k*k pairs; needs 2k <= K. Default 1.
  int noise_k = 1;
  // Items the action step ranks per list: 0 = the whole catalog, else a
  // fresh uniform pool of this size per list (pools of more than half the
  // catalog use the whole catalog). Default 2000: the whole catalog of the
  // papers' data sets, and on a 20k-item catalog about 7x more lists/s in
  // learned mode (docs/BENCHMARKS.md).
  int candidate_pool = 2000;
  // Exploration share of the learned policy's lists (epsilon-greedy for
  // the policy gradient): E = min(K - 1, lround(share * K)) of a list's K
  // slots (lround rounds halves away from zero: 0.3 x 5 -> 2) hold items
  // drawn uniformly from the candidate pool (or the catalog) among items
  // not already in the list, each inserted at a uniform position; the
  // policy's top K - E items fill the others, in their order. Applies to
  // the policy's pretraining rounds as well as to generation; TopK ignores
  // it. In [0, 1). Default 0 (every slot the policy's, no extra draw).
  double explore_share = 0;
  // Hidden units of the two-layer policy network (eq. 11). Default 32
  // (paper: searched in {16, 32, 64}).
  int policy_hidden = 32;
  // Adam learning rate of the policy (gradient ascent on eq. 11).
  // Default 1e-3.
  double policy_lr = 1e-3;
  // Standard deviation of the Gaussian over item centers tau (initial value
  // when learned). Default 0.1 (p_R's embeddings start at std 0.1).
  double policy_std = 0.1;
  // Learn log std per dimension by REINFORCE too. Default false.
  bool learn_std = false;
  // Std of the exploration noise N_t added to tau while pretraining
  // (Algorithm 2, line 5). Default 0.1.
  double exploration_std = 0.1;
  // Pretraining episodes (Algorithm 2, outer loop). Default 50.
  int pretrain_rounds = 50;
  // Users (actions) per pretraining episode, T of Algorithm 2. Default 256.
  int pretrain_users = 256;
  // Weight of the old value in the running reward baseline. Default 0.9.
  double baseline_decay = 0.9;
  // Counterfactual ranker samples trained per observed ranker sample.
  // Default 0.25: at 1, on a MIND-like log, C(tau) from young SEMs pulled
  // validation NDCG@10 down; at 0.2 CPR's validation NDCG rose above the
  // base model's (tests/learner/eval_models_test.cc sizes, BPR).
  double mix_ratio = 0.25;
  // Users simulated per Generate round (one list each). Default 256.
  int users_per_round = 256;
  // Trainer: generate in a background thread against a periodically
  // refreshed copy of the learner (true), or inline in the trainer's rounds,
  // deterministically (false). Default true.
  bool background = true;
  // Trainer, background mode: the learner copy is refreshed at this
  // interval. Default 2000 ms.
  int refresh_interval_ms = 2000;
  // Trainer, background mode: sample batches (one per round) the queue to
  // the trainer holds. Default 8.
  int queue_batches = 8;
  // Trainer: distinct recently active users simulated from. Default 4096.
  int recent_users = 4096;
  // Seed of the engine's random choices (policy init, tau, alpha, beta,
  // pools). Default 1234.
  uint64_t seed = 1234;
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
  // When no new event is waiting, keep training on random old events of the
  // applied log, up to this many passes over it per quiet period (the
  // budget resets when new events arrive). A model that learns only while
  // events flow barely moves after a short replay; this keeps it learning
  // between bursts. Default 20; 0 disables (tests that count rounds).
  double idle_replay_passes = 20;
  // Old events per idle-replay round; the queue is checked between rounds,
  // so new events wait at most one round. Default 1024.
  int idle_replay_chunk = 1024;
  // Nice value of the trainer's threads (0-19; 0 = same priority as the
  // rest). Default 10: serving latency before training throughput.
  int nice = 10;
  // Scheduling policy of the trainer's threads: the trainer thread (which
  // also builds each snapshot, its retrieval index and the checkpoints), the
  // fused kernels' workers and the counterfactual generator.
  // "normal" (SCHED_OTHER at `nice`), "batch" (SCHED_BATCH at `nice`: never
  // preempts a thread on waking) or "idle" (SCHED_IDLE: only CPU no other
  // thread wants; it may get none on a saturated machine). See
  // cfrec/schemas/thread_sched.h. Default "normal".
  std::string sched = "normal";
  // Intervention for the counterfactual engine: "none", "random",
  // "learned" (overrides counterfactual.intervention). Default "none".
  std::string intervention = "none";
  // The counterfactual engine's settings (JSON keys "cf_*").
  CounterfactualOptions counterfactual;
  // Training mode: "default", "ps", "acl". Default "default". Mirrors
  // learner.trainer (which selects the mode); the JSON key "trainer" sets
  // both and validation rejects a mismatch.
  std::string trainer = "default";
  // Stream-aware scoring (cfrec::stream): event-time item counters and an
  // online feature model that combines them with the ranker's f(u, i);
  // what /v1/rank and /v1/recommendations rank by. false keeps the ranker
  // alone and the popularity list for unknown users (for ablation).
  // Default true.
  bool stream_features = true;
  // AdaGrad step of the stream feature model. Default 0.1.
  double stream_learning_rate = 0.1;
  // Items and users the stream has not named for this long (event time)
  // are forgotten. Default 72 h.
  int64_t stream_evict_after_ms = 72LL * 3600 * 1000;
};

// Checks ranges and enumerations; the error names the field.
Status ValidateLearnerOptions(const LearnerOptions& options);
Status ValidateTrainerOptions(const TrainerOptions& options);
Status ValidateCounterfactualOptions(const CounterfactualOptions& options);

// Reads a JSON object whose keys are the field names above (one flat
// object; LearnerOptions fields at the top level too). Missing keys keep
// their defaults; unknown keys and wrong types are rejected.
Result<TrainerOptions> LoadTrainerOptions(const std::string& json_path);
Result<TrainerOptions> ParseTrainerOptions(const std::string& json_text);
// The options as that JSON object (round-trips through ParseTrainerOptions).
std::string TrainerOptionsToJson(const TrainerOptions& options);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_OPTIONS_H_
