// Flags of one `saelab` subcommand: a table of typed flags per command, so
// that `saelab train --help` lists train's flags only and a flag of another
// command is refused, which Abseil's process-global flags cannot do (they
// have no notion of subcommands: every command would accept, and list,
// every flag of every other).
//
//   CommandLine flags({
//       {"activations", FlagType::kString, "", "ACTS.npy to train on"},
//       {"k", FlagType::kInt, "32", "Active latents per token"},
//   });
//   RETURN_IF_ERROR(flags.Parse(args));          // {"--activations=a.npy", "--k", "64"}
//   int64_t k = flags.Int("k");
//
// Syntax, as Abseil's: --name=value, --name value, -name=value; booleans
// also as --name / --noname; "--" ends the flags; anything else is a
// positional argument.
#ifndef SAELAB_TOOLS_INTERNAL_COMMAND_LINE_H_
#define SAELAB_TOOLS_INTERNAL_COMMAND_LINE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace saelab {

enum class FlagType { kString, kInt, kDouble, kBool };

struct FlagSpec {
  std::string name;
  FlagType type = FlagType::kString;
  // The value when the flag is not given (as it would be typed; "" for none).
  std::string default_value;
  std::string help;
};

// A usage error (bad or missing flags, an unknown command): the binary exits
// with status 2 for these and 1 for everything else.
absl::Status UsageError(const std::string& message);
bool IsUsageError(const absl::Status& status);

class CommandLine {
 public:
  explicit CommandLine(std::vector<FlagSpec> specs);

  // Parses `args` (the words after the command name). A usage error naming
  // the flag for an unknown flag, a missing or unparsable value, or a flag
  // given twice. --help is always accepted and sets help().
  absl::Status Parse(const std::vector<std::string>& args);

  bool help() const { return help_; }
  const std::vector<std::string>& positional() const { return positional_; }
  // True if the flag was given on the command line.
  bool Given(const std::string& name) const { return given_.count(name) > 0; }
  // The flag's value (given or default). The name must be one of the specs
  // and of that type (a programming error otherwise: aborts).
  const std::string& String(const std::string& name) const;
  int64_t Int(const std::string& name) const;
  double Double(const std::string& name) const;
  bool Bool(const std::string& name) const;
  // A usage error unless the string flag is non-empty.
  absl::Status Require(const std::string& name) const;

  // The flag table as --help prints it: "  --name=VALUE (default: x)\n      help".
  std::string FlagHelp() const;

 private:
  const FlagSpec& Spec(const std::string& name, FlagType type) const;

  std::vector<FlagSpec> specs_;
  std::map<std::string, std::string> values_;  // textual, validated by Parse
  std::map<std::string, bool> given_;
  std::vector<std::string> positional_;
  bool help_ = false;
};

}  // namespace saelab

#endif  // SAELAB_TOOLS_INTERNAL_COMMAND_LINE_H_
