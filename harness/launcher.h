// Starts the workers of a one-machine data-parallel job, as
// `torchrun --standalone --nproc_per_node=N` does: the launcher serves the
// rendezvous store, and each worker gets torchrun's variables (RANK,
// WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
// TORCHELASTIC_USE_AGENT_STORE=True) for WorldSettingsFromEnvironment
// (harness/distributed.h).
//
//   LaunchOptions launch;
//   launch.nproc = 2;
//   launch.argv = {"/proc/self/exe", "--config=c.textproto"};
//   RETURN_IF_ERROR(LaunchLocalWorkers(launch));
#ifndef SAELAB_HARNESS_LAUNCHER_H_
#define SAELAB_HARNESS_LAUNCHER_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "harness/distributed.h"

namespace saelab {

struct LaunchOptions {
  int nproc = 2;
  // The worker's command line, argv[0] included.
  std::vector<std::string> argv;
  // The program to run; empty: argv[0] (a path, not looked up in PATH).
  std::string executable;
  // Extra NAME=VALUE settings for every worker (e.g. OPENBLAS_NUM_THREADS),
  // replacing an inherited value of the same NAME.
  std::vector<std::string> env;
  // After a worker fails, how long the others get to stop on SIGTERM
  // before SIGKILL.
  absl::Duration grace = absl::Seconds(10);
  // Where the output of ranks 1.. goes (rank 0's stays on this terminal):
  // <log_prefix><rank>.log. Empty: a file under $TMPDIR (or /tmp), removed
  // when its worker succeeds.
  std::string log_prefix;
};

// Runs the workers and waits for them. OK when every worker exits 0.
// The first worker to fail (exit status != 0, or a signal) stops the rest
// (SIGTERM, then SIGKILL after the grace period), and the error names its
// rank, how it ended, and where its output is; a worker that is killed
// therefore never leaves the others hanging in a collective.
// Errors: nproc < 1 or an empty argv (InvalidArgument); the store or a
// worker cannot be started (Internal); a worker failed (Aborted).
absl::Status LaunchLocalWorkers(const LaunchOptions& options);

// What a binary's main does with its --nproc flag:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, JoinJob(nproc));
//   if (comm == nullptr && nproc > 1) return LaunchSelf(nproc, argc, argv);
//   if (comm != nullptr) SetProcessCommunicator(comm.get());
//
// JoinJob: this process's communicator when the environment makes it a
// worker (torchrun's or Slurm's variables, or LaunchSelf's), else null.
// Errors: bad or inconsistent variables, or an nproc > 1 that differs from
// the environment's world size (InvalidArgument, before any work); no
// rendezvous (Unavailable).
absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(int nproc);
// Runs this binary (/proc/self/exe) with the same arguments as nproc local
// workers (LaunchLocalWorkers), giving each cores / nproc OpenBLAS threads
// unless OPENBLAS_NUM_THREADS is set.
absl::Status LaunchSelf(int nproc, int argc, char** argv);

}  // namespace saelab

#endif  // SAELAB_HARNESS_LAUNCHER_H_
