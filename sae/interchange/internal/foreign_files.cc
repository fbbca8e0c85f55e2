#include "sae/interchange/internal/foreign_files.h"

#include <map>
#include <torch/utils.h>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/status_macros.h"
#include "sae/factory.h"

namespace saelab {
namespace interchange_internal {
namespace {

using Json = nlohmann::json;

// The last component of a directory path ("a/b/" -> "b").
std::string LastPathComponent(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t slash = dir.rfind('/');
  std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
  return name.empty() ? "imported" : name;
}

// Copies `tensors` into the SAE's tensors of the same names; every one of
// the SAE's tensors must be given.
absl::Status AssignTensors(Sae& sae, const TensorMap& tensors) {
  torch::NoGradGuard no_grad;
  std::map<std::string, torch::Tensor> targets = sae.NamedTensors();
  for (auto& [name, target] : targets) {
    auto it = tensors.find(name);
    if (it == tensors.end()) {
      return absl::InternalError(
          absl::StrCat("import: no value for ", sae.architecture(), " tensor '", name, "'"));
    }
    if (it->second.sizes() != target.sizes()) {
      return absl::InternalError(absl::StrCat("import: ", sae.architecture(), " tensor '", name,
                                              "' is ", ShapeString(target.sizes()), ", value is ",
                                              ShapeString(it->second.sizes())));
    }
    target.copy_(it->second);
  }
  for (const auto& entry : tensors) {
    if (targets.count(entry.first) == 0) {
      return absl::InternalError(
          absl::StrCat("import: ", sae.architecture(), " has no tensor '", entry.first, "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

absl::StatusOr<Json> ReadJsonObject(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  ASSIGN_OR_RETURN(Json json, ParseJson(text, path));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return json;
}

absl::StatusOr<std::string> OptionalString(const Json& object, const std::string& path,
                                           const std::string& key, const std::string& fallback) {
  const Json* value = FindKey(object, key);
  if (value == nullptr || value->is_null()) return fallback;
  if (!value->is_string()) {
    return KeyError(path, key, absl::StrCat("must be a string, got ", value->dump()));
  }
  return value->get<std::string>();
}

absl::StatusOr<bool> OptionalBool(const Json& object, const std::string& path,
                                  const std::string& key, bool fallback) {
  const Json* value = FindKey(object, key);
  if (value == nullptr || value->is_null()) return fallback;
  if (!value->is_boolean()) {
    return KeyError(path, key, absl::StrCat("must be true or false, got ", value->dump()));
  }
  return value->get<bool>();
}

absl::StatusOr<torch::Tensor> FloatTensor(const SafetensorsContents& contents,
                                          const std::string& path, const std::string& name,
                                          const std::vector<int64_t>& shape,
                                          const std::string& origin) {
  auto it = contents.tensors.find(name);
  if (it == contents.tensors.end()) {
    std::vector<std::string> present;
    for (const auto& entry : contents.tensors) present.push_back(entry.first);
    return absl::NotFoundError(absl::StrCat(path, ": tensor '", name, "' is missing (the file has ",
                                            absl::StrJoin(present, ", "), ")"));
  }
  const torch::Tensor& tensor = it->second;
  if (tensor.sizes() != c10::IntArrayRef(shape)) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' has shape ",
                                                   ShapeString(tensor.sizes()), ", expected ",
                                                   ShapeString(shape), " (", origin, ")"));
  }
  if (!at::isFloatingType(tensor.scalar_type())) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' has dtype ",
                                                   c10::toString(tensor.scalar_type()),
                                                   ", expected a floating-point dtype"));
  }
  // Own copy: the SAE's parameters are copied from it, and float16/bfloat16
  // widen to float32 exactly.
  return tensor.to(torch::kFloat32).clone();
}

absl::Status CheckNoUnexpectedTensors(const SafetensorsContents& contents, const std::string& path,
                                      const std::set<std::string>& expected,
                                      const std::string& what) {
  for (const auto& [name, tensor] : contents.tensors) {
    if (expected.count(name) > 0) continue;
    // Refused like SAELens's strict load_state_dict, except its legacy
    // all-ones `scaling_factor`, which SAELens itself drops.
    if (name == "scaling_factor" && at::isFloatingType(tensor.scalar_type()) &&
        torch::all(tensor == 1).item<bool>()) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ": unexpected tensor '", name, "' (", what,
                                                   " has ", absl::StrJoin(expected, ", "), ")"));
  }
  return absl::OkStatus();
}

SaeConfig ForeignConfig(const std::string& dir, int64_t n) {
  SaeConfig config;
  config.set_name(LastPathComponent(dir));
  config.set_n_latents(n);
  config.set_normalize_input(false);
  return config;
}

absl::StatusOr<std::unique_ptr<Sae>> BuildSae(SaeConfig config, int64_t d_in,
                                              const std::string& config_origin,
                                              const TensorMap& tensors, SaeConfig* config_out) {
  absl::Status resolved = ResolveSaeConfig(d_in, &config);
  if (!resolved.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(config_origin, ": ", resolved.message()));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(config, d_in, /*seed=*/0));
  RETURN_IF_ERROR(AssignTensors(*sae, tensors));
  if (config_out != nullptr) *config_out = config;
  return sae;
}

}  // namespace interchange_internal
}  // namespace saelab
