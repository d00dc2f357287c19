#include "synth_command.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "cfrec/eval/synth.h"

namespace cfrec::app {
namespace {

struct SynthFlags {
  std::string out;
  std::string mode = "cpr";
  std::string response = "linear";
  eval::SynthOptions cpr;
  eval::MindLikeOptions mind;
  eval::NewsOptions news;
  uint64_t seed = 1;
};

Status RunSynth(const SynthFlags& flags) {
  nlohmann::json line;
  line["tool"] = "cfrec synth";
  line["mode"] = flags.mode;
  line["seed"] = flags.seed;
  line["behaviors"] = flags.out + "/behaviors.tsv";
  std::vector<MindRow> mind_rows;
  const std::vector<MindRow>* rows = nullptr;
  Result<eval::SynthData> cpr = Status::Internal("unset");
  if (flags.mode == "cpr") {
    eval::SynthOptions options = flags.cpr;
    options.seed = flags.seed;
    Result<eval::ResponseModel> response =
        eval::ParseResponseModel(flags.response);
    if (!response.ok()) return response.status();
    options.response = *response;
    cpr = eval::GenerateSynthetic(options);
    if (!cpr.ok()) return cpr.status();
    CFREC_RETURN_IF_ERROR(eval::WriteSynthetic(*cpr, flags.out));
    rows = &cpr->rows;
    line["ground_truth"] = flags.out + "/ground_truth.json";
    line["options"] = {{"users", options.num_users},
                       {"items", options.num_items},
                       {"dim", options.dim},
                       {"lists_per_user", options.lists_per_user},
                       {"list_length", options.list_length},
                       {"response", flags.response},
                       {"noise", options.noise_std}};
  } else if (flags.mode == "mind-like") {
    eval::MindLikeOptions options = flags.mind;
    options.seed = flags.seed;
    Result<std::vector<MindRow>> generated = eval::GenerateMindLike(options);
    if (!generated.ok()) return generated.status();
    mind_rows = std::move(generated).value();
    std::error_code ec;
    std::filesystem::create_directories(flags.out, ec);
    if (ec) return Status::IOError("cannot create '" + flags.out + "'");
    CFREC_RETURN_IF_ERROR(
        eval::WriteMindFile(mind_rows, flags.out + "/behaviors.tsv"));
    rows = &mind_rows;
    line["options"] = {{"users", options.num_users},
                       {"items", options.num_items},
                       {"impressions", options.num_impressions},
                       {"median_list_length", options.median_list_length},
                       {"click_rate", options.click_rate}};
  } else if (flags.mode == "news") {
    eval::NewsOptions options = flags.news;
    options.seed = flags.seed;
    Result<eval::NewsData> news = eval::GenerateNews(options);
    if (!news.ok()) return news.status();
    CFREC_RETURN_IF_ERROR(eval::WriteNews(*news, flags.out));
    mind_rows = std::move(news->rows);
    rows = &mind_rows;
    size_t returning = 0;
    size_t trending = 0;
    for (const eval::NewsUser& user : news->users) returning += user.returning;
    for (const eval::NewsItem& item : news->items) trending += item.trending;
    line["ground_truth"] = flags.out + "/ground_truth.json";
    line["users"] = news->users.size();
    line["returning_users"] = returning;
    line["items"] = news->items.size();
    line["trending_items"] = trending;
    line["options"] = {{"impressions", options.num_impressions},
                       {"days", options.days},
                       {"items_per_hour", options.items_per_hour},
                       {"topics", options.num_topics},
                       {"trending_share", options.trending_share},
                       {"return_share", options.return_share},
                       {"half_life_hours", options.half_life_hours},
                       {"stale_share", options.stale_share},
                       {"median_list_length", options.median_list_length},
                       {"history_length", options.mean_history_length}};
  } else {
    return Status::InvalidArgument("--mode must be cpr, mind-like or news");
  }
  size_t shown = 0;
  size_t clicks = 0;
  for (const MindRow& row : *rows) {
    shown += row.items.size();
    for (uint8_t c : row.clicked) clicks += c;
  }
  line["impressions"] = rows->size();
  line["shown"] = shown;
  line["clicks"] = clicks;
  line["click_rate"] = shown == 0 ? 0.0 : static_cast<double>(clicks) / shown;
  std::printf("%s\n", line.dump().c_str());
  return Status::Ok();
}

}  // namespace

void AddSynthCommand(CLI::App& app) {
  auto flags = std::make_shared<SynthFlags>();
  CLI::App* cmd = app.add_subcommand(
      "synth",
      "Write a synthetic MIND-format log (CPR eq. 12, MIND-like or news)");
  cmd->add_option("--out", flags->out, "Output directory")->required();
  cmd->add_option("--mode", flags->mode,
                  "cpr (CPR section 4.1.1), mind-like (large stream) or news "
                  "(items born over time that peak and fade, trending items, "
                  "user topics, mostly one-time users)")
      ->capture_default_str();
  cmd->add_option("--seed", flags->seed, "Random seed")->capture_default_str();
  cmd->add_option("--dim", flags->cpr.dim, "cpr: vector size d (16 or 32)")
      ->capture_default_str();
  cmd->add_option("--response", flags->response,
                  "cpr: user response model, linear or nonlinear")
      ->capture_default_str();
  cmd->add_option("--noise", flags->cpr.noise_std,
                  "cpr: std of the click noise N_y (paper: 0 or 0.2)")
      ->capture_default_str();
  cmd->add_option("--users", flags->cpr.num_users, "cpr: N_U")
      ->capture_default_str();
  cmd->add_option("--items", flags->cpr.num_items, "cpr: N_I")
      ->capture_default_str();
  cmd->add_option("--lists-per-user", flags->cpr.lists_per_user,
                  "cpr: impression lists per user")
      ->capture_default_str();
  cmd->add_option("--list-length", flags->cpr.list_length,
                  "cpr: items per list")
      ->capture_default_str();
  cmd->add_option("--ml-users", flags->mind.num_users, "mind-like: users")
      ->capture_default_str();
  cmd->add_option("--ml-items", flags->mind.num_items, "mind-like: items")
      ->capture_default_str();
  cmd->add_option("--ml-impressions", flags->mind.num_impressions,
                  "mind-like: impressions")
      ->capture_default_str();
  cmd->add_option("--ml-median-length", flags->mind.median_list_length,
                  "mind-like: median list length")
      ->capture_default_str();
  cmd->add_option("--ml-click-rate", flags->mind.click_rate,
                  "mind-like: target click rate")
      ->capture_default_str();
  cmd->add_option("--impressions", flags->news.num_impressions,
                  "news: impression lists")
      ->capture_default_str();
  cmd->add_option("--days", flags->news.days,
                  "news: days of event time the lists span")
      ->capture_default_str();
  cmd->add_option("--items-per-hour", flags->news.items_per_hour,
                  "news: items born per hour of event time (also during the "
                  "48 h before the stream)")
      ->capture_default_str();
  cmd->add_option("--half-life", flags->news.half_life_hours,
                  "news: median hours in which an item's click appeal halves")
      ->capture_default_str();
  cmd->add_option("--trending-share", flags->news.trending_share,
                  "news: share of items that trend (much higher appeal)")
      ->capture_default_str();
  cmd->add_option("--topics", flags->news.num_topics,
                  "news: topics of items and users")
      ->capture_default_str();
  cmd->add_option("--return-share", flags->news.return_share,
                  "news: share of users who return (heavy-tailed number of "
                  "lists, with a history column); the others are seen once")
      ->capture_default_str();
  cmd->add_option("--stale-share", flags->news.stale_share,
                  "news: share of list slots given to any earlier item "
                  "rather than a fresh one")
      ->capture_default_str();
  cmd->add_option("--median-length", flags->news.median_list_length,
                  "news: median list length")
      ->capture_default_str();
  cmd->add_option("--history-length", flags->news.mean_history_length,
                  "news: mean history length of returning users")
      ->capture_default_str();
  cmd->callback([flags] {
    const Status st = RunSynth(*flags);
    if (!st.ok()) {
      std::fprintf(stderr, "cfrec synth: %s\n", st.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace cfrec::app
