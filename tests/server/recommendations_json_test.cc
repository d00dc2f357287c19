// The hand-written /v1/recommendations body against nlohmann::json's dump()
// of the same document (what the handler wrote before): byte for byte, for
// scores of every magnitude, non-finite and absent scores, each fallback,
// and ids that need escaping or are not valid UTF-8.
#include "recommendations_json.h"

#include <gtest/gtest.h>

#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "cfrec/server/testing/fake_snapshot.h"

namespace cfrec::server {
namespace {

using nlohmann::json;

std::string Reference(const learner::ModelSnapshot& snapshot,
                      const std::string& user_id, const Recommendation& rec) {
  json items = json::array();
  for (const ScoredItem& item : rec.items) {
    json entry = {{"item_id", snapshot.ItemId(item.item)}};
    entry["score"] = item.score.has_value() ? json(*item.score) : json(nullptr);
    items.push_back(std::move(entry));
  }
  json doc = {{"user_id", user_id},
              {"model_version", snapshot.version()},
              {"fallback", rec.popularity_fallback ? json("popularity")
                           : rec.no_user_term      ? json("stream_features")
                                                   : json(nullptr)},
              {"items", std::move(items)}};
  return doc.dump(-1, ' ', false, json::error_handler_t::replace);
}

const std::vector<std::string>& Ids() {
  static const std::vector<std::string> ids = {
      "N12345",        "",
      "a\"b",          "back\\slash",
      "tab\there",     "ctl\x01x",
      "caf\xc3\xa9",   "bad\xff",
      "trunc\xe2\x82", "~!@#$%^&*()_+{}|:<>?",
      "\x7f"};
  return ids;
}

TEST(RecommendationsJson, SameBytesAsNlohmannDump) {
  testing::FakeSnapshot snap(18446744073709551615ull, 2);
  for (const std::string& id : Ids()) snap.AddItem(id, {0.0f, 0.0f});
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> bits;
  std::uniform_int_distribution<uint32_t> item(
      0, static_cast<uint32_t>(Ids().size() - 1));
  const std::vector<float> special = {0.0f,
                                      -0.0f,
                                      1.0f,
                                      100.0f,
                                      -3.5f,
                                      0.1f,
                                      1e-5f,
                                      0.0001f,
                                      1e21f,
                                      123456789.0f,
                                      std::numeric_limits<float>::min(),
                                      std::numeric_limits<float>::denorm_min(),
                                      std::numeric_limits<float>::max(),
                                      -std::numeric_limits<float>::infinity(),
                                      std::numeric_limits<float>::infinity(),
                                      std::numeric_limits<float>::quiet_NaN()};
  std::string got;
  for (int round = 0; round < 300; ++round) {
    Recommendation rec;
    rec.popularity_fallback = round % 3 == 1;
    rec.no_user_term = round % 3 == 2;
    const size_t n = round % 13;
    for (size_t i = 0; i < n; ++i) {
      ScoredItem s;
      s.item = item(rng);
      const uint32_t pick = bits(rng) % 4;
      if (pick == 0) {
        s.score = special[bits(rng) % special.size()];
      } else if (pick == 1) {
        uint32_t b = bits(rng);  // any float, all exponents
        float f;
        std::memcpy(&f, &b, sizeof(f));
        s.score = f;
      } else if (pick == 2) {
        s.score = std::uniform_real_distribution<float>(-20, 20)(rng);
      }  // else absent
      rec.items.push_back(s);
    }
    const std::string user = Ids()[round % Ids().size()] + "u";
    snap.set_version(round == 0 ? 0 : snap.version() / 3);
    internal::WriteRecommendationsJson(snap, user, rec, &got);
    ASSERT_EQ(got, Reference(snap, user, rec)) << "round " << round;
  }
}

}  // namespace
}  // namespace cfrec::server
