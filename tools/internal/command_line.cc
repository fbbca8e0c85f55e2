#include "tools/internal/command_line.h"

#include <cstdio>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace saelab {
namespace {

constexpr char kUsagePayload[] = "saelab.usage";

const char* TypeWord(FlagType type) {
  switch (type) {
    case FlagType::kString:
      return "a string";
    case FlagType::kInt:
      return "an integer";
    case FlagType::kDouble:
      return "a number";
    case FlagType::kBool:
      return "true or false";
  }
  return "";
}

// Checks that `text` is a value of `type` and returns it normalised.
bool ValidValue(FlagType type, const std::string& text, std::string* out) {
  switch (type) {
    case FlagType::kString:
      *out = text;
      return true;
    case FlagType::kInt: {
      int64_t v;
      *out = text;
      return absl::SimpleAtoi(text, &v);
    }
    case FlagType::kDouble: {
      double v;
      *out = text;
      return absl::SimpleAtod(text, &v);
    }
    case FlagType::kBool: {
      bool v;
      if (!absl::SimpleAtob(text, &v)) return false;
      *out = v ? "true" : "false";
      return true;
    }
  }
  return false;
}

}  // namespace

absl::Status UsageError(const std::string& message) {
  absl::Status status = absl::InvalidArgumentError(message);
  status.SetPayload(kUsagePayload, absl::Cord("1"));
  return status;
}

bool IsUsageError(const absl::Status& status) {
  return status.GetPayload(kUsagePayload).has_value();
}

CommandLine::CommandLine(std::vector<FlagSpec> specs) : specs_(std::move(specs)) {
  for (const FlagSpec& spec : specs_) {
    std::string value;
    if (!spec.default_value.empty() && !ValidValue(spec.type, spec.default_value, &value)) {
      std::fprintf(stderr, "internal error: flag --%s has default '%s', not %s\n",
                   spec.name.c_str(), spec.default_value.c_str(), TypeWord(spec.type));
      std::abort();
    }
    values_[spec.name] = spec.default_value.empty() && spec.type == FlagType::kBool
                             ? "false"
                             : (spec.default_value.empty() ? "" : value);
  }
}

absl::Status CommandLine::Parse(const std::vector<std::string>& args) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      positional_.insert(positional_.end(), args.begin() + i + 1, args.end());
      break;
    }
    if (!absl::StartsWith(arg, "-") || arg == "-") {
      positional_.push_back(std::string(arg));
      continue;
    }
    absl::string_view body = arg;
    if (!absl::ConsumePrefix(&body, "--")) absl::ConsumePrefix(&body, "-");
    std::string name(body), value;
    bool has_value = false;
    if (const size_t eq = body.find('='); eq != absl::string_view::npos) {
      name = std::string(body.substr(0, eq));
      value = std::string(body.substr(eq + 1));
      has_value = true;
    }
    if (name == "help" || name == "h") {
      help_ = true;
      continue;
    }
    const FlagSpec* spec = nullptr;
    bool negated = false;
    for (const FlagSpec& s : specs_) {
      if (s.name == name) spec = &s;
    }
    if (spec == nullptr && absl::StartsWith(name, "no") && !has_value) {
      for (const FlagSpec& s : specs_) {
        if (s.type == FlagType::kBool && s.name == name.substr(2)) spec = &s, negated = true;
      }
    }
    if (spec == nullptr) return UsageError(absl::StrCat("unknown flag --", name));
    if (given_.count(spec->name)) {
      return UsageError(absl::StrCat("flag --", spec->name, " given twice"));
    }
    if (!has_value) {
      if (spec->type == FlagType::kBool) {
        value = negated ? "false" : "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return UsageError(absl::StrCat("flag --", spec->name, " needs a value"));
      }
    }
    std::string normalised;
    if (!ValidValue(spec->type, value, &normalised)) {
      return UsageError(absl::StrCat("flag --", spec->name, "='", value, "' is not ",
                                     TypeWord(spec->type)));
    }
    values_[spec->name] = normalised;
    given_[spec->name] = true;
  }
  return absl::OkStatus();
}

const FlagSpec& CommandLine::Spec(const std::string& name, FlagType type) const {
  for (const FlagSpec& spec : specs_) {
    if (spec.name == name && spec.type == type) return spec;
  }
  std::fprintf(stderr, "internal error: no flag --%s of type %s\n", name.c_str(), TypeWord(type));
  std::abort();
}

const std::string& CommandLine::String(const std::string& name) const {
  Spec(name, FlagType::kString);
  return values_.at(name);
}

int64_t CommandLine::Int(const std::string& name) const {
  Spec(name, FlagType::kInt);
  int64_t v = 0;
  (void)absl::SimpleAtoi(values_.at(name), &v);  // validated by Parse or the constructor
  return v;
}

double CommandLine::Double(const std::string& name) const {
  Spec(name, FlagType::kDouble);
  double v = 0;
  (void)absl::SimpleAtod(values_.at(name), &v);
  return v;
}

bool CommandLine::Bool(const std::string& name) const {
  Spec(name, FlagType::kBool);
  return values_.at(name) == "true";
}

absl::Status CommandLine::Require(const std::string& name) const {
  if (String(name).empty()) return UsageError(absl::StrCat("--", name, " is required"));
  return absl::OkStatus();
}

std::string CommandLine::FlagHelp() const {
  std::string out;
  for (const FlagSpec& spec : specs_) {
    absl::StrAppend(&out, "  --", spec.name);
    if (spec.type != FlagType::kBool) {
      absl::StrAppend(&out, "=", spec.type == FlagType::kString ? "TEXT"
                                 : spec.type == FlagType::kInt  ? "N"
                                                                : "X");
    }
    if (!spec.default_value.empty()) absl::StrAppend(&out, "  (default ", spec.default_value, ")");
    absl::StrAppend(&out, "\n      ", spec.help, "\n");
  }
  return out;
}

}  // namespace saelab
