#include "experiments/registry.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace saelab {
namespace {

// Function-local so registration from static initialisers in any
// translation unit finds it constructed.
std::map<std::string, ExperimentEntry>& Registry() {
  static auto* registry = new std::map<std::string, ExperimentEntry>();
  return *registry;
}

const google::protobuf::OneofDescriptor* ExperimentOneof() {
  return ExperimentConfig::descriptor()->FindOneofByName("experiment");
}

[[noreturn]] void Die(const std::string& message) {
  std::fprintf(stderr, "experiment registry: %s\n", message.c_str());
  std::abort();
}

}  // namespace

void RegisterExperiment(ExperimentEntry entry) {
  const google::protobuf::FieldDescriptor* field =
      ExperimentConfig::descriptor()->FindFieldByName(entry.name);
  if (field == nullptr || field->containing_oneof() != ExperimentOneof()) {
    Die(absl::StrCat("'", entry.name, "' is not a field of ExperimentConfig's experiment oneof"));
  }
  const std::string name = entry.name;
  if (!Registry().emplace(name, std::move(entry)).second) {
    Die(absl::StrCat("'", name, "' is registered twice"));
  }
}

std::vector<const ExperimentEntry*> RegisteredExperiments() {
  std::vector<const ExperimentEntry*> entries;
  for (const auto& [name, entry] : Registry()) entries.push_back(&entry);
  return entries;
}

absl::StatusOr<const ExperimentEntry*> FindExperiment(const ExperimentConfig& config) {
  const google::protobuf::FieldDescriptor* field =
      config.GetReflection()->GetOneofFieldDescriptor(config, ExperimentOneof());
  std::vector<std::string> names;
  for (const ExperimentEntry* entry : RegisteredExperiments()) names.push_back(entry->name);
  if (field == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("no experiment set; one of: ", absl::StrJoin(names, ", "),
                     " (e.g. synthetic_recovery { ... })"));
  }
  auto it = Registry().find(field->name());
  if (it == Registry().end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("experiment '", field->name(),
                     "' is not linked into this binary; registered: ", absl::StrJoin(names, ", ")));
  }
  return &it->second;
}

const google::protobuf::Message& ExperimentMessage(const ExperimentConfig& config) {
  const google::protobuf::FieldDescriptor* field =
      config.GetReflection()->GetOneofFieldDescriptor(config, ExperimentOneof());
  return config.GetReflection()->GetMessage(config, field);
}

namespace internal {

void CheckExperimentFieldType(const char* name, const google::protobuf::Descriptor* type) {
  const google::protobuf::FieldDescriptor* field =
      ExperimentConfig::descriptor()->FindFieldByName(name);
  if (field == nullptr || field->message_type() != type) {
    Die(absl::StrCat("experiment '", name, "' is registered with config type ", type->full_name(),
                     " but the oneof field holds ",
                     field == nullptr || field->message_type() == nullptr
                         ? std::string("nothing")
                         : field->message_type()->full_name()));
  }
}

}  // namespace internal
}  // namespace saelab
