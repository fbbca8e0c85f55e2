#include "sae/interchange/sparsify.h"

#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/json_fields.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"
#include "sae/interchange/internal/foreign_files.h"

namespace saelab {
namespace {

using Json = nlohmann::json;
using interchange_internal::BuildSae;
using interchange_internal::CheckNoUnexpectedTensors;
using interchange_internal::FloatTensor;
using interchange_internal::ForeignConfig;
using interchange_internal::kConfigFile;
using interchange_internal::OptionalBool;
using interchange_internal::OptionalString;
using interchange_internal::ReadJsonObject;
using interchange_internal::ShapeString;

constexpr char kWeightsFile[] = "sae.safetensors";

}  // namespace

absl::StatusOr<std::unique_ptr<Sae>> ImportSparsify(const std::string& dir, SaeConfig* config_out) {
  const std::string config_path = dir + "/" + kConfigFile;
  const std::string weights_path = dir + "/" + kWeightsFile;
  ASSIGN_OR_RETURN(Json cfg, ReadJsonObject(config_path));

  int64_t k = 0;
  int64_t d_in = 0;  // 0: read off encoder.weight
  int64_t n = 0;     // 0: num_latents / expansion_factor / encoder.weight
  int64_t expansion_factor = 0;
  bool multi_topk = false;
  bool transcode = false, skip_connection = false;
  try {
    ASSIGN_OR_RETURN(k, RequiredPositiveInteger(cfg, config_path, "k"));
    ASSIGN_OR_RETURN(std::string activation,
                     OptionalString(cfg, config_path, "activation", "topk"));
    if (activation != "topk") {
      return KeyError(config_path, "activation",
                      absl::StrCat("is '", activation, "'; saelab reads 'topk' sparse coders"));
    }
    // Variants saelab's TopK SAE cannot express.
    for (const char* key : {"signed", "embed_skip", "gram_lookup"}) {
      ASSIGN_OR_RETURN(bool on, OptionalBool(cfg, config_path, key, false));
      if (on) {
        return KeyError(config_path, key,
                        "is true; saelab imports TopK sparse autoencoders and transcoders only");
      }
    }
    ASSIGN_OR_RETURN(transcode, OptionalBool(cfg, config_path, "transcode", false));
    ASSIGN_OR_RETURN(skip_connection, OptionalBool(cfg, config_path, "skip_connection", false));
    if (skip_connection && !transcode) {
      return KeyError(config_path, "skip_connection",
                      "is true without \"transcode\"; saelab has skip connections on "
                      "transcoders only");
    }
    ASSIGN_OR_RETURN(multi_topk, OptionalBool(cfg, config_path, "multi_topk", false));
    if (FindKey(cfg, "d_in") != nullptr) {
      ASSIGN_OR_RETURN(d_in, RequiredPositiveInteger(cfg, config_path, "d_in"));
    }
    if (const Json* value = FindKey(cfg, "num_latents"); value != nullptr && !value->is_null()) {
      ASSIGN_OR_RETURN(n, IntegerValue(*value, config_path, "num_latents"));
      if (n < 0) return KeyError(config_path, "num_latents", "must be >= 0");
    }
    if (FindKey(cfg, "expansion_factor") != nullptr) {
      ASSIGN_OR_RETURN(expansion_factor,
                       RequiredPositiveInteger(cfg, config_path, "expansion_factor"));
    }
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", e.what()));
  }

  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(weights_path));
  auto encoder = contents.tensors.find("encoder.weight");
  if (encoder == contents.tensors.end()) {
    return absl::NotFoundError(absl::StrCat(weights_path, ": tensor 'encoder.weight' is missing"));
  }
  if (encoder->second.dim() != 2) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": tensor 'encoder.weight' has shape ",
                     ShapeString(encoder->second.sizes()), ", expected [num_latents, d_in]"));
  }
  std::string origin = absl::StrCat("from ", config_path);
  if (d_in == 0) {
    d_in = encoder->second.size(1);
    origin = absl::StrCat("d_in read off encoder.weight");
  }
  // sparsify: num_latents, or d_in * expansion_factor when num_latents is 0.
  if (n == 0 && expansion_factor > 0 && __builtin_mul_overflow(d_in, expansion_factor, &n)) {
    // Both come from cfg.json: this overflowed int64 (fuzz/crashes/sparsify/).
    return KeyError(config_path, "expansion_factor",
                    absl::StrCat("is ", expansion_factor, "; times d_in = ", d_in,
                                 " it overflows int64"));
  }
  if (n == 0) n = encoder->second.size(0);
  if (k > n) return KeyError(config_path, "k", absl::StrCat("is ", k, " > num_latents = ", n));
  origin = absl::StrCat("d_in = ", d_in, ", num_latents = ", n, ", ", origin);

  TensorMap file;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"encoder.weight", {n, d_in}},
      {"encoder.bias", {n}},
      {"W_dec", {n, d_in}},
      {"b_dec", {d_in}}};
  std::vector<std::pair<std::string, std::vector<int64_t>>> all_shapes = shapes;
  if (skip_connection) all_shapes.push_back({"W_skip", {d_in, d_in}});
  std::set<std::string> expected;
  for (const auto& [name, shape] : all_shapes) {
    ASSIGN_OR_RETURN(file[name], FloatTensor(contents, weights_path, name, shape, origin));
    expected.insert(name);
  }
  RETURN_IF_ERROR(
      CheckNoUnexpectedTensors(contents, weights_path, expected, "a sparsify sparse autoencoder"));

  SaeConfig config = ForeignConfig(dir, n);
  config.mutable_topk()->set_k(k);
  if (multi_topk) config.mutable_topk()->set_multi_topk_factor(4);
  if (transcode) {
    config.mutable_transcoder()->set_skip_connection(skip_connection);
  }
  TensorMap tensors;
  tensors["W_enc"] = file.at("encoder.weight").t().contiguous();
  tensors["b_enc"] = file.at("encoder.bias");
  tensors["W_dec"] = file.at("W_dec");
  tensors["b_dec"] = file.at("b_dec");
  // sparsify adds x W_skip^T (W_skip [d_out, d_in]); saelab adds x W_skip.
  if (skip_connection) tensors["W_skip"] = file.at("W_skip").t().contiguous();
  tensors["input_scale"] = torch::ones({}, torch::kFloat32);
  return BuildSae(config, d_in, config_path, tensors, config_out);
}

}  // namespace saelab
