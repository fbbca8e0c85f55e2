// Run directories: where one experiment run writes its as-run config, its
// result and its checkpoints.
//
// The default is results/runs/<experiment>/<UTC time>-<config hash prefix>/
// under the workspace (git-ignored); --run_dir overrides it. Pointing
// --run_dir at an existing run resumes it, but only if its as-run config has
// the same hash: a run directory never mixes two configs.
//
//   ASSIGN_OR_RETURN(RunDir run, OpenRunDir(absl::GetFlag(FLAGS_run_dir),
//                                           config.name(), config_text, hash));
//   ... run.path + "/result.pb" ...
#ifndef SAELAB_HARNESS_RUN_DIR_H_
#define SAELAB_HARNESS_RUN_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "harness/dir_lock.h"

namespace saelab {

struct RunDir {
  // Absolute or workspace-relative directory path, no trailing slash.
  std::string path;
  // True if the directory already held this config (a resumed run).
  bool resumed = false;
  // Held while any copy of the RunDir lives: a second process opening the
  // same directory is refused (harness/dir_lock.h).
  std::shared_ptr<DirectoryLock> lock;
};

// The directory runs go under by default: $BUILD_WORKSPACE_DIRECTORY/results/runs
// under `bazel run`, ./results/runs otherwise.
std::string DefaultRunsRoot();

// Creates (or reopens, see above) the run directory and writes
// config.textproto (the as-run config) into it, holding its lock.
// `requested` empty means the default location. FailedPrecondition if
// `requested` holds a run of a different config, or another process has it
// open.
absl::StatusOr<RunDir> OpenRunDir(const std::string& requested, const std::string& experiment_name,
                                  const std::string& as_run_config_text,
                                  const std::string& config_sha256);

}  // namespace saelab

#endif  // SAELAB_HARNESS_RUN_DIR_H_
