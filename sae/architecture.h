// One row of the architecture table: what the rest of saelab needs to know
// about an SAE architecture, so that the factory (sae/factory.h), the
// matched-L0 search and the SAELens interchange (sae/interchange/saelens.h)
// look facts up instead of switching over architectures.
//
// Each architecture defines its row in its own file (TopKArchitecture() in
// sae/topk.cc, ...); sae/factory.cc lists the rows and looks them up:
//
//   const SaeArchitecture* architecture = FindArchitecture(config);  // sae/factory.h
//   RETURN_IF_ERROR(architecture->resolve(d_in, &config));
//   std::unique_ptr<Sae> sae = architecture->create(config, d_in, seed);
//
// Adding an architecture: its own files (class, loss, row), one field in
// SaeConfig's `architecture` oneof (sae/sae_config.proto) and one line in
// sae/factory.cc's list.
#ifndef SAELAB_SAE_ARCHITECTURE_H_
#define SAELAB_SAE_ARCHITECTURE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {

// A tensor an architecture holds beyond W_enc, b_enc, W_dec, b_dec and
// input_scale, and how SAELens stores it. The SAELens tensor is always
// [d_sae] float32.
struct SaeLensTensor {
  // The Sae::NamedTensors name ("log_threshold").
  std::string name;
  // The name in sae_weights.safetensors ("threshold").
  std::string saelens_name;
  // The SAELens tensor from the SAE's (detached) one; nullptr: a copy.
  torch::Tensor (*to_saelens)(const torch::Tensor& tensor, int64_t n_latents) = nullptr;
  // The SAE's tensor from the file's [d_sae] float32 one (an own copy);
  // nullptr: unchanged. Errors name the files (weights_path, and
  // config_path where cfg.json is why the tensor is read so).
  absl::StatusOr<torch::Tensor> (*from_saelens)(const torch::Tensor& tensor,
                                                const std::string& weights_path,
                                                const std::string& config_path) = nullptr;
};

// How an architecture is written in SAELens's layout (described in
// sae/interchange/saelens.h).
struct SaeLensForm {
  // cfg.json's "architecture" for the inference form: "standard", "topk",
  // "jumprelu" or "gated".
  std::string architecture;
  // cfg.json's apply_b_dec_to_input: whether the encoder reads x - b_dec
  // (b_dec doubling as Gao's b_pre) rather than x.
  bool apply_b_dec_to_input = false;
  // Whether a SAELens file of `architecture` that carries no "saelab"
  // object imports as this architecture. Exactly one row per SAELens name
  // says so (batch_topk, written as "jumprelu", does not).
  bool imports_foreign_files = false;
  // The SAELens name of saelab's b_enc ("b_gate" for gated).
  std::string b_enc_name = "b_enc";
  // Whether cfg.json carries "k" (the sparsity knob, which is then k) and
  // "rescale_acts_by_decoder_norm" false: SAELens's TopK configuration.
  bool k_in_config = false;
  // A pre-6 activation_fn name accepted besides "relu" ("topk"), or "".
  std::string activation_fn;
  // The tensors beyond the shared ones, in the order they are read.
  std::vector<SaeLensTensor> extra_tensors;
  // Adds shift W to every encoder bias b whose pre-activation is u W + b
  // for the encoder's input u (b_enc through W_enc, and e.g. gated's b_mag
  // through W_enc * exp(r_mag)), so that the pre-activations become those
  // of the input u + shift. shift: [d_in] float64; `tensors`: the SAE's
  // tensors by Sae::NamedTensors name, float32. Computed in float64 and
  // rounded once.
  void (*shift_encoder_biases)(const torch::Tensor& shift,
                               std::map<std::string, torch::Tensor>* tensors) = nullptr;
};

struct SaeArchitecture {
  // The SaeConfig `architecture` oneof field's name ("topk"), which is also
  // what the architecture's Sae::architecture() returns.
  std::string name;
  // That field's oneof case (SaeConfig::kTopk).
  SaeConfig::ArchitectureCase config_case = SaeConfig::ARCHITECTURE_NOT_SET;
  // Validates the architecture's own config message and fills its recipe
  // defaults into `config`: trainer lr and adam_eps where unset, and
  // derived fields such as k_aux. Called by ResolveSaeConfig after the
  // shared checks (config->architecture_case() == config_case, proto
  // defaults filled, d_in >= 1, n_latents >= 1). Returns InvalidArgument
  // naming the field ("topk.k must be in [1, n_latents = 64], got 0");
  // ResolveSaeConfig prefixes the SAE's name.
  absl::Status (*resolve)(int64_t d_in, SaeConfig* config) = nullptr;
  // Constructs the SAE, randomly initialised from `seed`. `config` is
  // resolved and of this architecture.
  std::unique_ptr<Sae> (*create)(const SaeConfig& config, int64_t d_in, uint64_t seed) = nullptr;
  // The sparsity knob (k, or the sparsity coefficient lambda) of a config
  // of this architecture; setting k rounds to the nearest integer.
  double (*sparsity_knob)(const SaeConfig& config) = nullptr;
  void (*set_sparsity_knob)(SaeConfig* config, double value) = nullptr;
  // True if the knob is k (L0 grows with it), false if it is a coefficient
  // (L0 shrinks as it grows).
  bool sparsity_knob_is_k = false;
  // Set where the knob can be a target L0 (jumprelu in target mode): true
  // for such a config, whose L0 grows with the knob as with k.
  bool (*sparsity_knob_is_target_l0)(const SaeConfig& config) = nullptr;
  SaeLensForm saelens;
};

// Sets config's `architecture` oneof to `architecture`'s field (its
// defaults), keeping it if already set.
void SelectArchitecture(const SaeArchitecture& architecture, SaeConfig* config);

// Fills trainer.lr and trainer.adam_eps where they are unset.
void FillOptimizerDefaults(double lr, double adam_eps, SaeConfig* config);

// SaeLensForm::shift_encoder_biases for architectures whose only encoder
// bias is b_enc, read through W_enc: b_enc += shift W_enc.
void ShiftBEnc(const torch::Tensor& shift, std::map<std::string, torch::Tensor>* tensors);

// A SAELens `threshold` tensor [d_sae] as SAELens applies it in
// ReLU(z) * 1[z > threshold]: values < 0 act as 0 and become 0.
// InvalidArgument naming weights_path if any value is NaN.
absl::StatusOr<torch::Tensor> SaeLensThreshold(const torch::Tensor& threshold,
                                               const std::string& weights_path);

}  // namespace saelab

#endif  // SAELAB_SAE_ARCHITECTURE_H_
