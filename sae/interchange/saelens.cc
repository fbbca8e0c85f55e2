#include "sae/interchange/saelens.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <torch/utils.h>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "nlohmann/json.hpp"
#include "sae/architecture.h"
#include "sae/factory.h"
#include "sae/interchange/internal/foreign_files.h"

namespace saelab {
namespace {

using Json = nlohmann::json;
// Written files keep a fixed, readable key order.
using OrderedJson = nlohmann::ordered_json;
using interchange_internal::BuildSae;
using interchange_internal::CheckNoUnexpectedTensors;
using interchange_internal::FloatTensor;
using interchange_internal::ForeignConfig;
using interchange_internal::kConfigFile;
using interchange_internal::OptionalBool;
using interchange_internal::OptionalString;
using interchange_internal::ReadJsonObject;

constexpr char kWeightsFile[] = "sae_weights.safetensors";
// The SAELens config format the export follows. SAELens >= 6 reads configs
// whose metadata.sae_lens_version is >= 6.0.0 as they are, and rewrites
// older ones (handle_pre_6_0_config); ours are in the >= 6 form.
constexpr char kSaeLensFormatVersion[] = "6.0.0";
constexpr char kSaelabFormat[] = "saelab.saelens.v1";

// ---- The architecture mapping (the table's SaeLensForm rows) -------------

// The saelab architecture a SAELens file becomes when cfg.json carries no
// "saelab" object; nullptr if saelab cannot read that SAELens architecture.
const SaeArchitecture* ForeignArchitecture(const std::string& saelens_architecture) {
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    if (architecture->saelens.imports_foreign_files &&
        architecture->saelens.architecture == saelens_architecture) {
      return architecture;
    }
  }
  return nullptr;
}

// "'standard', 'topk', 'jumprelu' and 'gated'": the SAELens architectures
// saelab imports.
std::string ForeignArchitectureList() {
  std::vector<std::string> names;
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    if (architecture->saelens.imports_foreign_files) {
      names.push_back(absl::StrCat("'", architecture->saelens.architecture, "'"));
    }
  }
  std::string list;
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StrAppend(&list, i == 0 ? "" : (i + 1 == names.size() ? " and " : ", "), names[i]);
  }
  return list;
}

// Every tensor an architecture holds (Sae::NamedTensors names).
std::set<std::string> SaelabTensorNames(const SaeArchitecture& architecture) {
  std::set<std::string> names = {"W_enc", "b_enc", "W_dec", "b_dec", "input_scale"};
  for (const SaeLensTensor& extra : architecture.saelens.extra_tensors) names.insert(extra.name);
  return names;
}

// The SAELens state dict of an architecture: name -> shape.
std::vector<std::pair<std::string, std::vector<int64_t>>> SaeLensTensorShapes(
    const SaeArchitecture& architecture, int64_t d_in, int64_t d_sae) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"W_enc", {d_in, d_sae}}, {"W_dec", {d_sae, d_in}}, {"b_dec", {d_in}}};
  shapes.push_back({architecture.saelens.b_enc_name, {d_sae}});
  for (const SaeLensTensor& extra : architecture.saelens.extra_tensors) {
    shapes.push_back({extra.saelens_name, {d_sae}});
  }
  return shapes;
}

// ---- SAELens cfg.json ---------------------------------------------------

struct SaeLensCfg {
  std::string architecture;  // SAELens's name
  // The saelab architecture it imports as without a "saelab" object.
  const SaeArchitecture* foreign = nullptr;
  int64_t d_in = 0;
  int64_t d_sae = 0;
  bool apply_b_dec_to_input = true;
  int64_t k = 0;  // only where the architecture keeps "k" in cfg.json
  // The "saelab" object, if any.
  bool has_saelab = false;
  std::string saelab_architecture;
  std::string saelab_config;  // SaeConfig textproto
};

