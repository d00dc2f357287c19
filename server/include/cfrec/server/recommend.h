// The two-stage recommendation over one ModelSnapshot, independent of HTTP:
// retrieval by dot product over the live candidate pool, then ranking of the
// best few hundred by the snapshot's active ranker.
//
// Thread-safety: these are pure functions of their arguments; any number of
// threads may call them on the same snapshot at once.
#ifndef CFREC_SERVER_RECOMMEND_H_
#define CFREC_SERVER_RECOMMEND_H_

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"

namespace cfrec::server {

struct RecommendOptions {
  // How many items the dot-product stage passes to the ranker. Default 300.
  size_t retrieval_candidates = 300;
  // Retrieval scores every candidate in float. Default false: a first pass
  // over the int8 copy of the pool bounds every dot product, and only the
  // items that can still be among the best are scored in float; the result
  // is the same (see QuantizedPool), this is for comparisons and tests.
  bool exact_scan = false;
};

struct ScoredItem {
  uint32_t item = 0;  // dense index in the snapshot
  // The ranker's score; absent for popularity-fallback items and for items
  // the model does not know (POST /v1/rank).
  std::optional<float> score;
  // False only for items of POST /v1/rank the snapshot does not know.
  bool known = true;
};

struct Recommendation {
  // True when the user is unknown to the snapshot and `items` are the most
  // popular candidates instead of a personal ranking.
  bool popularity_fallback = false;
  // True when the snapshot has stream features and the user is unknown:
  // `items` are ranked by the stream features without a user term.
  bool no_user_term = false;
  std::vector<ScoredItem> items;  // best first, at most n
};

class QuantizedPool;

// The live candidate pool of one snapshot, copied into one contiguous
// matrix laid out for the retrieval scan: blocks of kBlock items, each block
// stored dimension-major ([d][kBlock] floats), so the scan is a chain of
// independent vector multiply-adds with no horizontal sums and no virtual
// calls. Candidates at or past num_items() are dropped. Immutable after
// Build; thread-safe to share.
class CandidateIndex {
 public:
  static constexpr size_t kBlock = 8;

  static std::shared_ptr<const CandidateIndex> Build(
      const learner::ModelSnapshot& snapshot);

  // out[i] = dot(user, vector of items()[i]) for every candidate; `out`
  // must hold padded_size() floats (the padding receives zeros).
  void DotAll(std::span<const float> user, float* out) const;
  // The same for the kBlock items of one block; `user` holds dim() floats.
  // Gives bit for bit the values DotAll gives for them.
  void DotBlock(size_t block, const float* user, float* out) const;
  // out[k] = dot(user, vector of items()[positions[k]]), bit for bit as
  // DotAll gives it; only when quantized() is not null.
  void DotRows(std::span<const uint32_t> positions, const float* user,
               float* out) const;
  // The int8 copy for the first pass of retrieval; null when the pool has a
  // value that is not finite.
  const QuantizedPool* quantized() const { return quantized_.get(); }

  std::span<const uint32_t> items() const { return items_; }
  // True when the snapshot's ranker is the dot product of the vectors this
  // index copied (a dot-product ScoringModel whose tables UserVector() and
  // ItemVector() read, for every pool item): the retrieval's float dot
  // products are then the ranker's scores (see server/src/dot_ranker.h).
  bool ranker_is_dot() const { return ranker_is_dot_; }
  // With stream features: the item part of the stream score of each of
  // items() (same order), and the positions of the best of them by that
  // score, best first (at most kStreamShortlist). Empty otherwise.
  static constexpr size_t kStreamShortlist = 1000;
  std::span<const float> stream_scores() const { return stream_scores_; }
  std::span<const uint32_t> stream_order() const { return stream_order_; }
  size_t padded_size() const { return num_blocks_ * kBlock; }
  int dim() const { return dim_; }

