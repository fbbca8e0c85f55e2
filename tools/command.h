// One `saelab` subcommand: its name, the line `saelab --help` shows, the
// usage with an example that `saelab <command> --help` shows, its flags,
// and what it runs. Each command lives in its own <name>_command.cc and is
// listed once, in AllCommands (command.cc).
//
//   Command TokenizeCommand() {
//     return {"tokenize", "Text to GPT-2 token ids, or back", kUsage, {...flags...}, &Run};
//   }
#ifndef SAELAB_TOOLS_COMMAND_H_
#define SAELAB_TOOLS_COMMAND_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "tools/internal/command_line.h"

namespace saelab {

// The process's command line, for provenance and for finding runfiles.
struct Invocation {
  int argc = 0;
  char** argv = nullptr;
};

struct Command {
  std::string name;
  // One line for `saelab --help`.
  std::string summary;
  // `saelab <name> --help`: the synopsis, what the command does, an example.
  std::string usage;
  std::vector<FlagSpec> flags;
  // Runs with the parsed flags. A UsageError (bad flag combination) exits
  // with status 2, any other error with 1; the error is one line on stderr.
  absl::Status (*run)(const CommandLine& flags, const Invocation& invocation) = nullptr;
};

// Every command, in the order `saelab --help` lists them.
std::vector<Command> AllCommands();

Command TokenizeCommand();
Command HarvestCommand();
Command TrainCommand();
Command EvaluateCommand();
Command ExportCommand();
Command ImportCommand();
Command InspectCommand();
Command GenerateCommand();
Command ServeCommand();

}  // namespace saelab

#endif  // SAELAB_TOOLS_COMMAND_H_
