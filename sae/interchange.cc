#include "sae/interchange.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "nlohmann/json.hpp"
#include "sae/factory.h"

namespace saelab {
namespace {

using Json = nlohmann::json;
// Written files keep a fixed, readable key order.
using OrderedJson = nlohmann::ordered_json;

constexpr char kConfigFile[] = "cfg.json";
constexpr char kSaeLensWeightsFile[] = "sae_weights.safetensors";
constexpr char kSparsifyWeightsFile[] = "sae.safetensors";
// The SAELens config format the export follows. SAELens >= 6 reads configs
// whose metadata.sae_lens_version is >= 6.0.0 as they are, and rewrites
// older ones (handle_pre_6_0_config); ours are in the >= 6 form.
constexpr char kSaeLensFormatVersion[] = "6.0.0";
constexpr char kSaelabFormat[] = "saelab.saelens.v1";

// ---- The architecture mapping ------------------------------------------

// The SAELens architecture each saelab architecture is written as.
std::string SaeLensArchitectureFor(const std::string& saelab_architecture) {
  if (saelab_architecture == "relu_l1") return "standard";
  if (saelab_architecture == "topk") return "topk";
  // SAELens saves BatchTopK SAEs in inference form as JumpReLU SAEs with the
  // tracked threshold repeated per latent (batchtopk_sae.py).
  if (saelab_architecture == "batch_topk") return "jumprelu";
  if (saelab_architecture == "jumprelu") return "jumprelu";
  if (saelab_architecture == "gated") return "gated";
  return "";
}

// The saelab architecture a SAELens file becomes when cfg.json carries no
// "saelab" object.
std::string DefaultSaelabArchitectureFor(const std::string& saelens_architecture) {
  if (saelens_architecture == "standard") return "relu_l1";
  if (saelens_architecture == "topk") return "topk";
  if (saelens_architecture == "jumprelu") return "jumprelu";
  if (saelens_architecture == "gated") return "gated";
  return "";
}

// Whether the saelab architecture encodes x - b_dec (b_dec doubling as
// Gao's b_pre) rather than x: SAELens's apply_b_dec_to_input.
bool SubtractsBDec(const std::string& saelab_architecture) {
  return saelab_architecture == "topk" || saelab_architecture == "batch_topk" ||
         saelab_architecture == "gated";
}

// Every tensor each saelab architecture holds (Sae::NamedTensors names).
std::set<std::string> SaelabTensorNames(const std::string& saelab_architecture) {
  std::set<std::string> names = {"W_enc", "b_enc", "W_dec", "b_dec", "input_scale"};
  if (saelab_architecture == "batch_topk") names.insert("threshold");
  if (saelab_architecture == "jumprelu") names.insert("log_threshold");
  if (saelab_architecture == "gated") names.insert({"r_mag", "b_mag"});
  return names;
}

// The SAELens state dict of each architecture: name -> shape.
std::vector<std::pair<std::string, std::vector<int64_t>>> SaeLensTensorShapes(
    const std::string& saelens_architecture, int64_t d_in, int64_t d_sae) {
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"W_enc", {d_in, d_sae}}, {"W_dec", {d_sae, d_in}}, {"b_dec", {d_in}}};
  if (saelens_architecture == "gated") {
    shapes.push_back({"b_gate", {d_sae}});
    shapes.push_back({"r_mag", {d_sae}});
    shapes.push_back({"b_mag", {d_sae}});
  } else {
    shapes.push_back({"b_enc", {d_sae}});
  }
  if (saelens_architecture == "jumprelu") shapes.push_back({"threshold", {d_sae}});
  return shapes;
}

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The last component of a directory path ("a/b/" -> "b").
std::string LastPathComponent(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  size_t slash = dir.rfind('/');
  std::string name = slash == std::string::npos ? dir : dir.substr(slash + 1);
  return name.empty() ? "imported" : name;
}

// ---- JSON access with errors that name the file and key ----------------

absl::StatusOr<Json> ReadJsonObject(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  Json json;
  try {
    json = Json::parse(text);
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not valid JSON: ", e.what()));
  }
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }
  return json;
}

