#include "cfrec/eval/model.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace cfrec::eval {
namespace {

Result<nlohmann::json> ParseHyper(const ModelSpec& spec) {
  try {
    nlohmann::json j = nlohmann::json::parse(spec.hyper_json);
    if (!j.is_object()) {
      return Status::InvalidArgument("models." + spec.ranker +
                                     ": expected a JSON object");
    }
    return j;
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument("models." + spec.ranker + ": " + e.what());
  }
}

Status RequirePlain(const ModelSpec& spec) {
  if (spec.intervention != "none") {
    return Status::InvalidArgument(spec.ranker +
                                   " is a baseline: only --intervention none");
  }
  if (spec.trainer != "default") {
    return Status::InvalidArgument(spec.ranker +
                                   " is a baseline: only --trainer default");
  }
  return Status::Ok();
}

}  // namespace

void ModelRegistry::Register(const std::string& ranker, ModelFactory factory) {
  factories_[ranker] = std::move(factory);
}

Result<std::unique_ptr<Model>> ModelRegistry::Create(
    const ModelSpec& spec) const {
  auto it = factories_.find(spec.ranker);
  if (it == factories_.end()) {
    std::string known;
    for (const auto& [name, f] : factories_) {
      known += (known.empty() ? "" : ", ") + name;
    }
    return Status::InvalidArgument("unknown ranker '" + spec.ranker +
                                   "' (known: " + known + ")");
  }
  return it->second(spec);
}

std::vector<std::string> ModelRegistry::names() const {
  std::vector<std::string> out;
  for (const auto& [name, f] : factories_) out.push_back(name);
  return out;
}

ModelRegistry DefaultRegistry() {
  ModelRegistry registry;
  registry.Register(
      "itempop", [](const ModelSpec& spec) -> Result<std::unique_ptr<Model>> {
        CFREC_RETURN_IF_ERROR(RequirePlain(spec));
        return std::unique_ptr<Model>(std::make_unique<ItemPop>());
      });
  registry.Register(
      "itemknn", [](const ModelSpec& spec) -> Result<std::unique_ptr<Model>> {
        CFREC_RETURN_IF_ERROR(RequirePlain(spec));
        Result<nlohmann::json> hyper = ParseHyper(spec);
        if (!hyper.ok()) return hyper.status();
        ItemKnnOptions options;
        try {
          options.k = hyper->value("k", options.k);
          options.shrink = hyper->value("shrink", options.shrink);
        } catch (const nlohmann::json::exception& e) {
          return Status::InvalidArgument(std::string("models.itemknn: ") +
                                         e.what());
        }
        if (options.k == 0) {
          return Status::InvalidArgument("models.itemknn.k must be > 0");
        }
        if (options.shrink < 0) {
          return Status::InvalidArgument("models.itemknn.shrink must be >= 0");
        }
        return std::unique_ptr<Model>(std::make_unique<ItemKnn>(options));
      });
  for (const char* neural : {"bpr", "gmf", "mlp", "neumf", "lightgcn"}) {
    registry.Register(
        neural, [](const ModelSpec& spec) -> Result<std::unique_ptr<Model>> {
          return Status::Unsupported("ranker '" + spec.ranker +
                                     "' is not available yet: the learner "
                                     "module has not registered it");
        });
  }
  return registry;
}

// ---------------------------------------------------------------- ItemPop

Status ItemPop::Fit(const TrainData& data, const FitContext& context) {
  (void)context;
  counts_.assign(data.num_items, 0.0f);
  return Update(data);
}

Status ItemPop::Update(const TrainData& increment) {
  if (counts_.size() < increment.num_items) {
    counts_.resize(increment.num_items, 0.0f);
  }
  for (const Interaction& x : increment.positives) {
    if (x.item >= counts_.size()) counts_.resize(x.item + 1, 0.0f);
    counts_[x.item] += 1.0f;
  }
  return Status::Ok();
}

void ItemPop::Score(uint32_t user, std::span<const uint32_t> items,
                    std::span<float> out) const {
  (void)user;
  for (size_t i = 0; i < items.size(); ++i) {
    out[i] = items[i] < counts_.size() ? counts_[items[i]] : 0.0f;
  }
}

