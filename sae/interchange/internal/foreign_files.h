// What the SAELens and sparsify readers share: JSON and tensor reads whose
// errors name the file and the key or tensor, and building a saelab SAE
// from tensors read off foreign files.
//
//   ASSIGN_OR_RETURN(Json cfg, ReadJsonObject(dir + "/cfg.json"));
//   ASSIGN_OR_RETURN(tensors["W_dec"], FloatTensor(contents, path, "W_dec", {n, d_in}, origin));
//   SaeConfig config = ForeignConfig(dir, n);
//   config.mutable_topk()->set_k(k);
//   return BuildSae(config, d_in, config_path, tensors, config_out);
#ifndef SAELAB_SAE_INTERCHANGE_INTERNAL_FOREIGN_FILES_H_
#define SAELAB_SAE_INTERCHANGE_INTERNAL_FOREIGN_FILES_H_

#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/safetensors.h"
#include "nlohmann/json.hpp"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace interchange_internal {

// Both layouts keep their configuration in dir/cfg.json.
inline constexpr char kConfigFile[] = "cfg.json";

// "[8, 16]".
std::string ShapeString(c10::IntArrayRef shape);

// The JSON object in the file at `path`. NotFound if the file is missing;
// InvalidArgument naming `path` if it is not JSON or not an object.
absl::StatusOr<nlohmann::json> ReadJsonObject(const std::string& path);

// The string or bool at `key`, or `fallback` if the key is absent or null.
// InvalidArgument naming `path` and `key` if it has another type.
absl::StatusOr<std::string> OptionalString(const nlohmann::json& object, const std::string& path,
                                           const std::string& key, const std::string& fallback);
absl::StatusOr<bool> OptionalBool(const nlohmann::json& object, const std::string& path,
                                  const std::string& key, bool fallback);

// Tensor `name` of `contents` (read from `path`) as an own float32 copy,
// after checking its shape. `origin` says where the expected shape comes
// from, for the error message. NotFound if the tensor is missing (listing
// the ones present); InvalidArgument for another shape or a non-float dtype.
absl::StatusOr<torch::Tensor> FloatTensor(const SafetensorsContents& contents,
                                          const std::string& path, const std::string& name,
                                          const std::vector<int64_t>& shape,
                                          const std::string& origin);

// InvalidArgument naming `path` and the tensor if `contents` holds a tensor
// outside `expected` (`what` names the layout read, for the message), except
// SAELens's legacy all-ones `scaling_factor`, which SAELens itself drops.
absl::Status CheckNoUnexpectedTensors(const SafetensorsContents& contents, const std::string& path,
                                      const std::set<std::string>& expected,
                                      const std::string& what);

// The config of an SAE built from foreign files, before its architecture is
// chosen: name = dir's last component, n_latents = n, no input
// normalisation (input_scale is 1).
SaeConfig ForeignConfig(const std::string& dir, int64_t n);

// Resolves `config` (errors prefixed with config_origin), creates the SAE
// and copies `tensors` into it; every one of the SAE's tensors
// (Sae::NamedTensors) must be given, with its shape, and no other. Fills
// *config_out (if non-null) with the resolved config.
absl::StatusOr<std::unique_ptr<Sae>> BuildSae(SaeConfig config, int64_t d_in,
                                              const std::string& config_origin,
                                              const TensorMap& tensors, SaeConfig* config_out);

}  // namespace interchange_internal
}  // namespace saelab

#endif  // SAELAB_SAE_INTERCHANGE_INTERNAL_FOREIGN_FILES_H_
