// cfrec bench train: ranker training throughput (samples/s) for BPR-MF and
// NeuMF at batch 2048 on generated clicks, plus peak memory; one JSON line.
#ifndef CFREC_APP_BENCH_TRAIN_COMMAND_H_
#define CFREC_APP_BENCH_TRAIN_COMMAND_H_

#include <CLI/CLI.hpp>

#include "commands.h"

namespace cfrec::app {

// Registers `train` under `bench`. On failure the callback prints the error
// to stderr and throws CLI::RuntimeError(1).
void AddBenchTrainCommand(CLI::App& bench);
// The same, reporting the exit code through `exit_code` like the other
// commands instead of throwing.
void AddBenchTrainCommand(CLI::App& bench, ExitCode* exit_code);

}  // namespace cfrec::app

#endif  // CFREC_APP_BENCH_TRAIN_COMMAND_H_
