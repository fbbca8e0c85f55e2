#include "harness/run_dir.h"

#include <cstdlib>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {

std::string DefaultRunsRoot() {
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  std::string root = workspace != nullptr ? workspace : ".";
  return root + "/results/runs";
}

absl::StatusOr<RunDir> OpenRunDir(const std::string& requested, const std::string& experiment_name,
                                  const std::string& as_run_config_text,
                                  const std::string& config_sha256) {
  RunDir run;
  run.path = requested;
  if (run.path.empty()) {
    std::string stamp = absl::FormatTime("%Y%m%d-%H%M%S", absl::Now(), absl::UTCTimeZone());
    run.path = absl::StrCat(DefaultRunsRoot(), "/", experiment_name, "/", stamp, "-",
                            config_sha256.substr(0, 8));
  }
  while (run.path.size() > 1 && run.path.back() == '/') run.path.pop_back();
  ASSIGN_OR_RETURN(DirectoryLock lock, DirectoryLock::Acquire(run.path));
  run.lock = std::make_shared<DirectoryLock>(std::move(lock));
  std::string config_path = run.path + "/config.textproto";
  if (PathExists(config_path)) {
    ASSIGN_OR_RETURN(std::string existing, ReadFile(config_path));
    // The as-run text is canonical (printed from the filled-in proto), so
    // equal configs give equal text.
    if (Sha256Hex(existing) != Sha256Hex(as_run_config_text)) {
      return absl::FailedPreconditionError(absl::StrCat(
          run.path, " holds a run of a different config (", config_path,
          " differs from this run's config); choose another --run_dir"));
    }
    run.resumed = true;
    return run;
  }
  RETURN_IF_ERROR(MakeDirs(run.path));
  RETURN_IF_ERROR(AtomicWriteFile(config_path, as_run_config_text));
  return run;
}

}  // namespace saelab
