#include "cfrec/eval/protocol.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "cfrec/eval/batch_runner.h"
#include "cfrec/eval/runner.h"
#include "cfrec/eval/synth.h"

namespace cfrec::eval {
namespace {

Dataset Synthetic(ResponseModel response, uint64_t seed) {
  SynthOptions o;
  o.num_users = 200;
  o.response = response;
  o.seed = seed;
  Result<SynthData> synth = GenerateSynthetic(o);
  EXPECT_TRUE(synth.ok());
  Result<Dataset> d = Dataset::FromRows(synth->rows);
  EXPECT_TRUE(d.ok());
  return std::move(d).value();
}

// Scores every item a constant: the chance-level reference.
class ConstantModel final : public Model {
 public:
  std::string name() const override { return "constant"; }
  Status Fit(const TrainData&, const FitContext&) override {
    return Status::Ok();
  }
  void Score(uint32_t, std::span<const uint32_t>,
             std::span<float> out) const override {
    std::fill(out.begin(), out.end(), 1.0f);
  }
};

// An "iterative" model whose parameters are perfect (it knows every item
// each user ever interacted with) at one epoch and constant at the others,
// and that keeps a copy of its parameters when told kBest.
class ScheduledModel final : public Model {
 public:
  ScheduledModel(const Dataset& data, int good_epoch, int max_epochs)
      : good_epoch_(good_epoch), max_epochs_(max_epochs) {
    for (const auto& user : data.PositivesByUser()) {
      std::set<uint32_t> items;
      for (const Interaction& x : user) items.insert(x.item);
      known_.push_back(std::move(items));
    }
  }
  std::string name() const override { return "scheduled"; }
  Status Fit(const TrainData&, const FitContext& context) override {
    int best = 0;
    for (int epoch = 1; epoch <= max_epochs_; ++epoch) {
      current_ = epoch;
      ++epochs_run_;
      if (!context.on_epoch) continue;
      const EpochVerdict v = context.on_epoch({epoch, 1.0 / epoch});
      if (v == EpochVerdict::kBest) best = epoch;
      if (v == EpochVerdict::kStop) break;
    }
    if (best != 0) current_ = best;  // restore the best copy
    return Status::Ok();
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> out) const override {
    for (size_t i = 0; i < items.size(); ++i) {
      out[i] = current_ == good_epoch_ && known_[user].contains(items[i])
                   ? 1.0f
                   : 0.0f;
    }
  }
  int epochs_run() const { return epochs_run_; }

 private:
  std::vector<std::set<uint32_t>> known_;
  int good_epoch_;
  int max_epochs_;
  int current_ = 0;
  int epochs_run_ = 0;
};

TEST(LeaveOneOutProtocolTest, ConstantScorerIsExactlyChance) {
  const Dataset data = Synthetic(ResponseModel::kLinear, 1);
  ConstantModel model;
  Result<LooResult> r = RunLeaveOneOut(model, data, {});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_GT(r->test_sampled.hr.count(), 100u);
  EXPECT_NEAR(r->test_sampled.hr.value(), 10.0 / 101.0, 1e-9);
  EXPECT_NEAR(r->test_sampled.auc.value(), 0.5, 1e-9);
  EXPECT_LT(r->test_all.hr.value(), 10.0 / 101.0);
  size_t bucketed = 0;
  for (const HeldOutSummary& s : r->coldness_sampled) bucketed += s.hr.count();
  EXPECT_EQ(bucketed, r->test_sampled.hr.count());
  EXPECT_TRUE(r->curve.empty());
}

TEST(LeaveOneOutProtocolTest, SelectsTheEpochOnValidationAndRestoresIt) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 2);
  ScheduledModel model(data, /*good_epoch=*/3, /*max_epochs=*/20);
  LooProtocolOptions options;
  options.patience = 2;
  Result<LooResult> r = RunLeaveOneOut(model, data, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->best_epoch, 3);
  EXPECT_EQ(model.epochs_run(), 5);  // stopped 2 epochs after the best
  ASSERT_EQ(r->curve.size(), 5u);
  EXPECT_DOUBLE_EQ(r->curve[2].valid_hr, 1.0);
  EXPECT_DOUBLE_EQ(r->test_sampled.hr.value(), 1.0);
  EXPECT_DOUBLE_EQ(r->test_all.ndcg.value(), 1.0);
}

