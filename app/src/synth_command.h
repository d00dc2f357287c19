// `cfrec synth`: writes a synthetic MIND-format log (CPR section 4.1.1,
// eq. 12, or the MIND-like stream) to a directory.
#ifndef CFREC_APP_SYNTH_COMMAND_H_
#define CFREC_APP_SYNTH_COMMAND_H_

namespace CLI {
class App;
}  // namespace CLI

namespace cfrec::app {

// Adds the `synth` subcommand to `app` (not owned; must outlive parsing).
// Its callback writes DIR/behaviors.tsv (+ DIR/ground_truth.json for the CPR
// generator), prints one JSON line describing the output, and throws
// CLI::RuntimeError(1) after printing the error on failure.
void AddSynthCommand(CLI::App& app);

}  // namespace cfrec::app

#endif  // CFREC_APP_SYNTH_COMMAND_H_
