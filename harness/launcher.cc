#include "harness/launcher.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <thread>

#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "harness/file_io.h"
#include "harness/runtime_env.h"
#include "harness/status_macros.h"

extern char** environ;

namespace saelab {
namespace {

// The variables a worker must not inherit from the launcher's own
// environment (an outer torchrun or Slurm job step would otherwise leak in).
bool IsWorldVariable(const std::string& entry) {
  static const char* const kNames[] = {
      "RANK=",        "WORLD_SIZE=",    "LOCAL_RANK=",    "LOCAL_WORLD_SIZE=",
      "MASTER_ADDR=", "MASTER_PORT=",   "SLURM_PROCID=",  "SLURM_NTASKS=",
      "SLURM_LOCALID=", "TORCHELASTIC_USE_AGENT_STORE="};
  for (const char* name : kNames) {
    if (entry.rfind(name, 0) == 0) return true;
  }
  return false;
}

std::string DescribeExit(int status) {
  if (WIFEXITED(status)) return absl::StrCat("exited with status ", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status), " (",
                        strsignal(WTERMSIG(status)), ")");
  }
  return absl::StrCat("ended with wait status ", status);
}

// The last `lines` lines of a file, for an error message.
std::string Tail(const std::string& path, int lines) {
  std::ifstream in(path);
  std::vector<std::string> all;
  for (std::string line; std::getline(in, line);) all.push_back(line);
  const size_t from = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  return absl::StrJoin(all.begin() + from, all.end(), "\n");
}

}  // namespace

