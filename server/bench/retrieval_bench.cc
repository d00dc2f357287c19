// Micro-benchmarks of the int8 first pass of retrieval alone
// (QuantizedPool::Reachable: integer sums, bounds and the survivor
// selection) on a Gaussian 20,000 x 64 pool, k = 320 (300 candidates and 20
// clicks, as BM_Recommend asks), for every kernel the CPU supports; and the
// portable reference (Bounds() for every position, then the positions
// whose hi reaches the k-th largest lo, found by nth_element). Argument
// `kernel`: 0 portable, 1 AVX2, ...
#include <benchmark/benchmark.h>

#include <algorithm>
#include <functional>
#include <random>
#include <vector>

#include "quantized_pool.h"

namespace {

using cfrec::server::QuantizedPool;

struct Fixture {
  std::unique_ptr<const QuantizedPool> pool;
  std::vector<std::vector<float>> users;
};

Fixture* Make(size_t kItems) {
  {
    constexpr size_t kUsers = 64;
    constexpr int kDim = 64;
    auto* out = new Fixture;
    std::mt19937 rng(7);
    std::normal_distribution<float> g(0.0f, 1.0f);
    const size_t blocks = (kItems + 7) / 8;
    std::vector<float> m(blocks * 8 * kDim, 0.0f);
    for (size_t i = 0; i < kItems; ++i) {
      for (int d = 0; d < kDim; ++d)
        m[(i / 8) * kDim * 8 + d * 8 + i % 8] = g(rng);
    }
    out->pool = QuantizedPool::Build(m, blocks, kDim, kItems);
    out->users.assign(kUsers, std::vector<float>(kDim));
    for (auto& u : out->users) {
      for (float& x : u) x = g(rng);
    }
    return out;
  }
}

// The fixture of `items` items, built once per process.
const Fixture& Get(size_t items = 20000) {
  static const Fixture* large = Make(20000);
  static const Fixture* small = Make(5000);
  return items == 5000 ? *small : *large;
}

void BM_Reachable(benchmark::State& state) {
  const Fixture& f = Get(state.range(1));
  const auto kernel = static_cast<QuantizedPool::Kernel>(state.range(0));
  if (!QuantizedPool::Supported(kernel)) {
    state.SkipWithError("kernel not supported by this CPU");
    return;
  }
  std::vector<QuantizedPool::Query> queries;
  for (const auto& u : f.users) queries.push_back(f.pool->Prepare(u));
  QuantizedPool::Scratch scratch;
  std::vector<uint32_t> kept;
  size_t i = 0, total = 0;
  for (auto _ : state) {
    f.pool->Reachable(queries[i++ % queries.size()],
                      state.range(1) == 5000 ? 80 : 320, kept, scratch, kernel);
    total += kept.size();
    benchmark::DoNotOptimize(kept.data());
  }
  state.counters["kept"] =
      static_cast<double>(total) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_Reachable)
    ->ArgNames({"kernel", "items"})
    ->Args({0, 20000})
    ->Args({1, 20000})
    ->Args({2, 20000})
    ->Args({1, 5000})
    ->Args({2, 5000})
    ->Unit(benchmark::kMicrosecond);

void BM_BoundsThenSelect(benchmark::State& state) {
  const Fixture& f = Get();
  std::vector<QuantizedPool::Query> queries;
  for (const auto& u : f.users) queries.push_back(f.pool->Prepare(u));
  std::vector<float> lo(f.pool->padded_size()), hi(f.pool->padded_size()),
      scratch;
  std::vector<uint32_t> kept;
  size_t i = 0;
  const size_t n = f.pool->n();
  for (auto _ : state) {
    f.pool->Bounds(queries[i++ % queries.size()], lo.data(), hi.data());
    scratch.assign(lo.begin(), lo.begin() + n);
    std::nth_element(scratch.begin(), scratch.begin() + 319, scratch.end(),
                     std::greater<float>());
    const float threshold = scratch[319];
    kept.clear();
    for (size_t j = 0; j < n; ++j) {
      if (hi[j] >= threshold) kept.push_back(static_cast<uint32_t>(j));
    }
    benchmark::DoNotOptimize(kept.data());
  }
}
BENCHMARK(BM_BoundsThenSelect)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