TEST(LeaveOneOutProtocolTest, ItemKnnBeatsChanceOnNonlinearData) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 3);
  ItemKnn knn;
  ConstantModel constant;
  Result<LooResult> k = RunLeaveOneOut(knn, data, {});
  Result<LooResult> c = RunLeaveOneOut(constant, data, {});
  ASSERT_TRUE(k.ok() && c.ok());
  std::printf("itemknn hr@10 %.4f (all %.4f), constant %.4f (all %.4f)\n",
              k->test_sampled.hr.value(), k->test_all.hr.value(),
              c->test_sampled.hr.value(), c->test_all.hr.value());
  EXPECT_GT(k->test_all.hr.value(), c->test_all.hr.value() + 0.02);
}

TEST(TimeSplitProtocolTest, ItemPopRanksImpressions) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 4);
  ItemPop pop;
  Result<TimeSplitResult> r = RunTimeSplit(pop, data, {});
  ASSERT_TRUE(r.ok());
  EXPECT_GT(r->test.auc.count(), 0u);
  EXPECT_GT(r->test.auc.value(), 0.5);
  EXPECT_GE(r->test.ndcg10.value(), r->test.ndcg5.value() - 1e-12);
  ConstantModel constant;
  Result<TimeSplitResult> c = RunTimeSplit(constant, data, {});
  ASSERT_TRUE(c.ok());
  EXPECT_NEAR(c->test.auc.value(), 0.5, 1e-12);
}

TEST(PrequentialProtocolTest, IncrementalAndRefitModels) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 5);
  PrequentialOptions options;
  options.num_windows = 5;
  ItemPop pop;
  Result<PrequentialResult> p = RunPrequential(pop, data, options);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->incremental);
  ASSERT_EQ(p->windows.size(), 4u);
  size_t scored = 0;
  for (const WindowResult& w : p->windows) {
    scored += w.metrics.auc.count() + w.metrics.skipped;
  }
  EXPECT_EQ(scored, data.impressions().size() - (p->windows[0].window.begin));
  ItemKnn knn;
  Result<PrequentialResult> k = RunPrequential(knn, data, options);
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->incremental);
}

// Scores 1 for (user, item) pairs it was trained on, 0 otherwise: it can
// only do well on held-out data that leaked into its training data.
class MemorizingModel final : public Model {
 public:
  std::string name() const override { return "memorizing"; }
  Status Fit(const TrainData& data, const FitContext&) override {
    seen_.clear();
    return Update(data);
  }
  Status Update(const TrainData& increment) override {
    for (const Interaction& x : increment.positives) {
      seen_.insert({x.user, x.item});
    }
    return Status::Ok();
  }
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> out) const override {
    for (size_t i = 0; i < items.size(); ++i) {
      out[i] = seen_.contains({user, items[i]}) ? 1.0f : 0.0f;
    }
  }

 private:
  std::set<std::pair<uint32_t, uint32_t>> seen_;
};

// A log where every (user, item) pair is clicked at most once and never
// shown again, so nothing of the future can be known from the past.
Dataset OneShotLog() {
  std::vector<MindRow> rows;
  for (int n = 0; n < 400; ++n) {
    MindRow row;
    row.impression_id = std::to_string(n + 1);
    row.user_id = "U" + std::to_string(n % 20);
    row.ts_ms = 1000 * (n + 1);
    for (int k = 0; k < 4; ++k) {
      row.items.push_back("N" + std::to_string(4 * n + k));
      row.clicked.push_back(k == n % 4 ? 1 : 0);
    }
    rows.push_back(std::move(row));
  }
  Result<Dataset> d = Dataset::FromRows(rows);
  EXPECT_TRUE(d.ok());
  return std::move(d).value();
}

