#include "cfrec/eval/truth.h"

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string_view>

namespace cfrec::eval {
namespace {

// "U12" -> 11 (the generator's index); nullopt-like -1 otherwise.
int64_t GeneratorIndex(std::string_view id, char prefix) {
  if (id.size() < 2 || id[0] != prefix) return -1;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), n);
  if (ec != std::errc() || end != id.data() + id.size() || n == 0) return -1;
  return static_cast<int64_t>(n - 1);
}

}  // namespace

Result<std::shared_ptr<const TrueModel>> TrueModel::Load(
    const std::string& path, const Dataset& data) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot open " + path);
  std::shared_ptr<TrueModel> m(new TrueModel());
  try {
    nlohmann::json j = nlohmann::json::parse(in);
    if (!j.contains("generator") ||
        j.at("generator").get<std::string>().rfind("cpr-", 0) != 0) {
      return Status::InvalidArgument(path + ": not a CPR generator's truth");
    }
    const auto& o = j.at("options");
    Result<ResponseModel> response =
        ParseResponseModel(o.at("response").get<std::string>());
    if (!response.ok()) return response.status().WithContext(path);
    m->response_ = *response;
    m->noise_std_ = o.at("noise_std").get<double>();
    m->a_ = j.at("a").get<std::vector<double>>();
    m->b_ = j.at("b").get<double>();
    auto users = j.at("user_vectors").get<std::vector<std::vector<double>>>();
    auto items = j.at("item_vectors").get<std::vector<std::vector<double>>>();
    auto remap = [&](const std::vector<std::string>& ids, char prefix,
                     std::vector<std::vector<double>>& from,
                     std::vector<std::vector<double>>& to) -> Status {
      to.resize(ids.size());
      for (size_t k = 0; k < ids.size(); ++k) {
        int64_t n = GeneratorIndex(ids[k], prefix);
        if (n < 0 || size_t(n) >= from.size() ||
            2 * from[size_t(n)].size() != m->a_.size()) {
          return Status::InvalidArgument(path + ": no vector for id " + ids[k]);
        }
        to[k] = from[size_t(n)];
      }
      return Status::Ok();
    };
    CFREC_RETURN_IF_ERROR(remap(data.user_ids(), 'U', users, m->users_));
    CFREC_RETURN_IF_ERROR(remap(data.item_ids(), 'N', items, m->items_));
  } catch (const nlohmann::json::exception& e) {
    return Status::InvalidArgument(path + ": " + e.what());
  }
  return std::shared_ptr<const TrueModel>(std::move(m));
}

std::shared_ptr<const TrueModel> TrueModel::FromTruth(
    const SynthGroundTruth& truth) {
  std::shared_ptr<TrueModel> m(new TrueModel());
  m->users_ = truth.user_vectors;
  m->items_ = truth.item_vectors;
  m->a_ = truth.a;
  m->b_ = truth.b;
  m->response_ = truth.options.response;
  m->noise_std_ = truth.options.noise_std;
  return m;
}

double TrueModel::Exposure(uint32_t user, uint32_t item) const {
  return ExposureScore(users_[user], items_[item], a_, b_);
}

double TrueModel::ClickLogit(uint32_t user, uint32_t item) const {
  return ResponseLogit(response_, users_[user], items_[item], a_, b_);
}

double TrueModel::ClickProbability(uint32_t user, uint32_t item) const {
  return eval::ClickProbability(response_, noise_std_, users_[user],
                                items_[item], a_, b_);
}

}  // namespace cfrec::eval
