#include "sae/checkpoint.h"

#include <cstdio>
#include <torch/utils.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "sae/factory.h"

namespace saelab {

absl::Status SaveSae(const std::string& dir, Sae& sae, const SaeConfig& config) {
  RETURN_IF_ERROR(MakeDirs(dir));
  // sae.safetensors marks a complete SAE: take it away while the config
  // changes, so a kill between the two writes never pairs a new config with
  // old weights.
  std::remove((dir + "/sae.safetensors").c_str());
  RETURN_IF_ERROR(WriteTextProtoFile(dir + "/sae_config.textproto", config));
  // The weights file records the config file's hash, so an edited or
  // corrupted config (k: 32 -> 33) is refused on load, not silently used.
  ASSIGN_OR_RETURN(std::string config_sha256, Sha256File(dir + "/sae_config.textproto"));
  TensorMap tensors;
  for (const auto& [name, tensor] : sae.NamedTensors()) tensors[name] = tensor.detach();
  return WriteSafetensors(dir + "/sae.safetensors", tensors,
                          {{"architecture", sae.architecture()},
                           {"d_in", std::to_string(sae.d_in())},
                           {"n_latents", std::to_string(sae.n_latents())},
                           {"format", "saelab.sae.v1"},
                           {"sae_config_sha256", config_sha256}});
}

bool HasSavedSae(const std::string& dir) { return PathExists(dir + "/sae.safetensors"); }

absl::Status LoadSaeTensors(const SafetensorsContents& contents, const std::string& path,
                            const std::string& prefix, Sae& sae) {
  torch::NoGradGuard no_grad;
  for (auto& [name, target] : sae.NamedTensors()) {
    ASSIGN_OR_RETURN(torch::Tensor value,
                     GetTensor(contents, path, prefix + name, target.sizes().vec(),
                               target.scalar_type()));
    target.copy_(value);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Sae>> LoadSae(const std::string& dir, SaeConfig* config_out) {
  std::string config_path = dir + "/sae_config.textproto";
  std::string weights_path = dir + "/sae.safetensors";
  SaeConfig config;
  RETURN_IF_ERROR(ParseTextProtoFile(config_path, &config));
  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(weights_path));
  RETURN_IF_ERROR(RequireDataChecksum(contents, weights_path, "saelab SAE checkpoint"));
  ASSIGN_OR_RETURN(std::string config_sha256, Sha256File(config_path));
  auto recorded_config = contents.metadata.find("sae_config_sha256");
  if (recorded_config == contents.metadata.end() || recorded_config->second != config_sha256) {
    return absl::DataLossError(absl::StrCat(
        config_path, ": checksum: the config hashes to sha256 ", config_sha256, " but ",
        weights_path, " was saved with ",
        recorded_config == contents.metadata.end() ? "no config hash" : recorded_config->second,
        " (the config was edited or corrupted after the SAE was saved)"));
  }
  auto d_in_entry = contents.metadata.find("d_in");
  if (d_in_entry == contents.metadata.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": metadata has no 'd_in' (not a saelab SAE file)"));
  }
  int64_t d_in = 0;
  if (!absl::SimpleAtoi(d_in_entry->second, &d_in) || d_in < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": metadata 'd_in' is not a positive integer"));
  }
  auto arch = contents.metadata.find("architecture");
  if (arch != contents.metadata.end() && arch->second != ArchitectureName(config)) {
    return absl::InvalidArgumentError(absl::StrCat(weights_path, ": architecture '", arch->second,
                                                   "' does not match ", config_path, " ('",
                                                   ArchitectureName(config), "')"));
  }
  SaeConfig resolved = config;
  absl::Status valid = ResolveSaeConfig(d_in, &resolved);
  if (!valid.ok()) return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", valid.message()));
  ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(resolved, d_in, /*seed=*/0));
  RETURN_IF_ERROR(LoadSaeTensors(contents, weights_path, "", *sae));
  if (config_out != nullptr) *config_out = resolved;
  return sae;
}

}  // namespace saelab
