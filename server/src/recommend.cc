#include "cfrec/server/recommend.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <unordered_map>
#include <utility>

#include "dot_ranker.h"
#include "item_marks.h"
#include "quantized_pool.h"

namespace cfrec::server {
namespace {

// A GCC/Clang vector of 4 floats: SSE2 on every x86-64, so the loop below
// vectorises without target flags or -ffast-math.
typedef float Float4 __attribute__((vector_size(16)));

inline Float4 Load4(const float* p) {
  Float4 v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// NaN would break the strict weak ordering the selections below rely on.
inline float Sanitize(float s) {
  return std::isnan(s) ? -std::numeric_limits<float>::infinity() : s;
}

struct Candidate {
  float score;
  uint32_t item;
  uint32_t pos = 0;  // in the CandidateIndex's pool (stage 1 only)
};

// Best first: higher score, then smaller item index (deterministic ties).
inline bool Better(const Candidate& a, const Candidate& b) {
  return a.score > b.score || (a.score == b.score && a.item < b.item);
}

// Leaves the best `k` of `v` (unordered) at its front and truncates to them.
void KeepBest(std::vector<Candidate>& v, size_t k) {
  if (v.size() <= k) return;
  std::nth_element(v.begin(), v.begin() + k, v.end(), Better);
  v.resize(k);
}

}  // namespace

float Dot(std::span<const float> a, std::span<const float> b) {
  const size_t n = std::min(a.size(), b.size());
  const float* x = a.data();
  const float* y = b.data();
  Float4 acc0 = {0, 0, 0, 0}, acc1 = acc0, acc2 = acc0, acc3 = acc0;
  size_t k = 0;
  for (; k + 16 <= n; k += 16) {
    acc0 += Load4(x + k) * Load4(y + k);
    acc1 += Load4(x + k + 4) * Load4(y + k + 4);
    acc2 += Load4(x + k + 8) * Load4(y + k + 8);
    acc3 += Load4(x + k + 12) * Load4(y + k + 12);
  }
  for (; k + 4 <= n; k += 4) acc0 += Load4(x + k) * Load4(y + k);
  const Float4 acc = (acc0 + acc1) + (acc2 + acc3);
  float sum = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  for (; k < n; ++k) sum += x[k] * y[k];
  return sum;
}

std::shared_ptr<const CandidateIndex> CandidateIndex::Build(
    const learner::ModelSnapshot& snapshot) {
  auto index = std::make_shared<CandidateIndex>();
  index->use_avx2_ =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const int dim = snapshot.dim();
  index->dim_ = dim;
  const size_t num_items = snapshot.num_items();
  for (const uint32_t item : snapshot.CandidateItems()) {
    if (item < num_items) index->items_.push_back(item);
  }
  const size_t n = index->items_.size();
  index->num_blocks_ = (n + kBlock - 1) / kBlock;
  index->blocks_.assign(index->num_blocks_ * dim * kBlock, 0.0f);
  for (size_t i = 0; i < n; ++i) {
    const std::span<const float> v = snapshot.ItemVector(index->items_[i]);
    float* block = index->blocks_.data() + (i / kBlock) * dim * kBlock;
    const size_t lane = i % kBlock;
    const size_t d_max = std::min(v.size(), static_cast<size_t>(dim));
    for (size_t d = 0; d < d_max; ++d) block[d * kBlock + lane] = v[d];
  }
  index->quantized_ =
      QuantizedPool::Build(index->blocks_, index->num_blocks_, dim, n);
  if (index->quantized_ != nullptr) {
    // Row-major: the float scoring after the int8 pass reads a few hundred
    // scattered items, 4 cache lines each instead of a block's 32.
    index->rows_.resize(n * dim);
    for (size_t i = 0; i < n; ++i) {
      const float* block = index->blocks_.data() + (i / kBlock) * dim * kBlock;
      for (int d = 0; d < dim; ++d) {
        index->rows_[i * dim + d] = block[d * kBlock + i % kBlock];
      }
    }
  }
  if (const learner::ScoringModel* ranker = DotRanker(snapshot);
      ranker != nullptr) {
    index->ranker_is_dot_ = std::all_of(
        index->items_.begin(), index->items_.end(),
        [&](uint32_t item) { return SharesItemRow(snapshot, *ranker, item); });
  }
  if (const stream::StreamScorer* sc = snapshot.stream(); sc != nullptr) {
    index->stream_scores_.resize(n);
    std::vector<uint32_t> order(n);
    for (size_t i = 0; i < n; ++i) {
      index->stream_scores_[i] = Sanitize(sc->ItemScore(index->items_[i]));
      order[i] = static_cast<uint32_t>(i);
    }
    const size_t keep = std::min(n, kStreamShortlist);
    const auto& scores = index->stream_scores_;
    const auto& items = index->items_;
    std::partial_sort(
        order.begin(), order.begin() + keep, order.end(),
        [&](uint32_t a, uint32_t b) {
          return Better({scores[a], items[a]}, {scores[b], items[b]});
        });
    order.resize(keep);
    index->stream_order_ = std::move(order);
  }
  return index;
}

namespace {

typedef float Float8 __attribute__((vector_size(32)));

// Four blocks at a time: four independent accumulator chains hide the
// latency of the adds. Vectors are loaded with memcpy rather than returned
// from a helper, which would change the ABI between the two variants below.
__attribute__((always_inline)) inline void DotBlocksBody(const float* blocks,
                                                         size_t num_blocks,
                                                         int dim,
                                                         const float* user,
                                                         float* out) {
  constexpr size_t kB = CandidateIndex::kBlock;
  const size_t stride = static_cast<size_t>(dim) * kB;
  size_t b = 0;
  for (; b + 4 <= num_blocks; b += 4) {
    const float* p = blocks + b * stride;
    Float8 a0 = {}, a1 = {}, a2 = {}, a3 = {};
    for (int d = 0; d < dim; ++d) {
      const float u = user[d];
      const size_t o = static_cast<size_t>(d) * kB;
      Float8 v0, v1, v2, v3;
      std::memcpy(&v0, p + o, sizeof(v0));
      std::memcpy(&v1, p + stride + o, sizeof(v1));
      std::memcpy(&v2, p + 2 * stride + o, sizeof(v2));
      std::memcpy(&v3, p + 3 * stride + o, sizeof(v3));
      a0 += u * v0;
      a1 += u * v1;
      a2 += u * v2;
      a3 += u * v3;
    }
    std::memcpy(out + b * kB, &a0, sizeof(a0));
    std::memcpy(out + (b + 1) * kB, &a1, sizeof(a1));
    std::memcpy(out + (b + 2) * kB, &a2, sizeof(a2));
    std::memcpy(out + (b + 3) * kB, &a3, sizeof(a3));
  }
  for (; b < num_blocks; ++b) {
    const float* p = blocks + b * stride;
    Float8 a = {};
    for (int d = 0; d < dim; ++d) {
      Float8 v;
      std::memcpy(&v, p + static_cast<size_t>(d) * kB, sizeof(v));
      a += user[d] * v;
    }
    std::memcpy(out + b * kB, &a, sizeof(a));
  }
}

// dot(user, row(i)) for i < count, four at a time (four independent
// chains). Each is summed in the order DotBlocks sums a lane, d = 0, 1, ...,
// with the same operations, so the values are bit for bit DotBlocks'.
template <typename RowOf>
__attribute__((always_inline)) inline void DotRowsBody(RowOf row, int dim,
                                                       size_t count,
                                                       const float* user,
                                                       float* out) {
  // The rows are scattered over the pool: ask for those two groups ahead
  // while this group is summed (a hint only; the sums do not change).
  constexpr size_t kAhead = 8;
  const size_t row_bytes = static_cast<size_t>(dim) * sizeof(float);
  const auto prefetch = [&](size_t j) {
    const char* p = reinterpret_cast<const char*>(row(j));
    for (size_t b = 0; b < row_bytes; b += 64) __builtin_prefetch(p + b);
  };
  for (size_t j = 0; j < std::min(count, kAhead); ++j) prefetch(j);
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    for (size_t j = i + kAhead; j < std::min(count, i + kAhead + 4); ++j) {
      prefetch(j);
    }
    const float *r0 = row(i), *r1 = row(i + 1), *r2 = row(i + 2),
                *r3 = row(i + 3);
    float a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (int d = 0; d < dim; ++d) {
      const float u = user[d];
      a0 += u * r0[d];
      a1 += u * r1[d];
      a2 += u * r2[d];
      a3 += u * r3[d];
    }
    out[i] = a0;
    out[i + 1] = a1;
    out[i + 2] = a2;
    out[i + 3] = a3;
  }
  for (; i < count; ++i) {
    const float* r = row(i);
    float a = 0;
    for (int d = 0; d < dim; ++d) a += user[d] * r[d];
    out[i] = a;
  }
}

// The listed rows of a row-major copy of the pool.
__attribute__((target("avx2,fma"))) void DotRowsAvx2(const float* rows, int dim,
                                                     const uint32_t* list,
                                                     size_t count,
                                                     const float* user,
                                                     float* out) {
  DotRowsBody(
      [&](size_t i) { return rows + static_cast<size_t>(list[i]) * dim; }, dim,
      count, user, out);
}

void DotRowsBaseline(const float* rows, int dim, const uint32_t* list,
                     size_t count, const float* user, float* out) {
  DotRowsBody(
      [&](size_t i) { return rows + static_cast<size_t>(list[i]) * dim; }, dim,
      count, user, out);
}

// Rows anywhere in memory (the snapshot's own item vectors).
__attribute__((target("avx2,fma"))) void DotPointersAvx2(
    const float* const* rows, int dim, size_t count, const float* user,
    float* out) {
  DotRowsBody([&](size_t i) { return rows[i]; }, dim, count, user, out);
}

void DotPointersBaseline(const float* const* rows, int dim, size_t count,
                         const float* user, float* out) {
  DotRowsBody([&](size_t i) { return rows[i]; }, dim, count, user, out);
}

// What CandidateIndex chooses (use_avx2_), for callers without an index.
bool CpuHasAvx2Fma() {
  static const bool has =
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return has;
}

// The same code compiled twice: for AVX2+FMA (chosen at run time when the
// CPU has them) and for the baseline, where the 8-wide vectors become pairs
// of SSE operations. Dispatch is explicit rather than through an ifunc
// (target_clones), whose resolver runs before sanitizer runtimes start.
__attribute__((target("avx2,fma"))) void DotBlocksAvx2(const float* blocks,
                                                       size_t num_blocks,
                                                       int dim,
                                                       const float* user,
                                                       float* out) {
  DotBlocksBody(blocks, num_blocks, dim, user, out);
}

void DotBlocksBaseline(const float* blocks, size_t num_blocks, int dim,
                       const float* user, float* out) {
  DotBlocksBody(blocks, num_blocks, dim, user, out);
}

void DotBlocks(bool avx2, const float* blocks, size_t num_blocks, int dim,
               const float* user, float* out) {
  if (avx2) {
    DotBlocksAvx2(blocks, num_blocks, dim, user, out);
  } else {
    DotBlocksBaseline(blocks, num_blocks, dim, user, out);
  }
}

}  // namespace

void CandidateIndex::DotAll(std::span<const float> user, float* out) const {
  // A user vector shorter than dim() is zero-padded, as Dot() would do.
  if (user.size() >= static_cast<size_t>(dim_)) {
    DotBlocks(use_avx2_, blocks_.data(), num_blocks_, dim_, user.data(), out);
  } else {
    std::vector<float> padded(dim_, 0.0f);
    std::copy(user.begin(), user.end(), padded.begin());
    DotBlocks(use_avx2_, blocks_.data(), num_blocks_, dim_, padded.data(), out);
  }
}

void CandidateIndex::DotBlock(size_t block, const float* user,
                              float* out) const {
  DotBlocks(use_avx2_, blocks_.data() + block * dim_ * kBlock, 1, dim_, user,
            out);
}

void CandidateIndex::DotRows(std::span<const uint32_t> positions,
                             const float* user, float* out) const {
  if (use_avx2_) {
    DotRowsAvx2(rows_.data(), dim_, positions.data(), positions.size(), user,
                out);
  } else {
    DotRowsBaseline(rows_.data(), dim_, positions.data(), positions.size(),
                    user, out);
  }
}

namespace {

// The best `first_cut` of the pool by dot product (Better order, unsorted),
// scoring every item in float. Returns the dot products of the whole pool
// (by position; per-thread, valid until the next call on this thread).
const float* ExactCandidates(const CandidateIndex& index,
                             std::span<const float> user, size_t first_cut,
                             std::vector<Candidate>& candidates) {
  thread_local std::vector<float> dots;
  const std::span<const uint32_t> pool = index.items();
  dots.resize(index.padded_size());
  index.DotAll(user, dots.data());
  candidates.clear();
  if (pool.size() <= first_cut) {
    candidates.reserve(pool.size());
    for (size_t i = 0; i < pool.size(); ++i) {
      candidates.push_back(
          {Sanitize(dots[i]), pool[i], static_cast<uint32_t>(i)});
    }
    return dots.data();
  }
  // One pass with a rising threshold: candidates at or above it go to a
  // buffer; when the buffer holds 2 * first_cut, it is cut back to the
  // best first_cut and the threshold rises to the worst of those. Most of
  // the pool is rejected by one comparison, and a NaN never passes it.
  candidates.reserve(2 * first_cut);
  float threshold = -std::numeric_limits<float>::infinity();
  for (size_t i = 0; i < pool.size(); ++i) {
    const float s = dots[i];
    if (!(s >= threshold)) continue;
    candidates.push_back({s, pool[i], static_cast<uint32_t>(i)});
    if (candidates.size() == 2 * first_cut) {
      // By Better, not by score alone: an item dropped here must be worse
      // than first_cut others, or a tie at the cut could lose the item
      // with the smaller index.
      KeepBest(candidates, first_cut);
      threshold = candidates.front().score;
      for (const Candidate& c : candidates) {
        threshold = std::min(threshold, c.score);
      }
    }
  }
  KeepBest(candidates, first_cut);
  return dots.data();
}

// The same selection from the int8 first pass: every item whose upper
// bound reaches the first_cut-th largest lower bound is scored in float,
// the others cannot be among the best (at least first_cut items score at
// least that bound). Requires pool.size() > first_cut and a prepared query.
void BoundedCandidates(const CandidateIndex& index,
                       const QuantizedPool::Query& query,
                       std::span<const float> user, size_t first_cut,
                       std::vector<Candidate>& candidates) {
  // Per-thread scratch: a request allocates nothing of the pool's size.
  thread_local QuantizedPool::Scratch scratch;
  thread_local std::vector<float> dots;
  thread_local std::vector<uint32_t> kept;
  const std::span<const uint32_t> pool = index.items();
  index.quantized()->Reachable(query, first_cut, kept, scratch);
  // Float scores of the kept items.
  dots.resize(kept.size());
  index.DotRows(kept, user.data(), dots.data());
  candidates.clear();
  candidates.reserve(kept.size());
  for (size_t i = 0; i < kept.size(); ++i) {
    candidates.push_back({dots[i], pool[kept[i]], kept[i]});
  }
  KeepBest(candidates, first_cut);
}

}  // namespace

std::shared_ptr<const CandidateIndex> CandidateIndexCache::Get(
    const std::shared_ptr<const learner::ModelSnapshot>& snapshot) {
  bool mine = false;  // this call marked the build as under way
  {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      for (const Entry* e : {&latest_, &previous_}) {
        if (e->index != nullptr && e->snapshot.lock() == snapshot) {
          return e->index;
        }
      }
      if (latest_.index != nullptr && snapshot->version() < latest_.version) {
        lock.unlock();
        return CandidateIndex::Build(*snapshot);  // older than both; rare
      }
      if (building_ != snapshot.get()) break;
      built_.wait(lock);  // another thread builds this one
    }
    if (building_ == nullptr) {
      building_ = snapshot.get();
      mine = true;
    }
  }
  // Built without the lock, so lookups of the current index never wait.
  std::shared_ptr<const CandidateIndex> index =
      CandidateIndex::Build(*snapshot);
  std::shared_ptr<const CandidateIndex> retired;  // freed after the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (mine) building_ = nullptr;
    if (latest_.index == nullptr || snapshot->version() >= latest_.version) {
      retired = std::move(previous_.index);
      previous_ = std::move(latest_);
      latest_ = Entry{snapshot, snapshot->version(), index};
    }
  }
  if (mine) built_.notify_all();
  return index;
}

