// The experiment runner shared by every experiment target: loads the
// textproto config, fills in defaults, opens (or resumes) the run directory,
// collects provenance, dispatches on the config's `experiment` oneof, and
// writes result.pb + result.textproto (atomically) and the plot.
//
//   bazel run //experiments:synthetic_recovery -- --run_dir=/tmp/run1
#ifndef SAELAB_EXPERIMENTS_RUNNER_H_
#define SAELAB_EXPERIMENTS_RUNNER_H_

#include <string>

#include "absl/status/statusor.h"
#include "harness/result.pb.h"

namespace saelab {

struct RunnerOptions {
  // Path of the ExperimentConfig textproto.
  std::string config_path;
  // Run directory; empty means results/runs/<name>/<time>-<hash>.
  std::string run_dir;
  // Draw the plot (if the experiment has one and its config asks for it).
  bool plot = true;
  // Replaces subject_sae.activations.model_dir before the config is hashed
  // and recorded (the *_paper configs take the user's GPT-2 directory so).
  // InvalidArgument for an experiment without a subject model.
  std::string model_dir;
  // argv, recorded in provenance; argv[0] also locates runfiles.
  int argc = 0;
  char** argv = nullptr;
};

struct RunnerOutcome {
  std::string run_dir;
  ExperimentResult result;
};

absl::StatusOr<RunnerOutcome> RunExperiment(const RunnerOptions& options);

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_RUNNER_H_