absl::StatusOr<SaeLensCfg> ParseSaeLensCfg(const Json& cfg, const std::string& path) {
  SaeLensCfg out;
  // SAELens defaults a missing architecture to "standard" (pre-6 configs).
  ASSIGN_OR_RETURN(out.architecture, OptionalString(cfg, path, "architecture", "standard"));
  out.foreign = ForeignArchitecture(out.architecture);
  if (out.foreign == nullptr) {
    std::string hint;
    if (out.architecture == "batchtopk" || out.architecture == "matryoshka_batchtopk") {
      hint = "; this is SAELens's training form, whose inference form SAELens saves as 'jumprelu'";
    }
    return KeyError(path, "architecture",
                    absl::StrCat("is '", out.architecture, "', which saelab cannot import (it reads ",
                                 ForeignArchitectureList(), ")", hint));
  }
  const SaeLensForm& form = out.foreign->saelens;
  ASSIGN_OR_RETURN(out.d_in, RequiredPositiveInteger(cfg, path, "d_in"));
  ASSIGN_OR_RETURN(out.d_sae, RequiredPositiveInteger(cfg, path, "d_sae"));

  // The weights are converted to float32 on import whatever their dtype.
  ASSIGN_OR_RETURN(std::string dtype, OptionalString(cfg, path, "dtype", "float32"));
  static const std::set<std::string> kFloatDtypes = {
      "float32",       "float16",       "bfloat16",       "float64",
      "torch.float32", "torch.float16", "torch.bfloat16", "torch.float64"};
  if (kFloatDtypes.count(dtype) == 0) {
    return KeyError(
        path, "dtype",
        absl::StrCat("is '", dtype, "'; saelab reads float32, float16, bfloat16 and float64 SAEs"));
  }

  // SAELens's default when the key is absent (handle_config_defaulting).
  ASSIGN_OR_RETURN(out.apply_b_dec_to_input, OptionalBool(cfg, path, "apply_b_dec_to_input", true));

  // Pre-6 configs store a bool (true = "expected_average_only_in") or null.
  std::string normalize = "none";
  if (const Json* value = FindKey(cfg, "normalize_activations");
      value != nullptr && !value->is_null()) {
    if (value->is_boolean()) {
      normalize = value->get<bool>() ? "expected_average_only_in" : "none";
    } else if (value->is_string()) {
      normalize = value->get<std::string>();
    } else {
      return KeyError(path, "normalize_activations",
                      absl::StrCat("must be a string, got ", value->dump()));
    }
  }
  if (normalize != "none") {
    std::string advice =
        normalize == "expected_average_only_in"
            ? "fold the activation-norm scaling factor into the weights first (SAELens: "
              "sae.fold_activation_norm_scaling_factor(factor), then save_model)"
            : "saelab has no per-token normalisation at run time";
    return KeyError(path, "normalize_activations",
                    absl::StrCat("is '", normalize, "'; only 'none' is supported: ", advice));
  }
  ASSIGN_OR_RETURN(bool finetuning_scaling,
                   OptionalBool(cfg, path, "finetuning_scaling_factor", false));
  if (finetuning_scaling) {
    return KeyError(path, "finetuning_scaling_factor",
                    "is true; saelab has no per-latent output scaling");
  }
  ASSIGN_OR_RETURN(std::string reshape, OptionalString(cfg, path, "reshape_activations", "none"));
  if (reshape != "none" && reshape != "hook_z") {
    return KeyError(path, "reshape_activations",
                    absl::StrCat("is '", reshape, "'; saelab reads 'none' and 'hook_z'"));
  }
  ASSIGN_OR_RETURN(bool rescale, OptionalBool(cfg, path, "rescale_acts_by_decoder_norm", false));
  if (rescale) {
    return KeyError(path, "rescale_acts_by_decoder_norm",
                    "is true; saelab's TopK does not rescale activations by decoder norms");
  }
  // Pre-6 configs name the activation; v6 ignores it for these architectures,
  // so anything but ReLU (or the architecture's own, e.g. topk) would be
  // silently misread: refuse it instead.
  for (const char* key : {"activation_fn", "activation_fn_str"}) {
    ASSIGN_OR_RETURN(std::string activation, OptionalString(cfg, path, key, "relu"));
    bool ok = activation == "relu" || (!form.activation_fn.empty() && activation == form.activation_fn);
    if (!ok) {
      return KeyError(path, key,
                      absl::StrCat("is '", activation, "'; architecture '", out.architecture,
                                   "' is read with ",
                                   form.activation_fn.empty() ? "" : form.activation_fn + " or ",
                                   "relu"));
    }
  }

  if (form.k_in_config) {
    const Json* k = FindKey(cfg, "k");
    std::string k_key = "k";
    if (k == nullptr) {
      // Pre-6 configs: activation_fn_kwargs: {"k": ...}.
      if (const Json* kwargs = FindKey(cfg, "activation_fn_kwargs");
          kwargs != nullptr && kwargs->is_object()) {
        k = FindKey(*kwargs, "k");
        k_key = "activation_fn_kwargs.k";
      }
    }
    if (k == nullptr) {
      return KeyError(path, "k", "is missing (nor is there an activation_fn_kwargs.k)");
    }
    ASSIGN_OR_RETURN(out.k, IntegerValue(*k, path, k_key));
    if (out.k < 1 || out.k > out.d_sae) {
      return KeyError(path, k_key,
                      absl::StrCat("must be in [1, d_sae = ", out.d_sae, "], got ", out.k));
    }
  }

  if (const Json* saelab = FindKey(cfg, "saelab"); saelab != nullptr) {
    if (!saelab->is_object()) return KeyError(path, "saelab", "must be an object");
    ASSIGN_OR_RETURN(std::string format, OptionalString(*saelab, path, "format", ""));
    if (format != kSaelabFormat) {
      return KeyError(path, "saelab.format",
                      absl::StrCat("is '", format, "', expected '", kSaelabFormat, "'"));
    }
    ASSIGN_OR_RETURN(out.saelab_architecture, OptionalString(*saelab, path, "architecture", ""));
    ASSIGN_OR_RETURN(out.saelab_config, OptionalString(*saelab, path, "config", ""));
    const SaeArchitecture* recorded = FindArchitecture(out.saelab_architecture);
    if (recorded == nullptr || recorded->saelens.architecture != out.architecture) {
      return KeyError(path, "saelab.architecture",
                      absl::StrCat("is '", out.saelab_architecture,
                                   "', which saelab never writes as SAELens architecture '",
                                   out.architecture, "'"));
    }
    out.has_saelab = true;
  }
  return out;
}

}  // namespace