 private:
  int dim_ = 0;
  bool use_avx2_ = false;  // the CPU has AVX2 and FMA
  bool ranker_is_dot_ = false;
  size_t num_blocks_ = 0;
  std::vector<uint32_t> items_;
  std::vector<float> stream_scores_;
  std::vector<uint32_t> stream_order_;
  std::vector<float> blocks_;  // num_blocks_ * dim_ * kBlock
  std::shared_ptr<const QuantizedPool> quantized_;
  std::vector<float> rows_;  // with quantized_: n * dim_, row-major
};

// Remembers the CandidateIndex of the two latest snapshots it was asked
// about, so the index is built once per published snapshot rather than per
// request. The service builds it when the snapshot is published
// (SnapshotHolder::SetOnPublish), so requests only look it up; a request
// that took the previous snapshot just before a publish still finds its
// index. Thread-safe.
//
// An index is built outside the lock: the publisher builds the next one
// (on the learner's low-priority thread, for milliseconds) while requests
// keep looking up the current one. Building it under the lock made every
// request wait for each publish (a priority inversion: the p99 of a lightly
// loaded server was the build time).
class CandidateIndexCache {
 public:
  // The index of `snapshot`, building it on first use. A request holding an
  // older snapshot than both gets a private index (not cached). Callers
  // that ask for the snapshot whose index another thread is building wait
  // for that build instead of doing their own.
  std::shared_ptr<const CandidateIndex> Get(
      const std::shared_ptr<const learner::ModelSnapshot>& snapshot);
  // Builds and caches the index of `snapshot` (the on-publish hook).
  void Prepare(const std::shared_ptr<const learner::ModelSnapshot>& snapshot) {
    Get(snapshot);
  }

 private:
  struct Entry {
    std::weak_ptr<const learner::ModelSnapshot> snapshot;
    uint64_t version = 0;
    std::shared_ptr<const CandidateIndex> index;
  };
  std::mutex mu_;
  std::condition_variable built_;
  Entry latest_, previous_;                           // guarded by mu_
  const learner::ModelSnapshot* building_ = nullptr;  // guarded by mu_
};

// Top-n for `user_id`:
//  - unknown user (FindUser fails or its index >= num_users()): the first n
//    of PopularItems(), marked popularity_fallback;
//  - otherwise: the `retrieval_candidates` CandidateItems() with the largest
//    dot(UserVector, ItemVector), excluding ClickedItems(user) and items at
//    or past num_items(), are scored by Score() and the n best returned,
//    ties broken by smaller item index.
// `index` must have been built from `snapshot`.
Recommendation Recommend(const learner::ModelSnapshot& snapshot,
                         const CandidateIndex& index, std::string_view user_id,
                         size_t n, const RecommendOptions& options);

// The same, building a one-off index (for tests and tools; servers cache).
Recommendation Recommend(const learner::ModelSnapshot& snapshot,
                         std::string_view user_id, size_t n,
                         const RecommendOptions& options);

// scores[k] = the active ranker's f(user, items[k]) as Recommend() and
// RankItems() use it: Score(), or, when the ranker is the dot product of
// the retrieval vectors (BPR, LightGCN), that dot product summed as the
// retrieval kernels sum it. `user` and `items` are dense indices the
// snapshot has rows for; scores has items.size() floats.
void RankerScores(const learner::ModelSnapshot& snapshot, uint32_t user,
                  std::span<const uint32_t> items, std::span<float> scores);

// POST /v1/rank: orders the caller's `items` (external ids) for `user_id`.
// Known user: known items by Score(), best first, then unknown items in the
// given order without a score. Unknown user: popularity_fallback; items in
// PopularItems() order first, then the rest in the given order. `ids`
// receives the external id of every returned item, in order (unknown items
// have no dense index; their ScoredItem::item is 0 and must be ignored).
Recommendation RankItems(const learner::ModelSnapshot& snapshot,
                         std::string_view user_id,
                         std::span<const std::string> items,
                         std::vector<std::string>* ids);

// sum_k a[k] * b[k] over min(a.size(), b.size()) floats; several independent
// accumulators so the compiler vectorises it without -ffast-math.
float Dot(std::span<const float> a, std::span<const float> b);

}  // namespace cfrec::server

#endif  // CFREC_SERVER_RECOMMEND_H_
