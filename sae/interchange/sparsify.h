// Imports SAEs trained with EleutherAI's sparsify (formerly EleutherAI/sae)
// as saelab TopK SAEs.
//
//   SaeConfig config;
//   ASSIGN_OR_RETURN(std::unique_ptr<Sae> topk, ImportSparsify("/ckpt/layers.6", &config));
#ifndef SAELAB_SAE_INTERCHANGE_SPARSIFY_H_
#define SAELAB_SAE_INTERCHANGE_SPARSIFY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {

// Reads a sparsify directory, as SparseCoder.save_to_disk writes it:
// cfg.json {"k", "num_latents" (0 = d_in * "expansion_factor"), "d_in",
// "activation", "multi_topk", ...} and sae.safetensors {encoder.weight
// [n, d_in] (nn.Linear layout), encoder.bias [n], W_dec [n, d_in], b_dec
// [d_in]}. sparsify encodes f = TopK_k(ReLU((x - b_dec) encoder.weight^T +
// encoder.bias)), which equals saelab's TopK (ReLU after TopK selects the
// same values), and decodes x_hat = f W_dec + b_dec. Builds a saelab TopK
// SAE with W_enc = encoder.weight^T (exact copies, input_scale 1). Fills
// *config (if non-null) with the resolved config: name = the directory's
// last component, n_latents = n, normalize_input false, TopK's defaults with
// topk.k = k (multi_topk true -> multi_topk_factor 4, as sparsify's
// Multi-TopK uses 4k). d_in and n may be absent from cfg.json and are then
// read off encoder.weight.
//
// Transcoders ("transcode": true: no pre-encoder bias) import as saelab
// TopK transcoders (SaeConfig.transcoder); "skip_connection": true adds
// W_skip [d_in, d_in] to the file, which sparsify applies as x W_skip^T and
// saelab stores transposed. A skip connection without "transcode" (an
// autoencoder with a skip connection and a pre-encoder bias) has no saelab
// form and is refused.
//
// Errors name the file and key or tensor: NotFound for a missing file or
// tensor; InvalidArgument for a missing/mistyped "k", an "activation" other
// than "topk" (groupmax), "skip_connection" without "transcode", "signed",
// "embed_skip" or "gram_lookup", shapes that disagree with cfg.json, or an
// unexpected tensor.
absl::StatusOr<std::unique_ptr<Sae>> ImportSparsify(const std::string& dir,
                                                    SaeConfig* config = nullptr);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERCHANGE_SPARSIFY_H_
