// Moves SAEs between saelab and SAELens: export to and import from
// SAELens's on-disk layout.
//
//   RETURN_IF_ERROR(ExportSaeLens(*sae, config, "/tmp/my_sae"));
//   // Python: sae_lens.SAE.load_from_disk("/tmp/my_sae")
//   SaeConfig config;
//   ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, ImportSaeLens("/tmp/my_sae", &config));
//
// SAELens layout (the inference form SAELens >= 6 writes with save_model
// and reads with SAE.load_from_disk): a directory holding
//   cfg.json                 {"architecture", "d_in", "d_sae", "dtype",
//                             "device", "apply_b_dec_to_input",
//                             "normalize_activations", "reshape_activations",
//                             "metadata": {...}, and per architecture "k"}
//   sae_weights.safetensors  W_enc [d_in, d_sae], W_dec [d_sae, d_in],
//                            b_dec [d_in], and per architecture:
//       standard, topk:  b_enc [d_sae]
//       jumprelu:        b_enc [d_sae], threshold [d_sae]
//       gated:           b_gate, r_mag, b_mag [d_sae]   (no b_enc)
// SAELens computes x' = x - b_dec * apply_b_dec_to_input, z = x' W_enc + b_enc,
// f = ReLU(z) (standard), ReLU(TopK_k(z)) (topk), ReLU(z) * 1[z > threshold]
// (jumprelu), 1[x' W_enc + b_gate > 0] * ReLU(x' (W_enc * exp(r_mag)) + b_mag)
// (gated); x_hat = f W_dec + b_dec.
//
// How each saelab architecture is written is its row's SaeLensForm
// (sae/architecture.h; the row is defined in the architecture's own file).
// Today:
//   relu_l1    -> "standard", apply_b_dec_to_input false
//   topk       -> "topk" with "k", apply_b_dec_to_input true (b_dec = b_pre)
//   batch_topk -> "jumprelu", apply_b_dec_to_input true, `threshold` = the
//                 scalar inference threshold repeated for every latent. This
//                 is what SAELens itself saves a BatchTopK SAE as
//                 (BatchTopKTrainingSAE.process_state_dict_for_saving_inference).
//   matryoshka_batch_topk -> as batch_topk (SAELens saves its Matryoshka
//                 BatchTopK SAEs as JumpReLU too); the "saelab" object says
//                 which, so the prefix widths come back on import.
//   jumprelu   -> "jumprelu", apply_b_dec_to_input false,
//                 threshold = exp(log_threshold)
//   gated      -> "gated", apply_b_dec_to_input true, b_gate = saelab's b_enc
// saelab's input_scale s is folded into the weights, as SAELens's
// fold_activation_norm_scaling_factor does, so the exported SAE takes raw
// activations ("normalize_activations": "none"):
//   W_enc' = s W_enc, W_dec' = W_dec / s, b_dec' = b_dec / s; b_enc, b_gate,
//   b_mag, r_mag and thresholds unchanged. The pre-activations are unchanged
//   ((s x - b_dec) W = (x - b_dec / s)(s W)), so thresholds on them stay; the
//   output (f W_dec + b_dec) / s is f W_dec' + b_dec'.
// cfg.json also carries a "saelab" object (SAELens ignores unknown keys):
//   {"format": "saelab.saelens.v1", "architecture": "batch_topk",
//    "input_scale_folded": 2.5, "config": "<the SaeConfig as textproto>"}
// so that ImportSaeLens restores saelab's architecture and exact config.
// "metadata" holds only {"sae_lens_version": "6.0.0"}, the SAELens format
// version the files follow (it selects SAELens's >= 6 config reader); saelab
// knows no model or hook name. Set metadata.hook_name and model_name by hand
// to use the SAE with SAELens's HookedSAETransformer.
#ifndef SAELAB_SAE_INTERCHANGE_SAELENS_H_
#define SAELAB_SAE_INTERCHANGE_SAELENS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {

// Writes dir/sae_weights.safetensors then dir/cfg.json (each atomically;
// creates dir; an old cfg.json is removed first, so a complete cfg.json
// always describes the weights beside it) in the SAELens layout above, with
// input_scale folded in; tensors are float32. `config` must be the SAE's
// resolved config. A TopK transcoder exports as SAELens "topk" with
// apply_b_dec_to_input false (the same map, from its input to its target);
// SAELens has no form for a TopK skip transcoder. InvalidArgument if
// config's architecture, n_latents or transcoder setting do not match the
// SAE, or for a skip transcoder; Internal if the SAE holds a tensor its architecture's
// row does not map (a new parameter must be added to the row's
// SaeLensForm::extra_tensors before it can be exported); errors from file
// writes name the file.
absl::Status ExportSaeLens(Sae& sae, const SaeConfig& config, const std::string& dir);

// Reads a SAELens directory (written by ExportSaeLens or by SAELens >= 6;
// SAELens < 6 configs are read as SAELens itself upgrades them: "k" may sit
// in activation_fn_kwargs, normalize_activations may be a bool or null,
// apply_b_dec_to_input defaults to true) and builds the saelab SAE, with
// input_scale 1. Fills *config (if non-null) with the resolved config: the
// one recorded in cfg.json's "saelab" object if present, else one built
// from cfg.json: name = the directory's last component, n_latents = d_sae,
// normalize_input false, the architecture's defaults (topk: k from cfg.json).
//
// Mapping: standard -> relu_l1, topk -> topk, jumprelu -> jumprelu (or
// batch_topk when the "saelab" object says so; its thresholds must then be
// one value), gated -> gated. apply_b_dec_to_input is honoured for every
// architecture: where the saelab architecture treats b_dec the other way
// (relu_l1 and jumprelu never subtract it; topk, batch_topk and gated always
// do), the file's b_dec W_enc is folded into the encoder bias (b_gate and
// b_mag for gated), computed in float64 and rounded once, so the
// pre-activations agree to float32 rounding rather than bit for bit.
// jumprelu's log_threshold is chosen so that exp(log_threshold) reproduces
// the file's threshold exactly where a float32 log_threshold can (always for
// files ExportSaeLens wrote); thresholds <= 0, which SAELens's ReLU makes
// equivalent to 0, become theta = 0 (log_threshold = -inf). Tensors stored as
// float16, bfloat16 or float64 are converted to float32 (float64 rounds) and
// the SAE computes in float32 whatever cfg.json's "dtype" says.
// "reshape_activations": "hook_z" is accepted: it only flattens attention
// heads, and saelab works on the flattened [n_heads * d_head] vectors.
//
// Errors name the file and the key or tensor at fault: NotFound for a
// missing cfg.json, sae_weights.safetensors or tensor (e.g. jumprelu's
// `threshold`); InvalidArgument for JSON that does not parse, a missing or
// mistyped key, an architecture saelab cannot run (e.g. "batchtopk",
// SAELens's training form: save its inference form, "jumprelu"),
// normalize_activations other than "none" (fold the scaling factor into the
// weights first), finetuning_scaling_factor, rescale_acts_by_decoder_norm,
// an activation_fn other than relu for standard/jumprelu/gated, a dtype
// other than float32/float16/bfloat16/float64, a tensor whose shape does
// not match d_in/d_sae, an unexpected tensor, a NaN threshold, or a "saelab"
// object that contradicts the SAELens keys.
absl::StatusOr<std::unique_ptr<Sae>> ImportSaeLens(const std::string& dir,
                                                   SaeConfig* config = nullptr);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERCHANGE_SAELENS_H_
