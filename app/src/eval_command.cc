#include "eval_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>

#include "cfrec/eval/batch_runner.h"
#include "cfrec/eval/model.h"
#include "cfrec/eval/runner.h"
#include "cfrec/learner/eval_models.h"

namespace cfrec::app {
namespace {

// A one-line progress bar on stderr, only when stderr is a terminal.
void DrawProgress(size_t done, size_t total) {
  if (total == 0) return;
  constexpr int kWidth = 40;
  const int filled = static_cast<int>(kWidth * done / total);
  std::fprintf(stderr, "\r[%-*s] %zu/%zu", kWidth,
               std::string(filled, '#').c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\r%*s\r", kWidth + 30, "");
  std::fflush(stderr);
}

}  // namespace

void AddEvalCommand(CLI::App& app) {
  auto request = std::make_shared<eval::EvalRequest>();
  CLI::App* cmd = app.add_subcommand(
      "eval", "Evaluate a ranker on a MIND-format log; prints one JSON line");
  auto batch = std::make_shared<bool>(false);
  CLI::Option* data = cmd->add_option(
      "--data", request->data_path,
      "behaviors.tsv to evaluate on (required without --batch)");
  cmd->add_flag("--batch", *batch,
                "Many runs in this process: one request a line on stdin "
                "(JSON: data, ranker, intervention, trainer, protocol, "
                "stream_features, seed, config), one answer line each on "
                "stdout (the run's JSON, or {\"error\", \"code\"}); the "
                "other flags are ignored")
      ->excludes(data);
  cmd->add_option("--ranker", request->ranker,
                  "Ranker; none = the stream features alone (--protocol "
                  "stream)")
      ->check(CLI::IsMember({"bpr", "gmf", "mlp", "neumf", "lightgcn",
                             "itempop", "itemknn", "none"}))
      ->capture_default_str();
  cmd->add_option("--intervention", request->intervention,
                  "none (plain ranker), random (CPR-r), learned (CPR; clicks "
                  "simulated by a logistic click model, or by the paper's "
                  "SEMs with models.<ranker>.cf_simulator \"shared\") or "
                  "oracle (CPR with the generator's true models; synthetic "
                  "logs with ground_truth.json)")
      ->check(CLI::IsMember({"none", "random", "learned", "oracle"}))
      ->capture_default_str();
  cmd->add_option("--trainer", request->trainer,
                  "default, ps (propensity two-stage) or acl")
      ->check(CLI::IsMember({"default", "ps", "acl"}))
      ->capture_default_str();
  cmd->add_option("--protocol", request->protocol,
                  "loo (leave-one-out), impressions (time split), "
                  "prequential, or stream (time order through the service's "
                  "scoring: each impression scored by the snapshot of its "
                  "moment, then learned; baselines beside)")
      ->check(CLI::IsMember({"loo", "impressions", "prequential", "stream"}))
      ->capture_default_str();
  cmd->add_option_function<std::string>(
         "--stream-features",
         [request](const std::string& v) {
           request->stream_features = v == "on";
         },
         "on: combine the ranker with the stream features (default); off: "
         "the ranker alone (--protocol stream)")
      ->check(CLI::IsMember({"on", "off"}));
  cmd->add_option("--seed", request->seed, "Seed of sampling and training")
      ->capture_default_str();
  cmd->add_option("--config", request->config_path,
                  "JSON file of protocol options and hyper-parameters");
  cmd->callback([request, batch, data] {
    eval::ModelRegistry registry = eval::DefaultRegistry();
    learner::RegisterEvalModels(registry);
    if (*batch) {
      eval::RunEvaluationBatch(std::cin, std::cout, registry);
      return;
    }
    if (data->count() == 0) throw CLI::RequiredError("--data");
    eval::ProgressFn progress;
    if (isatty(STDERR_FILENO)) progress = DrawProgress;
    Result<std::string> line =
        eval::RunEvaluation(*request, registry, progress);
    if (!line.ok()) {
      std::fprintf(stderr, "cfrec eval: %s\n",
                   line.status().ToString().c_str());
      throw CLI::RuntimeError(
          line.status().code() == StatusCode::kUnsupported ? 2 : 1);
    }
    std::printf("%s\n", line->c_str());
  });
}

}  // namespace cfrec::app
