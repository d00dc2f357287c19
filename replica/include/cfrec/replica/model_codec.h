// The portable model: what a serving replica needs to answer exactly as the
// trainer's snapshot of the same version does, as a byte image.
//
// A full image holds every part of one version; a delta holds what changed
// since the version published before it (its base): the rows of the
// embedding tables that differ, users whose clicked items changed, the ids
// added to the dictionaries, the item counters and the users' exposure
// records the stream changed, the candidate and popular lists when they
// changed, and always the version, the training stats and the stream
// feature model's weights. Applied to its base, a delta gives exactly the
// parts of the new version (bit for bit: floats travel as their bytes), and
// the replica scores with the same code as the trainer (ScoringModel::Score,
// StreamScorer::FromCounts), so it computes the same scores.
//
// Every ranker is covered: the ScoringModel carries the dot-product tables
// (BPR, LightGCN's propagated embeddings) and the neural parts (GMF, MLP
// towers, NeuMF) alike; the small dense parts (MLP layers, output vectors)
// travel whole whenever they change.
//
// Decoding never trusts its input: every length is checked against what is
// left, so a damaged image is an error, never a crash or a huge allocation.
// (Chunks carry CRC32C besides; see chunks.h.)
#ifndef CFREC_REPLICA_MODEL_CODEC_H_
#define CFREC_REPLICA_MODEL_CODEC_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "cfrec/learner/scoring_model.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/stream/scorer.h"

namespace cfrec::replica {

enum class ImageKind : uint8_t { kFull = 1, kDelta = 2 };

// External ids by dense index, append-only (the store's dictionaries).
struct Dictionary {
  std::vector<std::string> ids;
  std::unordered_map<std::string, uint32_t> index;
};

// Users' clicked items (ascending per user), as offsets into one array.
struct Clicks {
  std::vector<uint64_t> offsets{0};  // users + 1
  std::vector<uint32_t> items;
};

// One version of the model as a replica holds it. Parts are shared between
// versions: applying a delta copies only the parts it changes, so the
// version being served is never modified.
struct ModelState {
  uint64_t version = 0;
  int64_t created_unix_ms = 0;
  int64_t published_unix_ms = 0;  // when the trainer published it
  learner::TrainingStats stats;
  uint64_t num_users = 0;
  uint64_t num_items = 0;
  int dim = 0;
  // Retrieval vectors of their own (rankers without a dot-product form
  // retrieve with p_R's vectors); empty: the ranker's user/item tables.
  bool separate_retrieval = false;
  std::shared_ptr<const learner::ScoringModel> ranker;
  std::shared_ptr<const std::vector<float>> retrieval_user, retrieval_item;
  std::shared_ptr<const std::vector<uint32_t>> candidates, popular;
  std::shared_ptr<const Clicks> clicked;
  std::shared_ptr<const Dictionary> users, items;
  // Null when stream features are off.
  std::shared_ptr<const stream::StreamScorer> stream;
};

// The ids of the trainer's dictionaries (the store's), read by index.
struct IdSource {
  size_t num_users = 0;
  size_t num_items = 0;
  std::function<std::string(uint32_t)> user_id;
  std::function<std::string(uint32_t)> item_id;
};

// What the encoder compares a new version against: the snapshot published
// before and how many ids the dictionaries had then.
struct EncodedBase {
  std::shared_ptr<const learner::ModelSnapshot> snapshot;
  size_t num_user_ids = 0;
  size_t num_item_ids = 0;
};

struct EncodeStats {
  size_t changed_rows = 0;      // embedding rows sent
  size_t total_rows = 0;        // embedding rows of the model
  size_t changed_users = 0;     // clicked lists sent
  size_t changed_items = 0;     // stream item counters sent
  size_t changed_exposure = 0;  // exposure records sent
};

// Encodes `next` as version `version`: a full image when `base` is null,
// otherwise a delta on `base` (published as `base_version`).
// `published_unix_ms` is stamped into the image. Fails when the snapshot
// cannot be distributed (no ScoringModel, or stream features without the
// counters they came from).
Result<std::string> EncodeModel(const learner::ModelSnapshot& next,
                                const IdSource& ids, uint64_t version,
                                const EncodedBase* base, uint64_t base_version,
                                int64_t published_unix_ms,
                                EncodeStats* stats = nullptr);

// What an image says about itself (read without decoding the rest).
struct ImageHeader {
  ImageKind kind = ImageKind::kFull;
  uint64_t version = 0;
  uint64_t base_version = 0;  // deltas
  int64_t published_unix_ms = 0;
};
Result<ImageHeader> ReadImageHeader(std::string_view image);

// Applies `image` to `base` (null for a full image; a delta needs the
// state of its base version). The result shares unchanged parts with
// `base`, which is not modified.
Result<std::shared_ptr<const ModelState>> ApplyImage(
    const std::shared_ptr<const ModelState>& base, std::string_view image);

// The ModelSnapshot that serves `state` (cfrec::server reads it like the
// trainer's own).
std::shared_ptr<const learner::ModelSnapshot> MakeReplicaSnapshot(
    std::shared_ptr<const ModelState> state);

// `inner` answering as version `version` (the trainer serves its published
// snapshots under their published numbers).
std::shared_ptr<const learner::ModelSnapshot> WithVersion(
    std::shared_ptr<const learner::ModelSnapshot> inner, uint64_t version);

}  // namespace cfrec::replica

#endif  // CFREC_REPLICA_MODEL_CODEC_H_