TEST(LeakTest, TimeSplitAndPrequentialScoreBeforeLearning) {
  const Dataset data = OneShotLog();
  MemorizingModel model;
  Result<TimeSplitResult> t = RunTimeSplit(model, data, {});
  ASSERT_TRUE(t.ok());
  EXPECT_DOUBLE_EQ(t->test.auc.value(), 0.5);
  Result<PrequentialResult> p = RunPrequential(model, data, {});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->incremental);
  EXPECT_DOUBLE_EQ(p->overall.auc.value(), 0.5);
  // Control: scoring data the model did learn is perfect.
  TrainData all;
  all.num_users = data.num_users();
  all.num_items = data.num_items();
  for (const auto& user : data.PositivesByUser()) {
    all.positives.insert(all.positives.end(), user.begin(), user.end());
  }
  ASSERT_TRUE(model.Fit(all, {}).ok());
  EXPECT_DOUBLE_EQ(ScoreImpressions(model, data.impressions()).auc.value(),
                   1.0);
}

TEST(LeakTest, LeaveOneOutHidesHeldOutItemsFromTheModel) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 7);
  MemorizingModel model;
  Result<LooResult> r = RunLeaveOneOut(model, data, {});
  ASSERT_TRUE(r.ok());
  // The held-out item was never trained on, like every negative: all tie.
  EXPECT_NEAR(r->test_sampled.hr.value(), 10.0 / 101.0, 1e-9);
  EXPECT_NEAR(r->test_sampled.auc.value(), 0.5, 1e-9);
  EXPECT_NEAR(r->valid_sampled.auc.value(), 0.5, 1e-9);
}

TEST(TimeSplitProtocolTest, SelectsTheEpochOnValidation) {
  const Dataset data = Synthetic(ResponseModel::kNonlinear, 8);
  ScheduledModel model(data, /*good_epoch=*/4, /*max_epochs=*/30);
  TimeSplitProtocolOptions options;
  options.patience = 3;
  Result<TimeSplitResult> r = RunTimeSplit(model, data, options);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->best_epoch, 4);
  EXPECT_EQ(model.epochs_run(), 7);
  EXPECT_GT(r->test.auc.value(), 0.9);  // the restored "perfect" epoch
}

TEST(RunnerTest, OneJsonLineWithMetricsConfigAndSeed) {
  SynthOptions o;
  o.num_users = 100;
  o.seed = 6;
  Result<SynthData> synth = GenerateSynthetic(o);
  ASSERT_TRUE(synth.ok());
  const std::string dir = ::testing::TempDir() + "/cfrec_runner_test";
  ASSERT_TRUE(WriteSynthetic(*synth, dir).ok());
  {
    std::ofstream config(dir + "/config.json");
    config
        << R"({"loo": {"num_negatives": 50}, "models": {"itemknn": {"k": 10}}})";
  }
  const ModelRegistry registry = DefaultRegistry();
  EvalRequest request;
  request.data_path = dir + "/behaviors.tsv";
  request.config_path = dir + "/config.json";
  request.seed = 42;
  for (const char* protocol : {"loo", "impressions", "prequential"}) {
    request.protocol = protocol;
    Result<std::string> line = RunEvaluation(request, registry);
    ASSERT_TRUE(line.ok()) << line.status().ToString();
    EXPECT_EQ(line->find('\n'), std::string::npos);
    const nlohmann::json j = nlohmann::json::parse(*line);
    EXPECT_EQ(j["seed"], 42);
    EXPECT_EQ(j["protocol"], protocol);
    EXPECT_EQ(j["config"]["loo"]["num_negatives"], 50);
    EXPECT_EQ(j["config"]["models"]["itemknn"]["k"], 10);
    EXPECT_TRUE(j["metrics"].contains(std::string(protocol) == "loo" ? "hr@10"
                                                                     : "mrr"));
  }
  request.ranker = "bpr";
  EXPECT_EQ(RunEvaluation(request, registry).status().code(),
            StatusCode::kUnsupported);
  {
    std::ofstream config(dir + "/bad.json");
    config << R"({"lo": {}})";
  }
  request.ranker = "itempop";
  request.config_path = dir + "/bad.json";
  EXPECT_TRUE(RunEvaluation(request, registry).status().IsInvalidArgument());
  std::filesystem::remove_all(dir);
}

