// Training throughput benchmark (`cfrec bench train`): ranker samples per
// second at a fixed batch size on generated clicks, on one intra-op thread,
// through the same Learner code path the online trainer uses.
#ifndef CFREC_LEARNER_BENCH_TRAIN_H_
#define CFREC_LEARNER_BENCH_TRAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/schemas/status.h"

namespace cfrec::learner {

struct BenchTrainOptions {
  // Id space of the generated data. Defaults 50,000 users x 20,000 items.
  int64_t users = 50000;
  int64_t items = 20000;
  // Ranker samples per step. Default 2048.
  int batch_size = 2048;
  // Embedding size. Default 64.
  int dim = 64;
  // Rankers to measure, in order. Default {"bpr", "neumf"}.
  std::vector<std::string> rankers = {"bpr", "neumf"};
  // Measured wall time per ranker (after one warm-up round). Default 10 s.
  double seconds = 10;
  // Threads: LibTorch's intra-op threads and the fused kernel's
  // train_threads. Default 1 (as the trainer).
  int threads = 1;
  // LearnerOptions::train_pipeline: the next round is prepared on the
  // bench's thread while a thread of the learner trains the round before
  // (so one thread more than `threads`). The measured span is then the
  // whole loop, generating the events included (generate_s), since the
  // training overlaps it. Default off.
  bool pipeline = false;
  // Training kernel, LearnerOptions::kernel: "fused" or "torch". Default
  // "fused".
  std::string kernel = "fused";
  // LearnerOptions::mlp_matmul for the MLP tower: "blas" or "own". Default
  // "blas".
  std::string mlp_matmul = "blas";
  // Seed of data and models. Default 42.
  uint64_t seed = 42;
  // Also measure the SEMs p_R and p_S (and the posteriors, which step on
  // the same events) on generated lists of `sem_list_length` items with one
  // click each, beside a BPR ranker. Default off; lists of 10.
  bool sems = false;
  int sem_list_length = 10;
};

struct BenchTrainModel {
  std::string ranker;
  uint64_t samples = 0;  // BPR triples trained (pairwise, 1 negative each)
  uint64_t steps = 0;
  double seconds = 0;
  double samples_per_sec = 0;
  // CPU time of all the process's threads over the same span: on a shared
  // machine samples / cpu_seconds shows the cost of a sample, and
  // cpu_seconds / seconds how many threads actually ran.
  double cpu_seconds = 0;
  // Time to build one serving snapshot of the trained model (every id has
  // a row and clicks), as the trainer does every snapshot_interval_ms.
  double snapshot_ms = 0;
  // Where the measured seconds went (Learner::train_times, same span).
  double prepare_s = 0;          // clicks, negatives, shuffle
  double ranker_index_s = 0;     // fused: unique rows
  double ranker_gradient_s = 0;  // fused: scores and gradient sums
  double ranker_update_s = 0;    // fused: Adam on touched rows
  double ranker_torch_s = 0;     // LibTorch step, whole
  // Generating the events inside the measured span (pipeline only).
  double generate_s = 0;
};

// The SEM measurement (BenchTrainOptions::sems): lists trained per second
// of each SEM step's own time, so the ranker's share does not count.
struct BenchTrainSem {
  uint64_t lists = 0;  // impressions trained (one click each)
  double seconds = 0;  // wall time of Learner::Train, everything included
  double cpu_seconds = 0;
  double impression_s = 0;  // p_R steps (eq. 6), terms built outside
  double selection_s = 0;   // p_S steps (eq. 7)
  double posterior_s = 0;   // posterior steps (eq. 9, LibTorch)
  double sems_s = 0;        // all of the above, with building their terms
};

struct BenchTrainResult {
  BenchTrainOptions options;
  std::vector<BenchTrainModel> models;
  bool has_sem = false;
  BenchTrainSem sem;
  int64_t peak_rss_kb = 0;  // of the whole process (getrusage)
};

Result<BenchTrainResult> RunBenchTrain(const BenchTrainOptions& options);
// One line of JSON: {"bench":"train", ...}.
std::string BenchTrainResultToJson(const BenchTrainResult& result);

}  // namespace cfrec::learner

#endif  // CFREC_LEARNER_BENCH_TRAIN_H_
