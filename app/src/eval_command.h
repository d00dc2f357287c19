// `cfrec eval`: runs one ranker under one evaluation protocol on a
// MIND-format log and prints one JSON line.
#ifndef CFREC_APP_EVAL_COMMAND_H_
#define CFREC_APP_EVAL_COMMAND_H_

namespace CLI {
class App;
}  // namespace CLI

namespace cfrec::app {

// Adds the `eval` subcommand to `app` (not owned; must outlive parsing).
// Rankers come from cfrec::eval::DefaultRegistry(); neural rankers answer
// "not available yet" until the learner registers them there. On failure
// the callback prints the error and throws CLI::RuntimeError (exit code 2
// for an unavailable ranker, 1 otherwise).
void AddEvalCommand(CLI::App& app);

}  // namespace cfrec::app

#endif  // CFREC_APP_EVAL_COMMAND_H_
