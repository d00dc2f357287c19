// The scorer interface every evaluation protocol runs, the registry that
// maps `--ranker` names to implementations, and the two non-neural
// baselines of CPR section 4.1.2 (ItemPop, ItemKNN).
//
// Neural rankers (BPR, GMF, MLP, NeuMF, LightGCN) with intervention
// none / random / learned and trainers default / ps / acl live in learner/
// and plug in by registering a factory under their name
// (cfrec::learner::RegisterEvalModels); until they do, the registry answers
// kUnsupported for those names.
#ifndef CFREC_EVAL_MODEL_H_
#define CFREC_EVAL_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cfrec/eval/dataset.h"
#include "cfrec/eval/truth.h"
#include "cfrec/schemas/status.h"

namespace cfrec::eval {

// What a model may learn from: nothing of a held-out period is in here.
struct TrainData {
  uint32_t num_users = 0;  // dense ids are < num_users / num_items
  uint32_t num_items = 0;
  std::vector<Interaction> positives;   // clicks and history, time order
  std::vector<Impression> impressions;  // shown lists with labels, time order
};

struct EpochStats {
  int epoch = 0;          // 1-based
  double train_loss = 0;  // mean loss of the epoch, model-defined
};

enum class EpochVerdict {
  kContinue,  // keep training
  kBest,      // the current parameters are the best so far: keep a copy
  kStop,      // stop now and restore the best copy (or keep the current
              // parameters when no epoch was ever kBest)
};

struct FitContext {
  uint64_t seed = 1;  // every random choice of Fit derives from it
  // Validation-based model selection. An iterative model calls this after
  // each epoch, with Score reflecting that epoch's parameters, and obeys the
  // verdict. When empty the model trains its configured number of epochs.
  // Models without epochs never call it.
  std::function<EpochVerdict(const EpochStats&)> on_epoch;
};

// A ranker under evaluation. Fit and Update need exclusive access; after
// them, Score may run from several threads at once.
class Model {
 public:
  virtual ~Model() = default;

  virtual std::string name() const = 0;

  // Trains from scratch on `data`, replacing whatever was learned before.
  virtual Status Fit(const TrainData& data, const FitContext& context) = 0;

  // Learns from data observed after the last Fit/Update (the prequential
  // protocol's "then train" step). Models that cannot learn incrementally
  // return kUnsupported and the protocol refits them on all data so far.
  virtual Status Update(const TrainData& increment) {
    (void)increment;
    return Status::Unsupported(name() + " cannot learn incrementally");
  }

  // Writes the score of each of `items` for `user` into `out` (same size);
  // higher ranks first. Ids the model never saw get a finite score.
  virtual void Score(uint32_t user, std::span<const uint32_t> items,
                     std::span<float> out) const = 0;

  // A JSON object the model wants printed beside the metrics (CPR's
  // counterfactual figures), or "" for none. Called after Fit/Update.
  virtual std::string DiagnosticsJson() const { return {}; }
};

// What `cfrec eval` asks for.
struct ModelSpec {
  std::string ranker = "itemknn";  // bpr|gmf|mlp|neumf|lightgcn|itempop|itemknn
  std::string intervention = "none";  // none|random|learned
  std::string trainer = "default";    // default|ps|acl
  // The JSON object of hyper-parameters for this ranker (the config file's
  // "models.<ranker>" section), "{}" when absent. Factories parse it.
  std::string hyper_json = "{}";
  // The generating model when the log comes from `cfrec synth` (its
  // ground_truth.json beside the data), else null: the oracle simulator
  // and the fidelity figures read it; training never does.
  std::shared_ptr<const TrueModel> truth;
};

using ModelFactory =
    std::function<Result<std::unique_ptr<Model>>(const ModelSpec&)>;

// Name -> factory. Not thread-safe for Register; Create is const.
class ModelRegistry {
 public:
  // Replaces any earlier factory of that name.
  void Register(const std::string& ranker, ModelFactory factory);

  // kInvalidArgument for an unknown name, or what the factory returns.
  Result<std::unique_ptr<Model>> Create(const ModelSpec& spec) const;

  std::vector<std::string> names() const;

 private:
  std::map<std::string, ModelFactory> factories_;
};

// The registry with itempop and itemknn, and bpr, gmf, mlp, neumf and
// lightgcn answering kUnsupported ("not available yet") until learner/
// registers real factories over them.
ModelRegistry DefaultRegistry();

// ItemPop: an item's score is its number of positives in training (CPR
// section 4.1.2). Not personalised. Learns incrementally.
class ItemPop final : public Model {
 public:
  std::string name() const override { return "itempop"; }
  Status Fit(const TrainData& data, const FitContext& context) override;
  Status Update(const TrainData& increment) override;
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> out) const override;

 private:
  std::vector<float> counts_;
};

struct ItemKnnOptions {
  // Neighbours kept per item. Default 50.
  uint32_t k = 50;
  // Shrinkage added to the cosine denominator, damping similarities built on
  // few co-occurrences. Default 0 (plain cosine).
  double shrink = 0;
};

// ItemKNN (Sarwar et al., CPR ref. [30]): item-item cosine similarity of
// click co-occurrence, sim(i, j) = |U_i & U_j| / (sqrt(|U_i| |U_j|) + shrink),
// each item keeping its k most similar items; score(u, j) = sum of sim(i, j)
// over the user's training items i among j's neighbours.
class ItemKnn final : public Model {
 public:
  explicit ItemKnn(ItemKnnOptions options = {}) : options_(options) {}
  std::string name() const override { return "itemknn"; }
  Status Fit(const TrainData& data, const FitContext& context) override;
  void Score(uint32_t user, std::span<const uint32_t> items,
             std::span<float> out) const override;

  // The neighbours of `item`, most similar first (for tests and reports).
  struct Neighbour {
    uint32_t item;
    float sim;
  };
  std::span<const Neighbour> Neighbours(uint32_t item) const;

 private:
  ItemKnnOptions options_;
  std::vector<std::vector<Neighbour>> neighbours_;  // by item, top-k
  std::vector<std::vector<Neighbour>> reverse_;     // i -> {j : i in N(j)}
  std::vector<std::vector<uint32_t>> user_items_;   // sorted, distinct
};

}  // namespace cfrec::eval

#endif  // CFREC_EVAL_MODEL_H_