// RunEvaluationBatch's answers, one JSON value a line.
std::vector<nlohmann::json> AnswerLines(const std::string& out) {
  std::istringstream answers(out);
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(answers, line);) {
    lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

TEST(BatchRunnerTest, AnswersEachLineAsItsOwnRunWould) {
  SynthOptions o;
  o.num_users = 100;
  o.seed = 7;
  Result<SynthData> synth = GenerateSynthetic(o);
  ASSERT_TRUE(synth.ok());
  const std::string dir = ::testing::TempDir() + "/cfrec_batch_runner_test";
  ASSERT_TRUE(WriteSynthetic(*synth, dir).ok());
  const ModelRegistry registry = DefaultRegistry();
  EvalRequest knn;
  knn.data_path = dir + "/behaviors.tsv";
  knn.seed = 3;
  EvalRequest pop = knn;
  pop.ranker = "itempop";
  pop.protocol = "impressions";
  Result<std::string> knn_alone = RunEvaluation(knn, registry);
  Result<std::string> pop_alone = RunEvaluation(pop, registry);
  ASSERT_TRUE(knn_alone.ok() && pop_alone.ok());

  std::istringstream in(
      R"({"data": ")" + knn.data_path + R"(", "seed": 3})" + "\n\n" +
      R"({"data": ")" + knn.data_path +
      R"(", "ranker": "itempop", "protocol": "impressions", "seed": 3})" +
      "\nnot json\n" + R"({"data": "x", "epochs": 3})" + "\n" +
      R"({"data": ")" + knn.data_path + R"(", "seed": 3})" + "\n");
  std::ostringstream out;
  EXPECT_EQ(RunEvaluationBatch(in, out, registry), 2u);
  std::vector<nlohmann::json> lines = AnswerLines(out.str());
  ASSERT_EQ(lines.size(), 5u);  // the blank line has no answer
  const nlohmann::json a = nlohmann::json::parse(*knn_alone);
  const nlohmann::json b = nlohmann::json::parse(*pop_alone);
  for (size_t n : {size_t{0}, size_t{4}}) {  // the same run twice
    EXPECT_EQ(lines[n]["metrics"], a["metrics"]);
    EXPECT_EQ(lines[n]["ranker"], "itemknn");
    EXPECT_EQ(lines[n]["seed"], 3);
  }
  EXPECT_EQ(lines[1]["metrics"], b["metrics"]);
  EXPECT_EQ(lines[1]["protocol"], "impressions");
  EXPECT_EQ(lines[2]["code"], "INVALID_ARGUMENT");
  EXPECT_NE(lines[3]["error"].get<std::string>().find("'epochs'"),
            std::string::npos);
  // A request that is not UTF-8 gets an error line too (its bytes
  // replaced), and the next request is still answered.
  std::istringstream bad("{\"data\": \"\xff\"}\n{\"data\": \"" + knn.data_path +
                         "\", \"seed\": 3}\n");
  std::ostringstream bad_out;
  EXPECT_EQ(RunEvaluationBatch(bad, bad_out, registry), 1u);
  std::vector<nlohmann::json> bad_lines = AnswerLines(bad_out.str());
  ASSERT_EQ(bad_lines.size(), 2u);
  EXPECT_TRUE(bad_lines[0].contains("error"));
  EXPECT_EQ(bad_lines[1]["metrics"], a["metrics"]);
  EXPECT_TRUE(ParseEvalRequest(R"({"seed": 1})").status().IsInvalidArgument());
  EXPECT_TRUE(ParseEvalRequest(R"({"data": "d", "seed": "1"})")
                  .status()
                  .IsInvalidArgument());
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace cfrec::eval
