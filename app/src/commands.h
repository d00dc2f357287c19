// The subcommands of the cfrec binary. Each Add*Command registers itself on
// the CLI11 app; its callback runs the command and sets the exit code.
#ifndef CFREC_APP_COMMANDS_H_
#define CFREC_APP_COMMANDS_H_

#include <CLI/CLI.hpp>

namespace cfrec::app {

// Exit code of the command that ran (set by the command's callback).
struct ExitCode {
  int value = 0;
};

void AddServeCommand(CLI::App& app, ExitCode* exit_code);
void AddReplayCommand(CLI::App& app, ExitCode* exit_code);
void AddBenchIngestCommand(CLI::App& bench, ExitCode* exit_code);
// `cfrec simulate`: semi-synthetic logs (ACL appendix A.6.3).
void AddSimulateCommand(CLI::App& app);

// Peak resident set size of this process, in MiB.
double PeakRssMb();

}  // namespace cfrec::app

#endif  // CFREC_APP_COMMANDS_H_