// The string at `key`, or `fallback` if the key is absent or null.
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

// ---- SAELens cfg.json ---------------------------------------------------

struct SaeLensCfg {
  std::string architecture;  // SAELens's name
  int64_t d_in = 0;
  int64_t d_sae = 0;
  bool apply_b_dec_to_input = true;
  int64_t k = 0;  // topk only
  // The "saelab" object, if any.
  bool has_saelab = false;
  std::string saelab_architecture;
  std::string saelab_config;  // SaeConfig textproto
};

absl::StatusOr<SaeLensCfg> ParseSaeLensCfg(const Json& cfg, const std::string& path) {
  SaeLensCfg out;
  // SAELens defaults a missing architecture to "standard" (pre-6 configs).
  ASSIGN_OR_RETURN(out.architecture, OptionalString(cfg, path, "architecture", "standard"));
  if (DefaultSaelabArchitectureFor(out.architecture).empty()) {
    std::string hint;
    if (out.architecture == "batchtopk" || out.architecture == "matryoshka_batchtopk") {
      hint = "; this is SAELens's training form, whose inference form SAELens saves as 'jumprelu'";
    }
    return KeyError(path, "architecture",
                    absl::StrCat("is '", out.architecture,
                                 "', which saelab cannot import (it reads 'standard', 'topk', "
                                 "'jumprelu' and 'gated')",
                                 hint));
  }
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
  // so anything but ReLU would be silently misread: refuse it instead.
  for (const char* key : {"activation_fn", "activation_fn_str"}) {
    ASSIGN_OR_RETURN(std::string activation, OptionalString(cfg, path, key, "relu"));
    bool ok = activation == "relu" || (out.architecture == "topk" && activation == "topk");
    if (!ok) {
      return KeyError(
          path, key,
          absl::StrCat("is '", activation, "'; architecture '", out.architecture, "' is read with ",
                       out.architecture == "topk" ? "topk or " : "", "relu"));
    }
  }

  if (out.architecture == "topk") {
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
    if (SaeLensArchitectureFor(out.saelab_architecture) != out.architecture) {
      return KeyError(path, "saelab.architecture",
                      absl::StrCat("is '", out.saelab_architecture,
                                   "', which saelab never writes as SAELens architecture '",
                                   out.architecture, "'"));
    }
    out.has_saelab = true;
  }
  return out;
}

// ---- Tensors --------------------------------------------------------------

// Tensor `name` of `contents` as float32 after checking its shape. `origin`
// says where the expected shape comes from, for the error message.
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

// Refuses tensors the architecture does not have (SAELens's load_state_dict
// is strict too), except SAELens's legacy all-ones `scaling_factor`, which
// SAELens itself drops.
absl::Status CheckNoUnexpectedTensors(const SafetensorsContents& contents, const std::string& path,
                                      const std::set<std::string>& expected,
                                      const std::string& what) {
  for (const auto& [name, tensor] : contents.tensors) {
    if (expected.count(name) > 0) continue;
    if (name == "scaling_factor" && at::isFloatingType(tensor.scalar_type()) &&
        torch::all(tensor == 1).item<bool>()) {
      continue;
    }
    return absl::InvalidArgumentError(absl::StrCat(path, ": unexpected tensor '", name, "' (", what,
                                                   " has ", absl::StrJoin(expected, ", "), ")"));
  }
  return absl::OkStatus();
}