Recommendation Recommend(const learner::ModelSnapshot& snapshot,
                         std::string_view user_id, size_t n,
                         const RecommendOptions& options) {
  return Recommend(snapshot, *CandidateIndex::Build(snapshot), user_id, n,
                   options);
}

Recommendation Recommend(const learner::ModelSnapshot& snapshot,
                         const CandidateIndex& index, std::string_view user_id,
                         size_t n, const RecommendOptions& options) {
  Recommendation result;
  const std::optional<uint32_t> user = snapshot.FindUser(user_id);
  const stream::StreamScorer* sc = snapshot.stream();
  if ((!user.has_value() || *user >= snapshot.num_users()) && sc != nullptr) {
    // Stream features without the user term: the best of the pool by the
    // item part of the score.
    result.no_user_term = true;
    const std::span<const uint32_t> order = index.stream_order();
    const size_t take = std::min(n, order.size());
    for (size_t i = 0; i < take; ++i) {
      result.items.push_back(
          {index.items()[order[i]], index.stream_scores()[order[i]]});
    }
    return result;
  }
  if (!user.has_value() || *user >= snapshot.num_users()) {
    result.popularity_fallback = true;
    const std::span<const uint32_t> popular = snapshot.PopularItems();
    const size_t take = std::min(n, popular.size());
    result.items.reserve(take);
    for (size_t i = 0; i < take; ++i) {
      result.items.push_back({popular[i], std::nullopt});
    }
    return result;
  }
  if (n == 0) return result;

  // Stage 1, retrieval: dot product over the live candidate pool.
  std::span<const float> user_vector = snapshot.UserVector(*user);
  std::vector<float> padded_user;
  if (user_vector.size() < static_cast<size_t>(index.dim())) {
    // Zero-padded, as Dot() would do.
    padded_user.assign(index.dim(), 0.0f);
    std::copy(user_vector.begin(), user_vector.end(), padded_user.begin());
    user_vector = padded_user;
  }
  const std::span<const uint32_t> clicked = snapshot.ClickedItems(*user);
  // Clicked items are removed after a first cut rather than looked up for
  // every candidate: the best K + |clicked| hold at least K unclicked items,
  // and those are the best K unclicked ones.
  const size_t k = options.retrieval_candidates;
  const size_t first_cut = k + clicked.size();
  // Per-thread scratch, reused by the next request on this thread.
  thread_local std::vector<Candidate> candidates;
  QuantizedPool::Query query;
  if (!options.exact_scan && index.quantized() != nullptr &&
      index.items().size() > first_cut && first_cut > 0) {
    query = index.quantized()->Prepare(user_vector);
  }
  const float* all_dots = nullptr;  // the exact scan's, by pool position
  if (query.ok) {
    BoundedCandidates(index, query, user_vector, first_cut, candidates);
  } else {
    all_dots = ExactCandidates(index, user_vector, first_cut, candidates);
  }
  // When the ranker is the dot product of these very vectors, the float dot
  // products retrieval computed are the ranker's scores (dot_ranker.h).
  const learner::ScoringModel* dot_ranker =
      index.ranker_is_dot() ? DotRanker(snapshot) : nullptr;
  const bool reuse_dots = dot_ranker != nullptr &&
                          SharesUserRow(snapshot, *dot_ranker, *user) &&
                          user_vector.data() == dot_ranker->user.data() +
                                                    size_t{*user} * index.dim();
  // Per-thread marks over item indices instead of binary searches over the
  // clicked list, the retrieved items and the exposure record.
  thread_local ItemMarks marks;
  marks.Reset(snapshot.num_items());
  if (!clicked.empty()) {
    for (const uint32_t item : clicked) marks.Exclude(item);
    std::erase_if(candidates,
                  [&](const Candidate& c) { return marks.Excluded(c.item); });
  }
  KeepBest(candidates, k);
  const size_t retrieved = candidates.size();  // scores: their dot products
  // With stream features, retrieval also takes the best of the pool by
  // the stream score (what is trending now), whatever the user's vector.
  thread_local std::vector<float> item_part;
  item_part.clear();
  if (sc != nullptr) {
    for (const Candidate& c : candidates) marks.Exclude(c.item);
    size_t added = 0;
    for (const uint32_t pos : index.stream_order()) {
      if (added >= k) break;
      const uint32_t item = index.items()[pos];
      if (marks.Excluded(item)) continue;  // retrieved already, or clicked
      candidates.push_back({0.0f, item, pos});
      ++added;
    }
    // The index holds each pool item's item part: no hash lookups.
    for (const Candidate& c : candidates) {
      item_part.push_back(index.stream_scores()[c.pos]);
    }
  }
  if (candidates.empty()) return result;

  // Stage 2, ranking by the active ranker (and the stream features).
  thread_local std::vector<uint32_t> items;
  thread_local std::vector<float> scores;
  items.resize(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) items[i] = candidates[i].item;
  scores.resize(items.size());
  if (reuse_dots) {
    for (size_t i = 0; i < retrieved; ++i) scores[i] = candidates[i].score;
    // The stream shortlist's additions: the same kernels' dot products.
    const size_t added = candidates.size() - retrieved;
    if (all_dots != nullptr) {
      for (size_t i = retrieved; i < candidates.size(); ++i) {
        scores[i] = all_dots[candidates[i].pos];
      }
    } else if (added > 0) {
      thread_local std::vector<uint32_t> positions;
      positions.resize(added);
      for (size_t i = 0; i < added; ++i) {
        positions[i] = candidates[retrieved + i].pos;
      }
      index.DotRows(positions, user_vector.data(), scores.data() + retrieved);
    }
  } else {
    snapshot.Score(*user, items, scores);
  }
  if (sc != nullptr) {
    // The user's exposure counts, one pass over the record (what
    // UserExposure::Lookup would find for each candidate).
    if (const stream::UserExposure::Record* exposure = sc->Exposure(*user);
        exposure != nullptr) {
      for (const stream::UserExposure::Entry& e : exposure->entries) {
        marks.SetCount(e.item, e.count);
      }
    }
  }
  for (size_t i = 0; i < candidates.size(); ++i) {
    const float ranker = std::isfinite(scores[i])
                             ? scores[i]
                             : std::numeric_limits<float>::quiet_NaN();
    candidates[i].score = Sanitize(
        sc != nullptr
            ? item_part[i] +
                  sc->UserTerms(stream::UserItem{false, marks.Count(items[i])},
                                ranker)
            : scores[i]);
  }
  const size_t take = std::min(n, candidates.size());
  std::partial_sort(candidates.begin(), candidates.begin() + take,
                    candidates.end(), Better);
  result.items.reserve(take);
  for (size_t i = 0; i < take; ++i) {
    result.items.push_back({candidates[i].item, candidates[i].score});
  }
  return result;
}