// ----------------------------------------------------------------- ItemKnn

Status ItemKnn::Fit(const TrainData& data, const FitContext& context) {
  (void)context;
  const uint32_t n_items = data.num_items;
  user_items_.assign(data.num_users, {});
  for (const Interaction& x : data.positives) {
    if (x.user >= data.num_users || x.item >= n_items) {
      return Status::InvalidArgument("itemknn: interaction id out of range");
    }
    user_items_[x.user].push_back(x.item);
  }
  std::vector<std::vector<uint32_t>> item_users(n_items);
  for (uint32_t u = 0; u < user_items_.size(); ++u) {
    auto& items = user_items_[u];
    std::sort(items.begin(), items.end());
    items.erase(std::unique(items.begin(), items.end()), items.end());
    for (uint32_t i : items) item_users[i].push_back(u);
  }

  // Co-occurrence counts of item i with every j, one row at a time in a
  // dense scratch array: cost sum over users of |items(u)|^2.
  neighbours_.assign(n_items, {});
  std::vector<uint32_t> co(n_items, 0);
  std::vector<uint32_t> touched;
  for (uint32_t i = 0; i < n_items; ++i) {
    touched.clear();
    for (uint32_t u : item_users[i]) {
      for (uint32_t j : user_items_[u]) {
        if (j == i) continue;
        if (co[j]++ == 0) touched.push_back(j);
      }
    }
    std::vector<Neighbour>& row = neighbours_[i];
    row.reserve(touched.size());
    const double ni = static_cast<double>(item_users[i].size());
    for (uint32_t j : touched) {
      const double nj = static_cast<double>(item_users[j].size());
      const double sim = co[j] / (std::sqrt(ni * nj) + options_.shrink);
      row.push_back({j, static_cast<float>(sim)});
      co[j] = 0;
    }
    auto by_sim = [](const Neighbour& a, const Neighbour& b) {
      return a.sim != b.sim ? a.sim > b.sim : a.item < b.item;
    };
    if (row.size() > options_.k) {
      std::partial_sort(row.begin(), row.begin() + options_.k, row.end(),
                        by_sim);
      row.resize(options_.k);
    } else {
      std::sort(row.begin(), row.end(), by_sim);
    }
    row.shrink_to_fit();
  }
  reverse_.assign(n_items, {});
  for (uint32_t j = 0; j < n_items; ++j) {
    for (const Neighbour& nb : neighbours_[j]) {
      reverse_[nb.item].push_back({j, nb.sim});
    }
  }
  return Status::Ok();
}

void ItemKnn::Score(uint32_t user, std::span<const uint32_t> items,
                    std::span<float> out) const {
  std::fill(out.begin(), out.end(), 0.0f);
  if (user >= user_items_.size()) return;
  const std::vector<uint32_t>& mine = user_items_[user];
  if (mine.empty()) return;
  // Long candidate lists (all-items ranking): spread the user's items over
  // their reverse neighbour lists once. Short lists: look each candidate's
  // neighbours up in the user's sorted items.
  if (items.size() > 256) {
    std::vector<float> dense(neighbours_.size(), 0.0f);
    for (uint32_t i : mine) {
      for (const Neighbour& nb : reverse_[i]) dense[nb.item] += nb.sim;
    }
    for (size_t c = 0; c < items.size(); ++c) {
      out[c] = items[c] < dense.size() ? dense[items[c]] : 0.0f;
    }
    return;
  }
  for (size_t c = 0; c < items.size(); ++c) {
    if (items[c] >= neighbours_.size()) continue;
    float sum = 0;
    for (const Neighbour& nb : neighbours_[items[c]]) {
      if (std::binary_search(mine.begin(), mine.end(), nb.item)) sum += nb.sim;
    }
    out[c] = sum;
  }
}

std::span<const ItemKnn::Neighbour> ItemKnn::Neighbours(uint32_t item) const {
  if (item >= neighbours_.size()) return {};
  return neighbours_[item];
}

}  // namespace cfrec::eval
