#include "cfrec/learner/bench_train.h"

#include <ATen/Parallel.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <random>

#include "cfrec/learner/learner.h"

namespace cfrec::learner {
namespace {

using state::AppliedEvent;

// CPU seconds (user + system) of every thread of the process so far.
double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + 1e-6 * t.tv_usec;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// Clicks with a Zipf-like item popularity (s ~ 1), as in real logs. Each
// event is a one-item impression with its click, so one event yields one
// pairwise sample (num_negatives = 1, catalog negatives): the same work as
// a plain BPR loop over (u, i, j) triples.
std::vector<AppliedEvent> MakeClicks(const BenchTrainOptions& o, size_t count,
                                     std::mt19937_64& rng, uint64_t& seq) {
  std::uniform_int_distribution<int64_t> user(0, o.users - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  double log_items = std::log(double(o.items));
  std::vector<AppliedEvent> events(count);
  for (AppliedEvent& e : events) {
    e.seq = ++seq;
    e.user = static_cast<uint32_t>(user(rng));
    auto item = static_cast<int64_t>(std::exp(unit(rng) * log_items)) - 1;
    e.items = {
        static_cast<uint32_t>(std::clamp<int64_t>(item, 0, o.items - 1))};
    e.clicked = {0};
  }
  return events;
}

// The same clicks as MakeClicks (the same draws), written into `events`
// in place: no allocation, for loops that time the generation too.
void RefillClicks(const BenchTrainOptions& o, std::vector<AppliedEvent>& events,
                  size_t count, std::mt19937_64& rng, uint64_t& seq) {
  std::uniform_int_distribution<int64_t> user(0, o.users - 1);
  std::uniform_real_distribution<double> unit(0, 1);
  double log_items = std::log(double(o.items));
  events.resize(count);
  for (AppliedEvent& e : events) {
    e.seq = ++seq;
    e.user = static_cast<uint32_t>(user(rng));
    auto item = static_cast<int64_t>(std::exp(unit(rng) * log_items)) - 1;
    e.items.resize(1);
    e.items[0] =
        static_cast<uint32_t>(std::clamp<int64_t>(item, 0, o.items - 1));
    e.clicked.assign(1, 0);
  }
}

// Impressions of `length` distinct items (uniform) with one click each,
// for the SEMs: p_R reads what was shown, p_S which entry was clicked.
std::vector<AppliedEvent> MakeLists(const BenchTrainOptions& o, size_t count,
                                    std::mt19937_64& rng, uint64_t& seq) {
  std::uniform_int_distribution<int64_t> user(0, o.users - 1);
  std::uniform_int_distribution<int64_t> item(0, o.items - 1);
  std::uniform_int_distribution<int> click(0, o.sem_list_length - 1);
  std::vector<AppliedEvent> events(count);
  for (AppliedEvent& e : events) {
    e.seq = ++seq;
    e.user = static_cast<uint32_t>(user(rng));
    while (e.items.size() < static_cast<size_t>(o.sem_list_length)) {
      auto i = static_cast<uint32_t>(item(rng));
      if (std::find(e.items.begin(), e.items.end(), i) == e.items.end()) {
        e.items.push_back(i);
      }
    }
    e.clicked = {static_cast<uint16_t>(click(rng))};
  }
  return events;
}

// p_R, p_S and the posteriors beside a BPR ranker, timed per step.
Result<BenchTrainSem> RunSemBench(const BenchTrainOptions& o) {
  LearnerOptions lo;
  lo.ranker = "bpr";
  lo.loss = "pairwise";
  lo.negatives = "catalog";
  lo.num_negatives = 1;
  lo.dim = o.dim;
  lo.batch_size = o.batch_size;
  lo.train_sems = true;
  lo.train_on_history = false;
  lo.seed = o.seed;
  lo.kernel = o.kernel;
  lo.train_threads = o.threads;
  lo.initial_rows = static_cast<int>(std::max(o.users, o.items));
  auto learner = Learner::Create(lo);
  if (!learner.ok()) return learner.status();
  std::mt19937_64 rng(o.seed);
  uint64_t seq = 0;
  AppliedEvent span_all;
  span_all.seq = ++seq;
  span_all.user = static_cast<uint32_t>(o.users - 1);
  span_all.items = {static_cast<uint32_t>(o.items - 1)};
  std::vector<AppliedEvent> warm = MakeLists(o, o.batch_size, rng, seq);
  warm.insert(warm.begin(), span_all);
  CFREC_RETURN_IF_ERROR((*learner)->Train(warm));
  // A round of 8 ranker batches (one click, one negative per list).
  const size_t round = 8 * static_cast<size_t>(o.batch_size);
  BenchTrainSem m;
  const TrainTimes before = (*learner)->train_times();
  auto start = std::chrono::steady_clock::now();
  while (m.seconds < o.seconds) {
    std::vector<AppliedEvent> events = MakeLists(o, round, rng, seq);
    auto t0 = std::chrono::steady_clock::now();
    const double cpu0 = ProcessCpuSeconds();
    CFREC_RETURN_IF_ERROR((*learner)->Train(events));
    m.cpu_seconds += ProcessCpuSeconds() - cpu0;
    m.lists += events.size();
    m.seconds +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
            .count();
    if (std::chrono::steady_clock::now() - start >
        std::chrono::duration<double>(10 * o.seconds)) {
      break;
    }
  }
  const TrainTimes after = (*learner)->train_times();
  m.impression_s = after.sem_impression - before.sem_impression;
  m.selection_s = after.sem_selection - before.sem_selection;
  m.posterior_s = after.sem_posterior - before.sem_posterior;
  m.sems_s = after.sems - before.sems;
  return m;
}

}  // namespace

Result<BenchTrainResult> RunBenchTrain(const BenchTrainOptions& o) {
  if (o.users <= 0 || o.items <= 1 || o.batch_size <= 0 || o.dim <= 0 ||
      o.seconds <= 0 || o.threads <= 0 || o.sem_list_length < 2 ||
      o.sem_list_length > o.items) {
    return Status::InvalidArgument("bench train: sizes must be positive");
  }
  if (o.mlp_matmul != "own" && o.mlp_matmul != "blas") {
    return Status::InvalidArgument(
        "bench train: --mlp-matmul must be own or blas");
  }
  if (o.kernel != "fused" && o.kernel != "torch") {
    return Status::InvalidArgument(
        "bench train: --kernel must be fused or torch");
  }
  at::set_num_threads(o.threads);
  BenchTrainResult result;
  result.options = o;
  for (const std::string& ranker : o.rankers) {
    LearnerOptions lo;
    lo.ranker = ranker;
    lo.loss = "pairwise";
    lo.negatives = "catalog";
    lo.num_negatives = 1;
    lo.dim = o.dim;
    lo.batch_size = o.batch_size;
    lo.train_sems = false;  // the ranker alone, as the baseline
    lo.train_on_history = false;
    lo.seed = o.seed;
    lo.kernel = o.kernel;
    lo.mlp_matmul = o.mlp_matmul;
    lo.train_threads = o.threads;
    lo.train_pipeline = o.pipeline;
    lo.initial_rows = static_cast<int>(std::max(o.users, o.items));
    auto learner = Learner::Create(lo);
    if (!learner.ok()) return learner.status();
    std::mt19937_64 rng(o.seed);
    uint64_t seq = 0;
    // Every user and item exists from the start (tables at full size).
    AppliedEvent span_all;
    span_all.seq = ++seq;
    span_all.user = static_cast<uint32_t>(o.users - 1);
    span_all.items = {static_cast<uint32_t>(o.items - 1)};
    std::vector<AppliedEvent> warm = MakeClicks(o, 4 * o.batch_size, rng, seq);
    warm.insert(warm.begin(), span_all);
    CFREC_RETURN_IF_ERROR((*learner)->Train(warm));
    // Rounds of 8 batches, as the trainer hands over a few thousand events.
    const size_t round = 8 * static_cast<size_t>(o.batch_size);
    BenchTrainModel m;
    m.ranker = ranker;
    uint64_t steps_before = (*learner)->stats().steps;
    const TrainTimes times_before = (*learner)->train_times();
    auto start = std::chrono::steady_clock::now();
    if (o.pipeline) {
      // A round trains while the loop generates the next one and Train
      // prepares it, so the whole loop is timed, generation included, up
      // to the end of the last round's training (stats() waits for it).
      std::vector<AppliedEvent> buffers[2];
      const double cpu0 = ProcessCpuSeconds();
      double elapsed = 0;
      for (int k = 0; elapsed < o.seconds; k ^= 1) {
        auto g0 = std::chrono::steady_clock::now();
        RefillClicks(o, buffers[k], round, rng, seq);
        m.generate_s +=
            std::chrono::duration<double>(std::chrono::steady_clock::now() - g0)
                .count();
        CFREC_RETURN_IF_ERROR((*learner)->Train(buffers[k]));
        m.samples += round;
        elapsed = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      }
      (void)(*learner)->stats();  // the last round's training
      m.seconds = std::chrono::duration<double>(
                      std::chrono::steady_clock::now() - start)
                      .count();
      m.cpu_seconds = ProcessCpuSeconds() - cpu0;
    }
    while (!o.pipeline && m.seconds < o.seconds) {
      std::vector<AppliedEvent> events = MakeClicks(o, round, rng, seq);
      auto t0 = std::chrono::steady_clock::now();
      const double cpu0 = ProcessCpuSeconds();
      CFREC_RETURN_IF_ERROR((*learner)->Train(events));
      m.cpu_seconds += ProcessCpuSeconds() - cpu0;
      m.samples += events.size();
      // Data generation is not training time; the baseline excludes it too.
      m.seconds +=
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0)
              .count();
      if (std::chrono::steady_clock::now() - start >
          std::chrono::duration<double>(10 * o.seconds)) {
        break;
      }
    }
    m.steps = (*learner)->stats().steps - steps_before;
    const TrainTimes times = (*learner)->train_times();
    m.prepare_s = times.prepare - times_before.prepare;
    m.ranker_index_s = times.ranker_index - times_before.ranker_index;
    m.ranker_gradient_s = times.ranker_gradient - times_before.ranker_gradient;
    m.ranker_update_s = times.ranker_update - times_before.ranker_update;
    m.ranker_torch_s = times.ranker_torch - times_before.ranker_torch;
    m.samples_per_sec = m.samples / m.seconds;
    auto t0 = std::chrono::steady_clock::now();
    auto snapshot = (*learner)->MakeSnapshot(SnapshotInputs{});
    if (!snapshot.ok()) return snapshot.status();
    m.snapshot_ms = std::chrono::duration<double, std::milli>(
                        std::chrono::steady_clock::now() - t0)
                        .count();
    result.models.push_back(m);
  }
  if (o.sems) {
    auto sem = RunSemBench(o);
    if (!sem.ok()) return sem.status();
    result.has_sem = true;
    result.sem = *sem;
  }
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  result.peak_rss_kb = usage.ru_maxrss;
  return result;
}

std::string BenchTrainResultToJson(const BenchTrainResult& r) {
  nlohmann::json j = {
      {"bench", "train"},
      {"users", r.options.users},
      {"items", r.options.items},
      {"batch_size", r.options.batch_size},
      {"dim", r.options.dim},
      {"threads", r.options.threads},
      {"pipeline", r.options.pipeline},
      {"kernel", r.options.kernel},
      {"mlp_matmul", r.options.mlp_matmul},
      {"peak_rss_mb", double(r.peak_rss_kb) / 1024.0},
  };
  for (const BenchTrainModel& m : r.models) {
    j[m.ranker] = {{"samples", m.samples},
                   {"steps", m.steps},
                   {"seconds", m.seconds},
                   {"samples_per_sec", m.samples_per_sec},
                   {"cpu_seconds", m.cpu_seconds},
                   {"samples_per_cpu_sec",
                    m.cpu_seconds > 0 ? m.samples / m.cpu_seconds : 0.0},
                   // CPU seconds per wall second: the cores actually used.
                   {"cores", m.seconds > 0 ? m.cpu_seconds / m.seconds : 0.0},
                   {"snapshot_ms", m.snapshot_ms},
                   {"generate_s", m.generate_s},
                   {"phases_s",
                    {{"prepare", m.prepare_s},
                     {"index", m.ranker_index_s},
                     {"gradient", m.ranker_gradient_s},
                     {"update", m.ranker_update_s},
                     {"torch_step", m.ranker_torch_s}}}};
  }
  if (r.has_sem) {
    const BenchTrainSem& m = r.sem;
    auto per_sec = [&](double seconds) {
      return seconds > 0 ? double(m.lists) / seconds : 0.0;
    };
    j["sem"] = {{"lists", m.lists},
                {"list_length", r.options.sem_list_length},
                {"seconds", m.seconds},
                {"cpu_seconds", m.cpu_seconds},
                {"cores", m.seconds > 0 ? m.cpu_seconds / m.seconds : 0.0},
                {"lists_per_sec", per_sec(m.seconds)},
                {"p_r_lists_per_sec", per_sec(m.impression_s)},
                {"p_s_lists_per_sec", per_sec(m.selection_s)},
                {"posterior_lists_per_sec", per_sec(m.posterior_s)},
                {"phases_s",
                 {{"p_r", m.impression_s},
                  {"p_s", m.selection_s},
                  {"posterior", m.posterior_s},
                  {"sems", m.sems_s}}}};
  }
  return j.dump();
}

}  // namespace cfrec::learner