// With a dot-product ranker over the retrieval vectors (dot_ranker.h),
// summed as the retrieval kernels sum it, so these are the scores
// Recommend() gives the same items.
void RankerScores(const learner::ModelSnapshot& snapshot, uint32_t user,
                  std::span<const uint32_t> items, std::span<float> scores) {
  const learner::ScoringModel* ranker = DotRanker(snapshot);
  const bool reuse =
      ranker != nullptr && SharesUserRow(snapshot, *ranker, user) &&
      std::all_of(items.begin(), items.end(), [&](uint32_t item) {
        return SharesItemRow(snapshot, *ranker, item);
      });
  if (!reuse) {
    snapshot.Score(user, items, scores);
    return;
  }
  std::vector<const float*> rows(items.size());
  for (size_t k = 0; k < items.size(); ++k) {
    rows[k] = snapshot.ItemVector(items[k]).data();
  }
  const float* u = snapshot.UserVector(user).data();
  if (CpuHasAvx2Fma()) {
    DotPointersAvx2(rows.data(), ranker->dot_dim, rows.size(), u,
                    scores.data());
  } else {
    DotPointersBaseline(rows.data(), ranker->dot_dim, rows.size(), u,
                        scores.data());
  }
}

Recommendation RankItems(const learner::ModelSnapshot& snapshot,
                         std::string_view user_id,
                         std::span<const std::string> items,
                         std::vector<std::string>* ids) {
  Recommendation result;
  ids->clear();
  const size_t num_items = snapshot.num_items();
  // Dense index of every known item; unknown ones keep their input position.
  std::vector<Candidate> known;
  std::vector<size_t> unknown;  // positions in `items`
  for (size_t i = 0; i < items.size(); ++i) {
    const std::optional<uint32_t> item = snapshot.FindItem(items[i]);
    if (item.has_value() && *item < num_items) {
      known.push_back({0.0f, *item});
    } else {
      unknown.push_back(i);
    }
  }
  const std::optional<uint32_t> user = snapshot.FindUser(user_id);
  const bool user_known = user.has_value() && *user < snapshot.num_users();
  if (const stream::StreamScorer* sc = snapshot.stream(); sc != nullptr) {
    // Every item gets a score, unknown ones the stream's prior for an item
    // never seen (new is often good in news: not the end of the list).
    std::vector<uint32_t> dense(known.size());
    for (size_t i = 0; i < known.size(); ++i) dense[i] = known[i].item;
    std::vector<float> ranker(dense.size(),
                              std::numeric_limits<float>::quiet_NaN());
    std::span<const uint32_t> clicked;
    if (user_known) {
      if (!dense.empty()) RankerScores(snapshot, *user, dense, ranker);
      clicked = snapshot.ClickedItems(*user);
    } else {
      result.no_user_term = true;
    }
    struct Ranked {
      float score;
      size_t input;  // position in `items`
      uint32_t item;
      bool known;
    };
    std::vector<Ranked> ranked;
    ranked.reserve(items.size());
    size_t next_known = 0;
    for (size_t i = 0, u = 0; i < items.size(); ++i) {
      if (u < unknown.size() && unknown[u] == i) {
        ++u;
        ranked.push_back(
            {Sanitize(sc->Score(sc->unseen_score(), false, std::nullopt)), i, 0,
             false});
        continue;
      }
      const size_t k = next_known++;
      const float r = std::isfinite(ranker[k])
                          ? ranker[k]
                          : std::numeric_limits<float>::quiet_NaN();
      const bool was_clicked =
          std::binary_search(clicked.begin(), clicked.end(), dense[k]);
      const stream::UserItem pair = user.has_value()
                                        ? sc->Pair(*user, dense[k], was_clicked)
                                        : stream::UserItem{was_clicked};
      ranked.push_back({Sanitize(sc->Score(sc->ItemScore(dense[k]), pair, r)),
                        i, dense[k], true});
    }
    std::stable_sort(
        ranked.begin(), ranked.end(),
        [](const Ranked& a, const Ranked& b) { return a.score > b.score; });
    for (const Ranked& r : ranked) {
      result.items.push_back({r.item, r.score, r.known});
      ids->push_back(r.known ? snapshot.ItemId(r.item) : items[r.input]);
    }
    return result;
  }
  if (!user_known) {
    result.popularity_fallback = true;
    // Popularity rank of each requested known item; one pass over the list.
    std::unordered_map<uint32_t, size_t> rank;
    for (const Candidate& c : known) {
      rank.emplace(c.item, std::numeric_limits<size_t>::max());
    }
    const std::span<const uint32_t> popular = snapshot.PopularItems();
    for (size_t i = 0; i < popular.size(); ++i) {
      auto it = rank.find(popular[i]);
      if (it != rank.end() && it->second > i) it->second = i;
    }
    // Stable: items that are not popular keep the caller's order.
    std::stable_sort(known.begin(), known.end(),
                     [&](const Candidate& a, const Candidate& b) {
                       return rank[a.item] < rank[b.item];
                     });
    for (const Candidate& c : known) {
      result.items.push_back({c.item, std::nullopt});
      ids->push_back(snapshot.ItemId(c.item));
    }
  } else {
    std::vector<uint32_t> dense(known.size());
    for (size_t i = 0; i < known.size(); ++i) dense[i] = known[i].item;
    std::vector<float> scores(dense.size());
    if (!dense.empty()) RankerScores(snapshot, *user, dense, scores);
    for (size_t i = 0; i < known.size(); ++i) {
      known[i].score = Sanitize(scores[i]);
    }
    std::sort(known.begin(), known.end(), Better);
    for (const Candidate& c : known) {
      result.items.push_back({c.item, c.score});
      ids->push_back(snapshot.ItemId(c.item));
    }
  }
  for (const size_t i : unknown) {
    result.items.push_back({0, std::nullopt, /*known=*/false});
    ids->push_back(items[i]);
  }
  return result;
}

}  // namespace cfrec::server
