// The model codec against the trainer's own snapshots: a replica that
// applies a full image and the deltas after it answers every user exactly
// as the trainer's snapshot of the same version does, for every ranker.
#include "cfrec/replica/model_codec.h"

#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "replica/replica_testing.h"

namespace cfrec::replica {
namespace {

using learner::SnapshotHolder;
using learner::Trainer;
using state::AppliedEvent;
using testing::DecimalIds;
using testing::ExpectSameAnswers;
using testing::SmallTrainer;

constexpr std::chrono::seconds kWait(60);

// Trains `events` and returns the snapshot published after them.
std::shared_ptr<const learner::ModelSnapshot> TrainAndSnap(
    Trainer& trainer, SnapshotHolder& holder,
    const std::vector<AppliedEvent>& events) {
  for (size_t k = 0; k < events.size(); k += 64) {
    trainer.Enqueue(std::vector<AppliedEvent>(
        events.begin() + k, events.begin() + std::min(events.size(), k + 64)));
  }
  if (!events.empty()) {
    EXPECT_TRUE(trainer.WaitForSeq(events.back().seq, kWait));
  }
  // A snapshot made after the last event was trained.
  const uint64_t seen = holder.Get()->version();
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (holder.Get()->version() < seen + 2 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return holder.Get();
}

class CodecTest : public ::testing::TestWithParam<std::string> {};

TEST_P(CodecTest, FullImageThenDeltasAnswerAsTheTrainer) {
  learner::testing::SyntheticOptions so;
  so.users = 90;
  so.items = 70;
  so.impressions_per_user = 6;
  so.test_per_user = 0;
  const auto log = learner::testing::MakeSyntheticLog(so);
  SnapshotHolder holder;
  Trainer trainer(SmallTrainer(GetParam()), nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());

  const size_t parts = 4;
  const size_t per = log.train.size() / parts;
  std::vector<std::shared_ptr<const learner::ModelSnapshot>> snaps;
  // The first snapshot only knows the first users (later ones arrive as
  // the dictionary and the tables grow).
  snaps.push_back(TrainAndSnap(
      trainer, holder,
      std::vector<AppliedEvent>(log.train.begin(), log.train.begin() + 40)));
  for (size_t p = 0; p < parts; ++p) {
    snaps.push_back(
        TrainAndSnap(trainer, holder,
                     std::vector<AppliedEvent>(
                         log.train.begin() + 40 + p * (per - 10),
                         log.train.begin() + 40 + (p + 1) * (per - 10))));
  }
  ASSERT_TRUE(trainer.Stop().ok());
  ASSERT_NE(snaps.front()->stream(), nullptr);

  std::shared_ptr<const ModelState> state;
  EncodedBase base;
  uint64_t base_version = 0;
  for (size_t k = 0; k < snaps.size(); ++k) {
    const auto& s = *snaps[k];
    const IdSource ids = DecimalIds(s);
    // A full image at the start and once in the middle; deltas otherwise.
    const bool full = k == 0 || k == 3;
    const uint64_t version = 1000 + k;
    EncodeStats changes;
    auto image = EncodeModel(s, ids, version, full ? nullptr : &base,
                             base_version, 12345, &changes);
    ASSERT_TRUE(image.ok()) << image.status().ToString();
    auto header = ReadImageHeader(*image);
    ASSERT_TRUE(header.ok());
    EXPECT_EQ(header->kind, full ? ImageKind::kFull : ImageKind::kDelta);
    EXPECT_EQ(header->version, version);
    auto next = ApplyImage(full ? nullptr : state, *image);
    ASSERT_TRUE(next.ok()) << "version " << version << ": "
                           << next.status().ToString();
    const auto replica = MakeReplicaSnapshot(*next);
    EXPECT_EQ(replica->version(), version);
    SCOPED_TRACE("version " + std::to_string(k) + (full ? " (full)" : ""));
    ExpectSameAnswers(s, *replica);
    if (::testing::Test::HasFatalFailure()) return;
    // The base version is untouched by the delta applied on it.
    if (state != nullptr && !full) {
      ExpectSameAnswers(*snaps[k - 1], *MakeReplicaSnapshot(state));
    }
    state = *next;
    base = {snaps[k], ids.num_users, ids.num_items};
    base_version = version;
  }
}

TEST_P(CodecTest, AnUnchangedModelMakesATinyDelta) {
  const auto log = learner::testing::MakeSyntheticLog();
  SnapshotHolder holder;
  Trainer trainer(SmallTrainer(GetParam()), nullptr, &holder);
  ASSERT_TRUE(trainer.Start().ok());
  const auto a = TrainAndSnap(trainer, holder, log.train);
  const auto b = TrainAndSnap(trainer, holder, {});
  ASSERT_TRUE(trainer.Stop().ok());
  ASSERT_NE(a->version(), b->version());
  const IdSource ids = DecimalIds(*a);
  auto full = EncodeModel(*a, ids, 1, nullptr, 0, 0);
  ASSERT_TRUE(full.ok());
  EncodedBase base{a, ids.num_users, ids.num_items};
  EncodeStats changes;
  auto delta = EncodeModel(*b, ids, 2, &base, 1, 0, &changes);
  ASSERT_TRUE(delta.ok());
  EXPECT_EQ(changes.changed_rows, 0u);
  EXPECT_EQ(changes.changed_users, 0u);
  EXPECT_LT(delta->size(), 2000u) << "full image " << full->size();
  auto s1 = ApplyImage(nullptr, *full);
  ASSERT_TRUE(s1.ok());
  auto s2 = ApplyImage(*s1, *delta);
  ASSERT_TRUE(s2.ok()) << s2.status().ToString();
  ExpectSameAnswers(*b, *MakeReplicaSnapshot(*s2));
}

INSTANTIATE_TEST_SUITE_P(Rankers, CodecTest,
                         ::testing::Values("bpr", "gmf", "mlp", "neumf",
                                           "lightgcn"));

class DamagedImageTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    learner::testing::SyntheticOptions so;
    so.users = 30;
    so.items = 25;
    so.impressions_per_user = 3;
    so.test_per_user = 0;
    const auto log = learner::testing::MakeSyntheticLog(so);
    SnapshotHolder holder;
    Trainer trainer(SmallTrainer("neumf"), nullptr, &holder);
    ASSERT_TRUE(trainer.Start().ok());
    const std::vector<AppliedEvent> half(log.train.begin(),
                                         log.train.begin() + 45);
    const std::vector<AppliedEvent> rest(log.train.begin() + 45,
                                         log.train.end());
    a_ = new std::shared_ptr<const learner::ModelSnapshot>(
        TrainAndSnap(trainer, holder, half));
    b_ = new std::shared_ptr<const learner::ModelSnapshot>(
        TrainAndSnap(trainer, holder, rest));
    ASSERT_TRUE(trainer.Stop().ok());
    const IdSource ids = DecimalIds(**a_);
    full_ = new std::string(*EncodeModel(**a_, ids, 7, nullptr, 0, 0));
    EncodedBase base{*a_, ids.num_users, ids.num_items};
    delta_ =
        new std::string(*EncodeModel(**b_, DecimalIds(**b_), 8, &base, 7, 0));
  }
  static void TearDownTestSuite() {
    delete a_;
    delete b_;
    delete full_;
    delete delta_;
  }
  static std::shared_ptr<const learner::ModelSnapshot>*a_, *b_;
  static std::string *full_, *delta_;
};
std::shared_ptr<const learner::ModelSnapshot>*DamagedImageTest::a_ = nullptr,
                      *DamagedImageTest::b_ = nullptr;
std::string *DamagedImageTest::full_ = nullptr,
            *DamagedImageTest::delta_ = nullptr;

TEST_F(DamagedImageTest, EveryTruncationIsRejected) {
  for (size_t cut = 0; cut < full_->size(); cut += 1 + cut / 50) {
    EXPECT_FALSE(ApplyImage(nullptr, full_->substr(0, cut)).ok())
        << "cut at " << cut;
  }
  auto base = ApplyImage(nullptr, *full_);
  ASSERT_TRUE(base.ok());
  for (size_t cut = 0; cut < delta_->size(); cut += 1 + cut / 50) {
    EXPECT_FALSE(ApplyImage(*base, delta_->substr(0, cut)).ok())
        << "cut at " << cut;
  }
}

TEST_F(DamagedImageTest, ADeltaNeedsItsBase) {
  auto base = ApplyImage(nullptr, *full_);
  ASSERT_TRUE(base.ok());
  EXPECT_FALSE(ApplyImage(nullptr, *delta_).ok());
  auto applied = ApplyImage(*base, *delta_);
  ASSERT_TRUE(applied.ok()) << applied.status().ToString();
  EXPECT_EQ((*applied)->version, 8u);
  // Applying it twice: its base is no longer the version held.
  EXPECT_FALSE(ApplyImage(*applied, *delta_).ok());
  ExpectSameAnswers(**b_, *MakeReplicaSnapshot(*applied));
}

TEST_F(DamagedImageTest, FlippedBytesNeverCrash) {
  // Chunks carry CRC32C, so a flipped byte never reaches the decoder in
  // practice; the decoder still must not crash or allocate wildly on one.
  std::mt19937 rng(3);
  auto base = ApplyImage(nullptr, *full_);
  ASSERT_TRUE(base.ok());
  for (int round = 0; round < 300; ++round) {
    std::string damaged = round % 2 == 0 ? *full_ : *delta_;
    const int flips = 1 + round % 4;
    for (int f = 0; f < flips; ++f) {
      damaged[rng() % damaged.size()] ^= static_cast<char>(1 + rng() % 255);
    }
    auto got = ApplyImage(round % 2 == 0 ? nullptr : *base, damaged);
    (void)got;  // either an error or a self-consistent state
  }
}

}  // namespace
}  // namespace cfrec::replica