absl::Status LaunchLocalWorkers(const LaunchOptions& options) {
  if (options.nproc < 1 || options.argv.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LaunchLocalWorkers: need nproc >= 1 and a command (nproc ", options.nproc, ")"));
  }
  // The rendezvous store, served here for the workers' lifetime; port 0
  // lets the kernel pick a free one, so two jobs never collide.
  c10::intrusive_ptr<c10d::TCPStore> store;
  try {
    c10d::TCPStoreOptions store_options;
    store_options.port = 0;
    store_options.isServer = true;
    store_options.waitWorkers = false;
    store = c10::make_intrusive<c10d::TCPStore>("127.0.0.1", store_options);
  } catch (const std::exception& e) {
    return absl::InternalError(absl::StrCat("cannot serve the rendezvous store: ", e.what()));
  }
  const int port = store->getPort();
  std::string log_prefix = options.log_prefix;
  if (log_prefix.empty()) {
    log_prefix = absl::StrCat(TempDirectory(), "/saelab-", getpid(), "-rank");
  }

  std::vector<pid_t> pids(options.nproc, -1);
  auto stop_all = [&](absl::Duration grace) {
    for (pid_t pid : pids) {
      if (pid > 0) kill(pid, SIGTERM);
    }
    const absl::Time deadline = absl::Now() + grace;
    bool any = true;
    while (any && absl::Now() < deadline) {
      any = false;
      for (pid_t& pid : pids) {
        if (pid > 0 && waitpid(pid, nullptr, WNOHANG) == pid) pid = -1;
        any = any || pid > 0;
      }
      if (any) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    for (pid_t& pid : pids) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        pid = -1;
      }
    }
  };

  std::vector<char*> argv;
  for (const std::string& arg : options.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  const char* program = options.executable.empty() ? argv[0] : options.executable.c_str();
  for (int rank = 0; rank < options.nproc; ++rank) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) {
      // An extra setting replaces the inherited one (getenv takes the first).
      const absl::string_view entry(*e);
      const bool replaced = std::any_of(
          options.env.begin(), options.env.end(), [&](const std::string& extra) {
            return absl::StartsWith(entry, extra.substr(0, extra.find('=') + 1));
          });
      if (!IsWorldVariable(*e) && !replaced) env_strings.push_back(*e);
    }
    env_strings.push_back(absl::StrCat("RANK=", rank));
    env_strings.push_back(absl::StrCat("LOCAL_RANK=", rank));
    env_strings.push_back(absl::StrCat("WORLD_SIZE=", options.nproc));
    env_strings.push_back(absl::StrCat("LOCAL_WORLD_SIZE=", options.nproc));
    env_strings.push_back("MASTER_ADDR=127.0.0.1");
    env_strings.push_back(absl::StrCat("MASTER_PORT=", port));
    env_strings.push_back("TORCHELASTIC_USE_AGENT_STORE=True");
    for (const std::string& extra : options.env) env_strings.push_back(extra);
    std::vector<char*> env;
    for (std::string& s : env_strings) env.push_back(s.data());
    env.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (rank > 0) {
      const std::string log = absl::StrCat(log_prefix, rank, ".log");
      posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                       O_WRONLY | O_CREAT | O_TRUNC, 0644);
      posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
    }
    pid_t pid = -1;
    const int error = posix_spawn(&pid, program, &actions, nullptr, argv.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    if (error != 0) {
      stop_all(options.grace);
      return absl::InternalError(absl::StrCat("cannot start worker ", rank, " (", program,
                                              "): ", std::strerror(error)));
    }
    pids[rank] = pid;
  }

  int running = options.nproc;
  while (running > 0) {
    int status = 0;
    const pid_t pid = waitpid(-1, &status, 0);
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;
    }
    int rank = -1;
    for (int r = 0; r < options.nproc; ++r) {
      if (pids[r] == pid) rank = r;
    }
    if (rank < 0) continue;  // not ours
    pids[rank] = -1;
    --running;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      if (rank > 0 && options.log_prefix.empty()) {
        std::remove(absl::StrCat(log_prefix, rank, ".log").c_str());
      }
      continue;
    }
    // A worker killed by a signal takes its peers down with it (their
    // collectives fail); they may be reaped first. Name the one that died
    // of a signal, if any did on its own, as the cause.
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    for (int r = 0; r < options.nproc; ++r) {
      int other = 0;
      if (pids[r] > 0 && waitpid(pids[r], &other, WNOHANG) == pids[r]) {
        pids[r] = -1;
        if (WIFSIGNALED(other) && !WIFSIGNALED(status)) {
          rank = r;
          status = other;
        }
      }
    }
    stop_all(options.grace);
    const std::string log = absl::StrCat(log_prefix, rank, ".log");
    return absl::AbortedError(absl::StrCat(
        "worker ", rank, " of ", options.nproc, " ", DescribeExit(status),
        "; the other workers were stopped",
        rank == 0 ? std::string()
                  : absl::StrCat(". Its output (", log, ") ends:\n", Tail(log, 20))));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Communicator>> JoinJob(int nproc) {
  if (nproc < 1) {
    return absl::InvalidArgumentError(absl::StrCat("--nproc=", nproc, "; it must be at least 1"));
  }
  ASSIGN_OR_RETURN(std::optional<WorldSettings> world, WorldSettingsFromEnvironment());
  if (!world.has_value()) return std::unique_ptr<Communicator>();
  if (nproc > 1 && nproc != world->world_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--nproc=", nproc, ", but the environment says this is a worker of ", world->world_size,
        " (WORLD_SIZE or SLURM_NTASKS); drop --nproc under torchrun or Slurm"));
  }
  return Communicator::Connect(*world);
}

absl::Status LaunchSelf(int nproc, int argc, char** argv) {
  LaunchOptions launch;
  launch.nproc = nproc;
  launch.executable = "/proc/self/exe";
  launch.argv.assign(argv, argv + argc);
  // Each worker gets an equal share of the cores, for OpenBLAS and for
  // LibTorch's intra-op pool (PinRuntimeEnvironment keeps a value set).
  const int share = std::max(1, AvailableCpus() / nproc);
  if (std::getenv("OPENBLAS_NUM_THREADS") == nullptr) {
    launch.env.push_back(absl::StrCat("OPENBLAS_NUM_THREADS=", share));
  }
  if (std::getenv("OMP_NUM_THREADS") == nullptr || std::getenv(kThreadsFromCpus) != nullptr) {
    launch.env.push_back(absl::StrCat("OMP_NUM_THREADS=", share));
  }
  return LaunchLocalWorkers(launch);
}

}  // namespace saelab