// ---- Export ---------------------------------------------------------------

absl::Status ExportSaeLens(Sae& sae, const SaeConfig& config, const std::string& dir) {
  const std::string name = sae.architecture();
  if (ArchitectureName(config) != name) {
    return absl::InvalidArgumentError(absl::StrCat("ExportSaeLens: config '", config.name(),
                                                   "' is ", ArchitectureName(config),
                                                   " but the SAE is ", name));
  }
  if (config.n_latents() != sae.n_latents()) {
    return absl::InvalidArgumentError(absl::StrCat("ExportSaeLens: config '", config.name(),
                                                   "' has n_latents ", config.n_latents(),
                                                   " but the SAE has ", sae.n_latents()));
  }
  if (config.has_transcoder() != sae.is_transcoder()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExportSaeLens: config '", config.name(), "' and the SAE disagree on being a transcoder"));
  }
  if (config.has_transcoder() && config.transcoder().skip_connection()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExportSaeLens: '", config.name(), "' is a TopK skip transcoder, which SAELens's formats "
        "cannot express (its skip transcoders are ReLU); keep saelab's own directory"));
  }
  const SaeArchitecture& architecture = *FindArchitecture(config);
  const SaeLensForm& form = architecture.saelens;
  std::map<std::string, torch::Tensor> named = sae.NamedTensors();
  std::set<std::string> known = SaelabTensorNames(architecture);
  for (const auto& entry : named) {
    if (known.count(entry.first) == 0) {
      return absl::InternalError(absl::StrCat("ExportSaeLens: ", name, " tensor '", entry.first,
                                              "' has no SAELens mapping"));
    }
  }
  for (const std::string& tensor : known) {
    if (named.count(tensor) == 0) {
      return absl::InternalError(
          absl::StrCat("ExportSaeLens: ", name, " SAE has no tensor '", tensor, "'"));
    }
  }

  torch::NoGradGuard no_grad;
  // Fold the input scale s (SAELens's fold_activation_norm_scaling_factor):
  // the SAE sees s x, so W_enc absorbs s and everything in output units
  // (W_dec, b_dec) is divided by it. With s = 1 these are exact copies.
  const torch::Tensor s = named.at("input_scale").detach();
  TensorMap tensors;
  tensors["W_enc"] = (named.at("W_enc").detach() * s).contiguous();
  tensors["W_dec"] = (named.at("W_dec").detach() / s).contiguous();
  tensors["b_dec"] = (named.at("b_dec").detach() / s).contiguous();
  tensors[form.b_enc_name] = named.at("b_enc").detach().clone();
  for (const SaeLensTensor& extra : form.extra_tensors) {
    const torch::Tensor value = named.at(extra.name).detach();
    tensors[extra.saelens_name] =
        extra.to_saelens ? extra.to_saelens(value, sae.n_latents()) : value.clone();
  }

  OrderedJson cfg;
  cfg["architecture"] = form.architecture;
  cfg["d_in"] = sae.d_in();
  cfg["d_sae"] = sae.n_latents();
  cfg["dtype"] = "float32";
  cfg["device"] = "cpu";
  // A transcoder encodes x itself: SAELens's SAE with apply_b_dec_to_input
  // false computes the same map (x -> TopK(x W_enc + b_enc) W_dec + b_dec).
  cfg["apply_b_dec_to_input"] = form.apply_b_dec_to_input && !config.has_transcoder();
  cfg["normalize_activations"] = "none";
  cfg["reshape_activations"] = "none";
  if (form.k_in_config) {
    cfg["k"] = std::llround(architecture.sparsity_knob(config));
    cfg["rescale_acts_by_decoder_norm"] = false;
  }
  cfg["metadata"] = OrderedJson::object({{"sae_lens_version", kSaeLensFormatVersion}});
  cfg["saelab"] = OrderedJson::object({{"format", kSaelabFormat},
                                       {"architecture", name},
                                       {"input_scale_folded", s.item<double>()},
                                       {"config", ToTextProto(config)}});

  RETURN_IF_ERROR(MakeDirs(dir));
  const std::string config_path = dir + "/" + kConfigFile;
  // cfg.json is written last: take the old one away first so that a kill
  // between the two writes never pairs it with new weights.
  std::remove(config_path.c_str());
  RETURN_IF_ERROR(WriteSafetensors(dir + "/" + kWeightsFile, tensors));
  return AtomicWriteFile(config_path, cfg.dump(2) + "\n");
}

