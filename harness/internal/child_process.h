// What the tests that run saelab's binaries as child processes share:
// finding a binary in the test's runfiles, running a shell command with
// its output captured, and starting a process to wait for (or kill) with
// a time limit.
//
//   CommandResult run = RunCommand(absl::StrCat(Runfile("tools/saelab"), " train --out=", dir));
//   EXPECT_EQ(run.exit_code, 0) << run.err;
//
//   const pid_t worker = StartProcess({Runfile("experiments/frontier"), "--run_dir=" + dir}, log);
//   EXPECT_EQ(WaitProcess(worker, absl::Seconds(120)), 0) << ReadFile(log).value_or("");
#ifndef SAELAB_HARNESS_INTERNAL_CHILD_PROCESS_H_
#define SAELAB_HARNESS_INTERNAL_CHILD_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "absl/time/time.h"

namespace saelab {

// $TEST_SRCDIR/$TEST_WORKSPACE/path: a file or binary of the test's
// runfiles, by its path in the repository.
std::string Runfile(const std::string& path);

struct CommandResult {
  // The exit status; -1 if the command did not exit by itself.
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs `command` with /bin/sh and waits for it; stdout and stderr are
// captured (stderr through a file in the test's temporary directory).
CommandResult RunCommand(const std::string& command);

// Starts argv[0] (a path) with argv, stdout and stderr to `log` (appended
// to when `append`, else truncated), in this process's environment plus
// the NAME=VALUE settings of env_extra. Returns the pid, or -1 (with a test
// failure) if it could not be started.
pid_t StartProcess(const std::vector<std::string>& argv, const std::string& log,
                   const std::vector<std::string>& env_extra = {}, bool append = false);

// How `pid` ended: its exit status, or 128 + the signal that ended it; -1
// if it was still running after `limit` (it is then SIGKILLed and reaped).
// Polls every 2 ms, so a kill lands within a few ms of the limit.
int WaitProcess(pid_t pid, absl::Duration limit);

}  // namespace saelab

#endif  // SAELAB_HARNESS_INTERNAL_CHILD_PROCESS_H_
