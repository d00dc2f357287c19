// The sections of a model image (docs/SCALE.md): the format's constants,
// and the parts both the encoder (model_codec.cc) and the decoder
// (model_decoder.cc) know. Internal to cfrec::replica.
#ifndef CFREC_REPLICA_SRC_IMAGE_FORMAT_H_
#define CFREC_REPLICA_SRC_IMAGE_FORMAT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cfrec/learner/scoring_model.h"
#include "cfrec/learner/snapshot.h"
#include "cfrec/schemas/status.h"
#include "cfrec/stream/item_counters.h"
#include "wire.h"

namespace cfrec::replica::image {

constexpr uint32_t kMagic = 0x4d524643;  // "CFRM"
constexpr uint16_t kFormat = 1;
constexpr uint8_t kFlagSeparateRetrieval = 1;
constexpr uint8_t kFlagStream = 2;

// Sections of an image; a delta leaves out what did not change.
enum Section : uint8_t {
  kRankerDense = 1,
  kTable = 2,
  kCandidates = 3,
  kPopular = 4,
  kClicked = 5,
  kUserIds = 6,
  kItemIds = 7,
  kStreamHead = 8,
  kStreamItems = 9,
  kExposure = 10,
};

// Embedding tables (rows of `cols` floats).
enum TableId : uint8_t {
  kRankerUser = 0,
  kRankerItem,
  kGmfUser,
  kGmfItem,
  kMlpUser,
  kMlpItem,
  kRetrievalUser,
  kRetrievalItem,
  kNumTables
};

// Upper bounds that keep a damaged header from describing absurd shapes.
constexpr uint64_t kMaxRows = uint64_t{1} << 32;
constexpr uint32_t kMaxCols = 1 << 16;

// A Corruption status naming the image.
Status Corrupt(const std::string& what);

// Training statistics, an item's stream counts, the ranker's dense layers.
void PutStats(std::string* out, const learner::TrainingStats& s);
bool GetStats(wire::Reader& in, learner::TrainingStats* s);
void PutCounts(std::string* out, const stream::ItemCounts& c);
bool GetCounts(wire::Reader& in, stream::ItemCounts* c);
void PutDense(std::string* out, const learner::ScoringModel& m);
Status GetDense(wire::Reader& in, learner::ScoringModel* m);
bool GetFloatVector(wire::Reader& in, std::vector<float>* v);

// Bit-for-bit equality: what a delta compares to leave a part out.
bool SameCounts(const stream::ItemCounts& a, const stream::ItemCounts& b);
bool SameFloats(const std::vector<float>& a, const std::vector<float>& b);
bool SameDense(const learner::ScoringModel& a, const learner::ScoringModel& b);

// A section: tag, byte length, body.
void PutSection(std::string* out, Section tag, const std::string& body);

}  // namespace cfrec::replica::image

#endif  // CFREC_REPLICA_SRC_IMAGE_FORMAT_H_
