#include "bench_train_command.h"

#include <cstdio>
#include <memory>
#include <string>

#include "cfrec/learner/bench_train.h"

namespace cfrec::app {
namespace {

void Register(CLI::App& bench, ExitCode* exit_code) {
  auto options = std::make_shared<learner::BenchTrainOptions>();
  CLI::App* cmd = bench.add_subcommand(
      "train", "Ranker training samples/s (BPR-MF, NeuMF) on generated clicks");
  cmd->add_option("--users", options->users, "Users in the id space")
      ->capture_default_str();
  cmd->add_option("--items", options->items, "Items in the id space")
      ->capture_default_str();
  cmd->add_option("--batch", options->batch_size, "Samples per step")
      ->capture_default_str();
  cmd->add_option("--dim", options->dim, "Embedding size")
      ->capture_default_str();
  cmd->add_option("--rankers", options->rankers,
                  "Rankers to measure (bpr gmf mlp neumf lightgcn)")
      ->capture_default_str();
  cmd->add_option("--seconds", options->seconds, "Measured seconds per ranker")
      ->capture_default_str();
  cmd->add_option("--threads", options->threads,
                  "Training threads: the fused kernel's train_threads and "
                  "LibTorch's intra-op threads")
      ->capture_default_str();
  cmd->add_flag("--pipeline", options->pipeline,
                "Pipelined rounds (train_pipeline): the next round is "
                "prepared while a thread of the learner trains the round "
                "before (one thread more than --threads); the whole loop is "
                "timed, generating the events included");
  cmd->add_option("--kernel", options->kernel,
                  "Training kernel: fused (BPR-MF, GMF and the SEMs without "
                  "autograd) or torch (LibTorch autograd)")
      ->check(CLI::IsMember({"fused", "torch"}))
      ->capture_default_str();
  cmd->add_option("--mlp-matmul", options->mlp_matmul,
                  "MLP tower products: own (dense_kernels.cc) or blas "
                  "(LibTorch's addmm, the system BLAS)")
      ->check(CLI::IsMember({"own", "blas"}))
      ->capture_default_str();
  cmd->add_option("--seed", options->seed, "Seed of data and models")
      ->capture_default_str();
  cmd->add_flag("--sems", options->sems,
                "Also measure the SEMs p_R and p_S (and the posteriors) on "
                "generated lists with one click each");
  cmd->add_option("--sem-list-length", options->sem_list_length,
                  "Items per generated list for --sems (2 or more)")
      ->capture_default_str();
  cmd->callback([options, exit_code] {
    auto result = learner::RunBenchTrain(*options);
    if (!result.ok()) {
      std::fprintf(stderr, "bench train: %s\n",
                   result.status().ToString().c_str());
      if (exit_code == nullptr) throw CLI::RuntimeError(1);
      exit_code->value = 1;
      return;
    }
    std::printf("%s\n", learner::BenchTrainResultToJson(*result).c_str());
    std::fflush(stdout);
    if (exit_code != nullptr) exit_code->value = 0;
  });
}

}  // namespace

void AddBenchTrainCommand(CLI::App& bench) { Register(bench, nullptr); }

void AddBenchTrainCommand(CLI::App& bench, ExitCode* exit_code) {
  Register(bench, exit_code);
}

}  // namespace cfrec::app
