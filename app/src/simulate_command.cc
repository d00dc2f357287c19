// `cfrec simulate`: the ACL appendix's two-stage semi-synthetic simulation
// (A.6.3) of a MIND-format log; see cfrec/learner/semisynth.h.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <system_error>

#include "cfrec/eval/synth.h"
#include "cfrec/learner/semisynth.h"
#include "cfrec/schemas/mind.h"
#include "commands.h"

namespace cfrec::app {
namespace {

struct SimulateFlags {
  std::string data;
  std::string out;
  learner::SemiSyntheticOptions options;
};

// One line per row of a factor model: "U|I \t id \t bias \t v1 v2 ...".
Status WriteFactors(const learner::SemiSyntheticData& d,
                    const learner::FactorModel& m, const std::string& path) {
  std::ofstream out(path);
  if (!out) return Status::IOError("cannot write " + path);
  out << "# logit(u, i) = " << m.bias
      << " + bias_u + bias_i + user_u . item_i\n";
  auto row = [&](char kind, const std::string& id, float bias,
                 const std::vector<float>& table, size_t r) {
    out << kind << '\t' << id << '\t' << bias << '\t';
    for (int k = 0; k < m.dim; ++k) {
      out << (k ? " " : "") << table[r * m.dim + k];
    }
    out << '\n';
  };
  for (size_t u = 0; u < d.user_ids.size(); ++u) {
    row('U', d.user_ids[u], m.user_bias[u], m.user, u);
  }
  for (size_t i = 0; i < d.item_ids.size(); ++i) {
    row('I', d.item_ids[i], m.item_bias[i], m.item, i);
  }
  return out ? Status::Ok() : Status::IOError("cannot write " + path);
}

Status RunSimulate(const SimulateFlags& flags) {
  Result<MindFile> log = ReadMindFile(flags.data);
  if (!log.ok()) return log.status();
  Result<learner::SemiSyntheticData> data =
      learner::SimulateSemiSynthetic(log->rows, flags.options);
  if (!data.ok()) return data.status();
  std::error_code ec;
  std::filesystem::create_directories(flags.out + "/stage1", ec);
  if (ec) return Status::IOError("cannot create '" + flags.out + "'");
  CFREC_RETURN_IF_ERROR(
      eval::WriteMindFile(data->stage2, flags.out + "/behaviors.tsv"));
  CFREC_RETURN_IF_ERROR(
      eval::WriteMindFile(data->stage1, flags.out + "/stage1/behaviors.tsv"));
  CFREC_RETURN_IF_ERROR(
      WriteFactors(*data, data->relevance, flags.out + "/relevance_model.tsv"));
  CFREC_RETURN_IF_ERROR(
      WriteFactors(*data, data->exposure, flags.out + "/exposure_model.tsv"));
  const learner::SemiSyntheticOptions& o = flags.options;
  nlohmann::json line = {
      {"tool", "cfrec simulate"},
      {"data", flags.data},
      {"skipped_lines", log->errors.size()},
      {"behaviors", flags.out + "/behaviors.tsv"},
      {"stage1", flags.out + "/stage1/behaviors.tsv"},
      {"seed", o.seed},
      {"exposure_term", o.exposure_term},
      {"exposure_strength", o.exposure_strength},
      {"users", data->user_ids.size()},
      {"items", data->item_ids.size()},
      {"stage1_impressions", data->stage1.size()},
      {"stage1_shown", data->exposed1},
      {"stage1_clicks", data->clicks1},
      {"stage2_impressions", data->stage2.size()},
      {"stage2_shown", data->exposed2},
      {"stage2_clicks", data->clicks2},
  };
  std::printf("%s\n", line.dump().c_str());
  return Status::Ok();
}

}  // namespace

void AddSimulateCommand(CLI::App& app) {
  auto flags = std::make_shared<SimulateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "simulate",
      "Semi-synthetic logs from a real one (ACL appendix A.6.3): "
      "DIR/behaviors.tsv (stage 2), DIR/stage1/behaviors.tsv, and the "
      "fitted relevance and exposure models");
  learner::SemiSyntheticOptions& o = flags->options;
  cmd->add_option("--data", flags->data, "MIND-format behaviors.tsv")
      ->required();
  cmd->add_option("--out", flags->out, "Output directory")->required();
  cmd->add_option("--seed", o.seed, "Random seed")->capture_default_str();
  cmd->add_option("--exposure-term", o.exposure_term,
                  "e(x, z) added to log p(O=1) in stage 2: none, dot "
                  "(x_u . z_i) or item (z_i along a random direction)")
      ->capture_default_str();
  cmd->add_option("--exposure-strength", o.exposure_strength,
                  "gamma: e(x, z) is gamma times the standardised term")
      ->capture_default_str();
  cmd->add_option("--relevance-noise", o.relevance_noise, "std of eps1")
      ->capture_default_str();
  cmd->add_option("--exposure-noise", o.exposure_noise, "std of eps2")
      ->capture_default_str();
  cmd->add_option("--dim", o.dim, "hidden factors of the fitted models")
      ->capture_default_str();
  cmd->add_option("--epochs", o.epochs, "SGD epochs per fitted model")
      ->capture_default_str();
  cmd->add_option("--list-size", o.list_size, "items per generated row")
      ->capture_default_str();
  cmd->callback([flags] {
    const Status st = RunSimulate(*flags);
    if (!st.ok()) {
      std::fprintf(stderr, "cfrec simulate: %s\n", st.ToString().c_str());
      throw CLI::RuntimeError(1);
    }
  });
}

}  // namespace cfrec::app
