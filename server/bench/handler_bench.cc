// Micro-benchmarks of the serving hot path without sockets: the dot-product
// retrieval + ranking (Recommend) and the whole GET /v1/recommendations
// handler including query parsing and JSON, on a 20,000-item, d=64 model;
// the argument `stream` is 1 with stream features (the default of `cfrec
// serve`), 0 without; `exact` 1 scans the pool in float only, 0 (the
// default of `cfrec serve`) bounds it with the int8 pass first; `dot` 1
// ranks by the plain dot product of the retrieval vectors (BPR, the default
// ranker of `cfrec serve`), 0 by the fake's dot product plus an item bias.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>

#include "cfrec/server/recommend.h"
#include "cfrec/server/service.h"
#include "cfrec/server/testing/fake_snapshot.h"
#include "cfrec/server/testing/stream_fixture.h"

namespace {

using cfrec::server::testing::MakeRandomSnapshot;

constexpr size_t kUsers = 10000;

// The model of (items, dim, stream, dot), built once per process: the benchmark
// library calls a benchmark function several times (to find its iteration
// count, and once per repetition), and building the stream features takes
// longer than a run.
std::shared_ptr<const cfrec::server::testing::FakeSnapshot> Snapshot(
    size_t items, int dim, bool stream, bool dot) {
  static auto* cache = new std::map<
      std::tuple<size_t, int, bool, bool>,
      std::shared_ptr<const cfrec::server::testing::FakeSnapshot>>();
  auto& entry = (*cache)[{items, dim, stream, dot}];
  if (entry == nullptr) {
    auto snapshot = MakeRandomSnapshot(1, kUsers, items, dim, 20, 7);
    snapshot->set_dot_ranker(dot);
    if (stream) {
      snapshot->set_stream(cfrec::server::testing::MakeGeneratedStreamScorer(
          static_cast<uint32_t>(items), kUsers, 200000, 7));
    }
    entry = std::move(snapshot);
  }
  return entry;
}

void BM_Recommend(benchmark::State& state) {
  const auto snapshot =
      Snapshot(state.range(0), static_cast<int>(state.range(1)),
               state.range(2) != 0, state.range(4) != 0);
  cfrec::server::RecommendOptions options;
  options.exact_scan = state.range(3) != 0;
  const auto index = cfrec::server::CandidateIndex::Build(*snapshot);
  std::mt19937 rng(1);
  std::uniform_int_distribution<size_t> user(0, kUsers - 1);
  for (auto _ : state) {
    auto rec = cfrec::server::Recommend(
        *snapshot, *index, "U" + std::to_string(user(rng)), 10, options);
    benchmark::DoNotOptimize(rec);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Recommend)
    ->ArgNames({"items", "dim", "stream", "exact", "dot"})
    ->Args({20000, 64, 0, 1, 0})
    ->Args({20000, 64, 0, 0, 0})
    ->Args({20000, 64, 1, 1, 0})
    ->Args({20000, 64, 1, 0, 0})
    ->Args({20000, 64, 0, 0, 1})
    ->Args({20000, 64, 1, 0, 1})
    ->Args({5000, 64, 0, 1, 0})
    ->Args({5000, 64, 0, 0, 0})
    ->Args({5000, 64, 1, 1, 0})
    ->Args({5000, 64, 1, 0, 0})
    ->Unit(benchmark::kMicrosecond);

void BM_HandleRecommendations(benchmark::State& state) {
  const auto snapshot =
      Snapshot(20000, 64, state.range(0) != 0, state.range(1) != 0);
  cfrec::learner::SnapshotHolder holder;
  holder.Publish(snapshot);
  cfrec::server::ServiceContext context;
  context.snapshots = &holder;
  std::mt19937 rng(1);
  std::uniform_int_distribution<size_t> user(0, kUsers - 1);
  cfrec::server::HttpRequest request;
  request.method = "GET";
  for (auto _ : state) {
    request.target =
        "/v1/recommendations?user_id=U" + std::to_string(user(rng)) + "&n=10";
    auto response = cfrec::server::Handle(context, request);
    if (response.status != 200) state.SkipWithError("status != 200");
    benchmark::DoNotOptimize(response);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_HandleRecommendations)
    ->ArgNames({"stream", "dot"})
    ->Args({0, 0})
    ->Args({1, 0})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMicrosecond);

void BM_BuildIndex(benchmark::State& state) {
  const auto snapshot = MakeRandomSnapshot(1, 10, 20000, 64, 0, 7);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cfrec::server::CandidateIndex::Build(*snapshot));
  }
}
BENCHMARK(BM_BuildIndex)->Unit(benchmark::kMicrosecond);

void BM_Dot64(benchmark::State& state) {
  std::vector<float> a(64, 0.5f), b(64, 0.25f);
  for (auto _ : state) {
    benchmark::DoNotOptimize(cfrec::server::Dot(a, b));
  }
}
BENCHMARK(BM_Dot64);

}  // namespace

BENCHMARK_MAIN();
