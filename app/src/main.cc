// cfrec: a streaming online-learning recommendation service.
#include <CLI/CLI.hpp>

#include <malloc.h>
#include <sys/resource.h>

#include "bench_train_command.h"
#include "commands.h"
#include "eval_command.h"
#include "synth_command.h"

namespace cfrec::app {

double PeakRssMb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // KiB on Linux
}

// LibTorch allocates and frees tensors of a few megabytes at every training
// step (LightGCN's propagation: 4.7 MB per layer and direction on the CPR
// linear data). With glibc's defaults many of them became fresh mmaps, and
// the kernel's page faults (mapping and zeroing those pages, then unmapping
// them) were 60% of a LightGCN run: 32 s of system time in 54 s. Blocks below
// 32 MiB (the largest threshold glibc accepts) now come from the heap, and the
// heap keeps up to 256 MiB of free memory at its top. Only speed changes: the
// same run gives the same metrics.
void TuneMalloc() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

}  // namespace cfrec::app

int main(int argc, char** argv) {
  cfrec::app::TuneMalloc();
  CLI::App app{
      "cfrec: consumes impression and click events from Kafka, stores them in "
      "RocksDB, learns a recommender online (with counterfactual samples) "
      "and answers top-N queries over HTTP."};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  cfrec::app::ExitCode exit_code;
  cfrec::app::AddServeCommand(app, &exit_code);
  cfrec::app::AddReplayCommand(app, &exit_code);
  cfrec::app::AddSynthCommand(app);
  cfrec::app::AddSimulateCommand(app);
  cfrec::app::AddEvalCommand(app);
  auto* bench = app.add_subcommand(
      "bench", "Benchmarks; each prints one JSON line on stdout");
  bench->require_subcommand(1);
  cfrec::app::AddBenchIngestCommand(*bench, &exit_code);
  cfrec::app::AddBenchTrainCommand(*bench, &exit_code);
  CLI11_PARSE(app, argc, argv);
  return exit_code.value;
}