// log_threshold for a SAELens threshold [n] (float32): the float32 whose exp,
// evaluated the way JumpReluSae evaluates it (one exp over the whole [n]
// tensor, so each element takes the same kernel path), is closest to the
// threshold, exactly equal wherever some float32 reaches it. A plain
// log(threshold) is often one ulp off after exp, which would make a
// round trip through the SAELens layout change theta.
torch::Tensor LogThresholdFor(const torch::Tensor& threshold) {
  torch::Tensor best = threshold.to(torch::kFloat64).log().to(torch::kFloat32);
  torch::Tensor best_error = (best.exp() - threshold).abs();
  const torch::Tensor up_limit = torch::full_like(best, std::numeric_limits<float>::infinity());
  const torch::Tensor down_limit = -up_limit;
  torch::Tensor up = best;
  torch::Tensor down = best;
  // exp maps several neighbouring float32s to one value near 0, and skips
  // values for |log| > 1; 8 ulps either side covers both for realistic
  // thresholds.
  for (int step = 0; step < 8; ++step) {
    up = torch::nextafter(up, up_limit);
    down = torch::nextafter(down, down_limit);
    for (const torch::Tensor& candidate : {down, up}) {
      torch::Tensor error = (candidate.exp() - threshold).abs();
      torch::Tensor better = error < best_error;
      best = torch::where(better, candidate, best);
      best_error = torch::where(better, error, best_error);
    }
  }
  return best.contiguous();
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

// The config of an SAE built from foreign files: saelab's defaults for the
// architecture, the shape, and no input normalisation (input_scale is 1).
SaeConfig ForeignConfig(const std::string& dir, const std::string& architecture, int64_t n) {
  SaeConfig config;
  config.set_name(LastPathComponent(dir));
  config.set_n_latents(n);
  config.set_normalize_input(false);
  if (architecture == "relu_l1") config.mutable_relu_l1();
  if (architecture == "topk") config.mutable_topk();
  if (architecture == "batch_topk") config.mutable_batch_topk();
  if (architecture == "jumprelu") config.mutable_jumprelu();
  if (architecture == "gated") config.mutable_gated();
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

}  // namespace

// ---- Export ---------------------------------------------------------------

absl::Status ExportSaeLens(Sae& sae, const SaeConfig& config, const std::string& dir) {
  const std::string architecture = sae.architecture();
  if (ArchitectureName(config) != architecture) {
    return absl::InvalidArgumentError(absl::StrCat("ExportSaeLens: config '", config.name(),
                                                   "' is ", ArchitectureName(config),
                                                   " but the SAE is ", architecture));
  }
  if (config.n_latents() != sae.n_latents()) {
    return absl::InvalidArgumentError(absl::StrCat("ExportSaeLens: config '", config.name(),
                                                   "' has n_latents ", config.n_latents(),
                                                   " but the SAE has ", sae.n_latents()));
  }
  std::map<std::string, torch::Tensor> named = sae.NamedTensors();
  std::set<std::string> known = SaelabTensorNames(architecture);
  for (const auto& entry : named) {
    if (known.count(entry.first) == 0) {
      return absl::InternalError(absl::StrCat("ExportSaeLens: ", architecture, " tensor '",
                                              entry.first, "' has no SAELens mapping"));
    }
  }
  for (const std::string& name : known) {
    if (named.count(name) == 0) {
      return absl::InternalError(
          absl::StrCat("ExportSaeLens: ", architecture, " SAE has no tensor '", name, "'"));
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
  const torch::Tensor b_enc = named.at("b_enc").detach().clone();
  if (architecture == "gated") {
    tensors["b_gate"] = b_enc;
    tensors["r_mag"] = named.at("r_mag").detach().clone();
    tensors["b_mag"] = named.at("b_mag").detach().clone();
  } else {
    tensors["b_enc"] = b_enc;
  }
  if (architecture == "jumprelu") {
    // The same exp over the whole [n] tensor that JumpReluSae::EncodeScaled
    // evaluates, so the file holds exactly the thresholds the SAE used.
    tensors["threshold"] = named.at("log_threshold").detach().exp().contiguous();
  }
  if (architecture == "batch_topk") {
    tensors["threshold"] =
        named.at("threshold").detach().reshape({1}).expand({sae.n_latents()}).contiguous();
  }

  OrderedJson cfg;
  cfg["architecture"] = SaeLensArchitectureFor(architecture);
  cfg["d_in"] = sae.d_in();
  cfg["d_sae"] = sae.n_latents();
  cfg["dtype"] = "float32";
  cfg["device"] = "cpu";
  cfg["apply_b_dec_to_input"] = SubtractsBDec(architecture);
  cfg["normalize_activations"] = "none";
  cfg["reshape_activations"] = "none";
  if (architecture == "topk") {
    cfg["k"] = config.topk().k();
    cfg["rescale_acts_by_decoder_norm"] = false;
  }
  cfg["metadata"] = OrderedJson::object({{"sae_lens_version", kSaeLensFormatVersion}});
  cfg["saelab"] = OrderedJson::object({{"format", kSaelabFormat},
                                       {"architecture", architecture},
                                       {"input_scale_folded", s.item<double>()},
                                       {"config", ToTextProto(config)}});

  RETURN_IF_ERROR(MakeDirs(dir));
  const std::string config_path = dir + "/" + kConfigFile;
  // cfg.json is written last: take the old one away first so that a kill
  // between the two writes never pairs it with new weights.
  std::remove(config_path.c_str());
  RETURN_IF_ERROR(WriteSafetensors(dir + "/" + kSaeLensWeightsFile, tensors));
  return AtomicWriteFile(config_path, cfg.dump(2) + "\n");
}

// ---- SAELens import -------------------------------------------------------

absl::StatusOr<std::unique_ptr<Sae>> ImportSaeLens(const std::string& dir, SaeConfig* config_out) {
  const std::string config_path = dir + "/" + kConfigFile;
  const std::string weights_path = dir + "/" + kSaeLensWeightsFile;
  ASSIGN_OR_RETURN(Json cfg_json, ReadJsonObject(config_path));
  SaeLensCfg cfg;
  try {
    ASSIGN_OR_RETURN(cfg, ParseSaeLensCfg(cfg_json, config_path));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(config_path, ": ", e.what()));
  }

  // The saelab architecture and config.
  SaeConfig config;
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
    if (cfg.architecture == "topk" && config.topk().k() != cfg.k) {
      return absl::InvalidArgumentError(
          absl::StrCat(config_origin, ": topk.k ", config.topk().k(), " differs from k ", cfg.k));
    }
  } else {
    config = ForeignConfig(dir, DefaultSaelabArchitectureFor(cfg.architecture), cfg.d_sae);
    if (cfg.architecture == "topk") config.mutable_topk()->set_k(cfg.k);
  }
  const std::string architecture = ArchitectureName(config);

  // The weights, as float32, shapes checked against cfg.json.
  ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(weights_path));
  const std::string origin =
      absl::StrCat("d_in = ", cfg.d_in, ", d_sae = ", cfg.d_sae, " in ", config_path);
  TensorMap file;
  std::set<std::string> expected;
  for (const auto& [name, shape] : SaeLensTensorShapes(cfg.architecture, cfg.d_in, cfg.d_sae)) {
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
  const bool gated = cfg.architecture == "gated";
  torch::Tensor b_enc = gated ? file.at("b_gate") : file.at("b_enc");
  torch::Tensor b_mag = gated ? file.at("b_mag") : torch::Tensor();

  // apply_b_dec_to_input the other way round from the saelab architecture:
  // (x - b_dec) W + b = x W + (b - b_dec W), and x W + b = (x - b_dec) W +
  // (b + b_dec W). Computed in float64, rounded once.
  if (cfg.apply_b_dec_to_input != SubtractsBDec(architecture)) {
    const double sign = cfg.apply_b_dec_to_input ? -1.0 : 1.0;
    const torch::Tensor b_dec = file.at("b_dec").to(torch::kFloat64);
    const torch::Tensor w_enc = file.at("W_enc").to(torch::kFloat64);
    b_enc = (b_enc.to(torch::kFloat64) + sign * torch::matmul(b_dec, w_enc)).to(torch::kFloat32);
    if (gated) {
      const torch::Tensor w_mag = w_enc * file.at("r_mag").to(torch::kFloat64).exp();
      b_mag = (b_mag.to(torch::kFloat64) + sign * torch::matmul(b_dec, w_mag)).to(torch::kFloat32);
    }
  }
  tensors["b_enc"] = b_enc;
  if (gated) {
    tensors["r_mag"] = file.at("r_mag");
    tensors["b_mag"] = b_mag;
  }

  if (cfg.architecture == "jumprelu") {
    torch::Tensor threshold = file.at("threshold");
    if (torch::isnan(threshold).any().item<bool>()) {
      return absl::InvalidArgumentError(
          absl::StrCat(weights_path, ": tensor 'threshold' contains NaN"));
    }
    // SAELens computes ReLU(z) * 1[z > t]: any t < 0 acts as t = 0.
    threshold = threshold.clamp_min(0.0f);
    if (architecture == "batch_topk") {
      const torch::Tensor first = threshold[0];
      if (!torch::all(threshold == first).item<bool>()) {
        return absl::InvalidArgumentError(absl::StrCat(
            weights_path, ": tensor 'threshold' is not one value for every latent, so it is not ",
            "the inference form of a batch_topk SAE (as ", config_path, " says)"));
      }
      tensors["threshold"] = first.clone();
    } else {
      tensors["log_threshold"] = LogThresholdFor(threshold);
    }
  }
  return BuildSae(config, cfg.d_in, config_origin, tensors, config_out);
}

// ---- sparsify import ------------------------------------------------------

absl::StatusOr<std::unique_ptr<Sae>> ImportSparsify(const std::string& dir, SaeConfig* config_out) {
  const std::string config_path = dir + "/" + kConfigFile;
  const std::string weights_path = dir + "/" + kSparsifyWeightsFile;
  ASSIGN_OR_RETURN(Json cfg, ReadJsonObject(config_path));

  int64_t k = 0;
  int64_t d_in = 0;  // 0: read off encoder.weight
  int64_t n = 0;     // 0: num_latents / expansion_factor / encoder.weight
  int64_t expansion_factor = 0;
  bool multi_topk = false;
  try {
    ASSIGN_OR_RETURN(k, RequiredPositiveInteger(cfg, config_path, "k"));
    ASSIGN_OR_RETURN(std::string activation,
                     OptionalString(cfg, config_path, "activation", "topk"));
    if (activation != "topk") {
      return KeyError(config_path, "activation",
                      absl::StrCat("is '", activation, "'; saelab reads 'topk' sparse coders"));
    }
    // Variants saelab's TopK SAE cannot express.
    for (const char* key :
         {"transcode", "skip_connection", "signed", "embed_skip", "gram_lookup"}) {
      ASSIGN_OR_RETURN(bool on, OptionalBool(cfg, config_path, key, false));
      if (on) {
        return KeyError(config_path, key, "is true; saelab imports plain sparse autoencoders only");
      }
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
  if (n == 0 && expansion_factor > 0) n = d_in * expansion_factor;
  if (n == 0) n = encoder->second.size(0);
  if (k > n) return KeyError(config_path, "k", absl::StrCat("is ", k, " > num_latents = ", n));
  origin = absl::StrCat("d_in = ", d_in, ", num_latents = ", n, ", ", origin);

  TensorMap file;
  const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
      {"encoder.weight", {n, d_in}},
      {"encoder.bias", {n}},
      {"W_dec", {n, d_in}},
      {"b_dec", {d_in}}};
  std::set<std::string> expected;
  for (const auto& [name, shape] : shapes) {
    ASSIGN_OR_RETURN(file[name], FloatTensor(contents, weights_path, name, shape, origin));
    expected.insert(name);
  }
  RETURN_IF_ERROR(
      CheckNoUnexpectedTensors(contents, weights_path, expected, "a sparsify sparse autoencoder"));

  SaeConfig config = ForeignConfig(dir, "topk", n);
  config.mutable_topk()->set_k(k);
  if (multi_topk) config.mutable_topk()->set_multi_topk_factor(4);
  TensorMap tensors;
  tensors["W_enc"] = file.at("encoder.weight").t().contiguous();
  tensors["b_enc"] = file.at("encoder.bias");
  tensors["W_dec"] = file.at("W_dec");
  tensors["b_dec"] = file.at("b_dec");
  tensors["input_scale"] = torch::ones({}, torch::kFloat32);
  return BuildSae(config, d_in, config_path, tensors, config_out);
}

}  // namespace saelab
