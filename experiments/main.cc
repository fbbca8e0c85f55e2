// Entry point of every experiment target:
//
//   ./bazelw run //experiments:synthetic_recovery
//   ./bazelw run //experiments:synthetic_recovery -- --run_dir=/tmp/r --noplot
//   ./bazelw run //experiments:frontier_paper -- --model_dir=/data/gpt2
//   bazel-bin/experiments/synthetic_recovery --config=my.textproto
//
// The BUILD target passes the experiment's textproto as --config.
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "experiments/runner.h"
#include "experiments/summary.h"
#include "harness/runtime_env.h"
#include "harness/train_state.h"

ABSL_FLAG(std::string, config, "", "Path of the ExperimentConfig textproto to run.");
ABSL_FLAG(std::string, run_dir, "",
          "Run directory; an existing one with the same config is resumed. "
          "Default: results/runs/<name>/<UTC time>-<config hash>.");
ABSL_FLAG(bool, plot, true, "Draw the experiment's plot into the run directory.");
ABSL_FLAG(std::string, model_dir, "",
          "Subject model directory (HF GPT-2 layout) replacing the config's "
          "subject_sae.activations.model_dir, e.g. your GPT-2 for the *_paper configs.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for LibTorch (0: its default, which is 1 on some machines; "
          "provenance records the count used).");
ABSL_FLAG(bool, recover_train_state, false,
          "Set a corrupted train state aside (kept as <file>.corrupt) and resume from the "
          "previous checkpoint, or from the start, instead of stopping with an error.");

int main(int argc, char** argv) {
  saelab::PinRuntimeEnvironment(argv);
  absl::SetProgramUsageMessage("Runs one saelab experiment from its textproto config.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  saelab::SetRecoverCorruptTrainState(absl::GetFlag(FLAGS_recover_train_state));
  saelab::RunnerOptions options;
  options.config_path = absl::GetFlag(FLAGS_config);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  options.plot = absl::GetFlag(FLAGS_plot);
  options.model_dir = absl::GetFlag(FLAGS_model_dir);
  options.argc = argc;
  options.argv = argv;
  if (options.config_path.empty()) {
    std::fprintf(stderr, "error: --config is required\n");
    return 2;
  }
  absl::StatusOr<saelab::RunnerOutcome> outcome = saelab::RunExperiment(options);
  if (!outcome.ok()) {
    std::fprintf(stderr, "error: %s\n", outcome.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "\n%s\n", saelab::FormatSummaryTable(outcome->result).c_str());
  const std::string claims = saelab::FormatClaims(outcome->result);
  if (!claims.empty()) std::fprintf(stderr, "%s\n", claims.c_str());
  std::fprintf(stderr, "results: %s/result.textproto\n", outcome->run_dir.c_str());
  for (const saelab::SaeResult& sae : outcome->result.saes()) {
    if (sae.has_dashboard()) {
      std::fprintf(stderr, "dashboards: %s/dashboards/index.html\n", outcome->run_dir.c_str());
      break;
    }
  }
  return 0;
}
