// saelab: the command line. One binary, git-style subcommands:
//
//   saelab <command> [flags]        saelab --help        saelab <command> --help
//
// Exit status: 0 success, 1 bad input data or a failed computation, 2 a
// usage error (unknown command or flag, missing or malformed flag value).
// Errors are one line on stderr, naming the file at fault.
#include <ATen/Parallel.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/distributed.h"
#include "harness/launcher.h"
#include "harness/runtime_env.h"
#include "tools/command.h"
#include "tools/internal/command_line.h"

namespace saelab {
namespace {

std::string MainUsage(const std::vector<Command>& commands) {
  std::string out =
      "usage: saelab <command> [flags]\n"
      "\n"
      "Sparse autoencoders on language-model activations, from the command line.\n"
      "\n"
      "commands:\n";
  for (const Command& c : commands) {
    absl::StrAppend(&out, "  ", c.name, std::string(12 - c.name.size(), ' '), c.summary, "\n");
  }
  absl::StrAppend(&out,
                  "\n"
                  "Run `saelab <command> --help` for a command's flags and an example.\n"
                  "Example, train on your activations and load the result in SAELens:\n"
                  "  saelab train --activations=acts.npy --architecture=topk --k=32 "
                  "--n_latents=16384 --out=my_sae\n"
                  "  # Python: sae_lens.SAE.load_from_disk(\"my_sae/saelens\")\n"
                  "\n"
                  "Exit status: 0 done, 1 bad data or a failed run, 2 usage error.\n");
  return out;
}

int Main(int argc, char** argv) {
  const std::vector<Command> commands = AllCommands();
  if (argc < 2) {
    std::fputs(MainUsage(commands).c_str(), stderr);
    return 2;
  }
  const std::string name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    std::fputs(MainUsage(commands).c_str(), stdout);
    return 0;
  }
  const Command* command = nullptr;
  for (const Command& c : commands) {
    if (c.name == name) command = &c;
  }
  if (command == nullptr) {
    std::fprintf(stderr, "saelab: unknown command '%s' (run saelab --help for the list)\n",
                 name.c_str());
    return 2;
  }
  std::vector<FlagSpec> flags = command->flags;
  flags.push_back({"threads", FlagType::kInt, "0",
                   "Intra-op threads for LibTorch (0: every CPU this process may use, or "
                   "OMP_NUM_THREADS; provenance records the count used). SAE training "
                   "gives the same bits on any count."});
  flags.push_back({"nproc", FlagType::kInt, "1",
                   "train only: train data-parallel over this many local worker processes "
                   "(like torchrun --nproc_per_node; under torchrun or Slurm leave it at 1)."});
  CommandLine line(flags);
  absl::Status status = line.Parse(std::vector<std::string>(argv + 2, argv + argc));
  if (line.help()) {
    std::printf("usage: %s\n\nflags:\n%s", command->usage.c_str(), line.FlagHelp().c_str());
    return 0;
  }
  if (status.ok() && !line.positional().empty()) {
    status = UsageError(absl::StrCat("unexpected argument '", line.positional()[0],
                                     "' (every input is a --flag)"));
  }
  if (status.ok()) {
    // Pinned only now, so that help and usage errors skip the re-execution
    // (a second LibTorch load, about a second).
    PinRuntimeEnvironment(argv);
    if (line.Int("threads") > 0) at::set_num_threads(static_cast<int>(line.Int("threads")));
    const int nproc = static_cast<int>(line.Int("nproc"));
    absl::StatusOr<std::unique_ptr<Communicator>> comm;
    if (nproc != 1 && name != "train") {
      status = UsageError("--nproc is for `saelab train`; the other commands run in one process");
    } else {
      comm = JoinJob(nproc);
      status = comm.status();
    }
    if (status.ok() && *comm == nullptr && nproc > 1) {
      status = LaunchSelf(nproc, argc, argv);
    } else if (status.ok()) {
      SetProcessCommunicator(comm->get());
      status = command->run(line, Invocation{argc, argv});
      SetProcessCommunicator(nullptr);
    }
  }
  if (!status.ok()) {
    const bool usage = IsUsageError(status);
    std::fprintf(stderr, "saelab %s: error: %s%s\n", name.c_str(),
                 std::string(status.message()).c_str(),
                 usage ? absl::StrCat(" (see saelab ", name, " --help)").c_str() : "");
    return usage ? 2 : 1;
  }
  return 0;
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) { return saelab::Main(argc, argv); }
