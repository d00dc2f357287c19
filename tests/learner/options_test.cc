#include "cfrec/learner/options.h"

#include <gtest/gtest.h>

namespace cfrec::learner {
namespace {

TEST(OptionsTest, DefaultsAreValidAndMatchTheReferenceCode) {
  TrainerOptions o;
  EXPECT_TRUE(ValidateTrainerOptions(o).ok());
  EXPECT_EQ(o.learner.batch_size, 2048);
  EXPECT_DOUBLE_EQ(o.learner.lr, 1e-3);
  EXPECT_DOUBLE_EQ(o.learner.weight_decay, 1e-3);
  EXPECT_EQ(o.learner.num_negatives, 5);
  EXPECT_EQ(o.snapshot_interval_ms, 500);
}

TEST(OptionsTest, ParsesKnownKeysAndRoundTrips) {
  auto o = ParseTrainerOptions(
      R"({"ranker": "lightgcn", "loss": "pointwise", "dim": 32,
          "mlp_hidden": [8, 4], "snapshot_interval_ms": 100})");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->learner.ranker, "lightgcn");
  EXPECT_EQ(o->learner.dim, 32);
  EXPECT_EQ(o->learner.mlp_hidden, (std::vector<int>{8, 4}));
  EXPECT_EQ(o->snapshot_interval_ms, 100);
  EXPECT_EQ(o->learner.batch_size, 2048);  // untouched default
  auto idle = ParseTrainerOptions(R"({"sched": "idle", "nice": 19})");
  ASSERT_TRUE(idle.ok()) << idle.status().ToString();
  EXPECT_EQ(idle->sched, "idle");
  EXPECT_EQ(idle->nice, 19);
  auto again = ParseTrainerOptions(TrainerOptionsToJson(*o));
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(TrainerOptionsToJson(*again), TrainerOptionsToJson(*o));
}

TEST(OptionsTest, RejectsUnknownKeysBadTypesAndBadValues) {
  auto unknown = ParseTrainerOptions(R"({"learning_rate": 0.1})");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("learning_rate"),
            std::string::npos);
  EXPECT_FALSE(ParseTrainerOptions(R"({"dim": "big"})").ok());
  EXPECT_FALSE(ParseTrainerOptions(R"({"ranker": "svd"})").ok());
  EXPECT_FALSE(ParseTrainerOptions(R"({"batch_size": 0})").ok());
  EXPECT_FALSE(ParseTrainerOptions("[1, 2]").ok());
  EXPECT_FALSE(ParseTrainerOptions(R"({"sched": "fifo"})").ok());
  EXPECT_FALSE(ParseTrainerOptions(R"({"nice": 20})").ok());
  EXPECT_FALSE(ParseTrainerOptions(R"({"cf_explore_share": 1})").ok());
  EXPECT_TRUE(ParseTrainerOptions(R"({"cf_explore_share": 0.4})").ok());
  EXPECT_FALSE(ParseTrainerOptions("{").ok());
}

TEST(OptionsTest, CheckedInDefaultConfigLoads) {
  auto o = LoadTrainerOptions(CFREC_LEARNER_DEFAULT_CONFIG);
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(TrainerOptionsToJson(*o), TrainerOptionsToJson(TrainerOptions{}));
  EXPECT_TRUE(
      LoadTrainerOptions("/nonexistent/cfrec.json").status().IsNotFound());
}

// Found by fuzz/learner_config_fuzz.cc: {"batch_size": 1e30} was cast to
// int (undefined behaviour; UBSan aborts), and a negative seed wrapped.
TEST(OptionsTest, RejectsNumbersOutsideAnIntegerFieldsRange) {
  for (const char* doc :
       {R"({"batch_size": 1e30})", R"({"batch_size": -1e30})",
        R"({"dim": 2147483648})", R"({"seed": -1})", R"({"dim": 64.5})",
        R"({"mlp_hidden": [64, 1e300]})", R"({"seed": 1.8446744073709552e19})",
        R"({"cf_list_size": 9223372036854775807})"}) {
    auto o = ParseTrainerOptions(doc);
    ASSERT_FALSE(o.ok()) << doc;
    EXPECT_TRUE(o.status().IsInvalidArgument()) << doc;
    EXPECT_NE(o.status().message().find("out of range"), std::string::npos)
        << o.status().ToString();
  }
  // Integral floats within range are integers.
  auto o = ParseTrainerOptions(
      R"({"batch_size": 1024.0, "seed": 18446744073709551615,
          "mlp_hidden": [8.0, 4]})");
  ASSERT_TRUE(o.ok()) << o.status().ToString();
  EXPECT_EQ(o->learner.batch_size, 1024);
  EXPECT_EQ(o->learner.seed, 18446744073709551615u);
  EXPECT_EQ(o->learner.mlp_hidden, (std::vector<int>{8, 4}));
}

}  // namespace
}  // namespace cfrec::learner