// ---- Import ---------------------------------------------------------------

absl::StatusOr<std::unique_ptr<Sae>> ImportSaeLens(const std::string& dir, SaeConfig* config_out) {
  const std::string config_path = dir + "/" + kConfigFile;
  const std::string weights_path = dir + "/" + kWeightsFile;
  ASSIGN_OR_RETURN(Json cfg_json, ReadJsonObject(config_path));
  SaeLensCfg cfg;
  try {
    ASSIGN_OR_RETURN(cfg, ParseSaeLensCfg(cfg_json, config_path));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", e.what()));
  }

  // The saelab architecture and config.
  SaeConfig config;
  const SaeArchitecture* architecture = cfg.foreign;
  std::string config_origin = config_path;
  if (cfg.has_saelab) {
    config_origin = absl::StrCat(config_path, " (saelab.config)");
    RETURN_IF_ERROR(ParseTextProto(cfg.saelab_config, config_origin, &config));
    if (ArchitectureName(config) != cfg.saelab_architecture) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_origin, ": the config is '", ArchitectureName(config),
                       "' but saelab.architecture is '", cfg.saelab_architecture, "'"));
    }
    if (config.n_latents() != cfg.d_sae) {
      return absl::InvalidArgumentError(absl::StrCat(
          config_origin, ": n_latents ", config.n_latents(), " differs from d_sae ", cfg.d_sae));
    }
    // A known name (ParseSaeLensCfg checked it) written as this SAELens
    // architecture.
    architecture = FindArchitecture(config);
    if (architecture->saelens.k_in_config) {
      const int64_t k = std::llround(architecture->sparsity_knob(config));
      if (k != cfg.k) {
        return absl::InvalidArgumentError(absl::StrCat(config_origin, ": ", architecture->name,
                                                       ".k ", k, " differs from k ", cfg.k));
      }
    }
  } else {
    config = ForeignConfig(dir, cfg.d_sae);
    SelectArchitecture(*architecture, &config);
    if (architecture->saelens.k_in_config) architecture->set_sparsity_knob(&config, cfg.k);
  }
  const SaeLensForm& form = architecture->saelens;

  // The weights, as float32, shapes checked against cfg.json.
  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(weights_path));
  const std::string origin =
      absl::StrCat("d_in = ", cfg.d_in, ", d_sae = ", cfg.d_sae, " in ", config_path);
  TensorMap file;
  std::set<std::string> expected;
  for (const auto& [name, shape] : SaeLensTensorShapes(*architecture, cfg.d_in, cfg.d_sae)) {
    ASSIGN_OR_RETURN(file[name], FloatTensor(contents, weights_path, name, shape, origin));
    expected.insert(name);
  }
  RETURN_IF_ERROR(CheckNoUnexpectedTensors(contents, weights_path, expected,
                                           absl::StrCat("SAELens '", cfg.architecture, "'")));

  TensorMap tensors;
  tensors["W_enc"] = file.at("W_enc");
  tensors["W_dec"] = file.at("W_dec");
  tensors["b_dec"] = file.at("b_dec");
  tensors["input_scale"] = torch::ones({}, torch::kFloat32);
  tensors["b_enc"] = file.at(form.b_enc_name);
  for (const SaeLensTensor& extra : form.extra_tensors) {
    const torch::Tensor& value = file.at(extra.saelens_name);
    if (extra.from_saelens) {
      ASSIGN_OR_RETURN(tensors[extra.name], extra.from_saelens(value, weights_path, config_path));
    } else {
      tensors[extra.name] = value;
    }
  }

  // apply_b_dec_to_input the other way round from the saelab architecture:
  // (x - b_dec) W + b = x W + (b - b_dec W), and x W + b = (x - b_dec) W +
  // (b + b_dec W).
  // A transcoder (restored from the "saelab" object) never subtracts b_dec.
  const bool saelab_applies_b_dec = form.apply_b_dec_to_input && !config.has_transcoder();
  if (cfg.apply_b_dec_to_input != saelab_applies_b_dec) {
    const double sign = cfg.apply_b_dec_to_input ? -1.0 : 1.0;
    form.shift_encoder_biases(sign * file.at("b_dec").to(torch::kFloat64), &tensors);
  }
  return BuildSae(config, cfg.d_in, config_origin, tensors, config_out);
}

}  // namespace saelab
