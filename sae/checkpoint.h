// Trained-SAE files: a directory with sae.safetensors (every parameter and
// buffer by its stable name, plus input_scale) and sae_config.textproto (the
// resolved SaeConfig). sae.safetensors is written last, so its presence
// means the SAE is complete.
//
//   RETURN_IF_ERROR(SaveSae(dir, *sae, config));
//   SaeConfig config;
//   ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, LoadSae(dir, &config));
#ifndef SAELAB_SAE_CHECKPOINT_H_
#define SAELAB_SAE_CHECKPOINT_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "sae/sae_config.pb.h"
#include "harness/safetensors.h"
#include "sae/sae.h"

namespace saelab {

// Writes dir/sae_config.textproto then dir/sae.safetensors (atomically each);
// creates dir. Metadata records architecture, d_in and n_latents.
absl::Status SaveSae(const std::string& dir, Sae& sae, const SaeConfig& config);

// True if dir holds a complete saved SAE.
bool HasSavedSae(const std::string& dir);

// Loads a saved SAE; fills *config if non-null. Errors name the file and the
// tensor or field at fault (missing tensor, wrong shape, wrong dtype).
absl::StatusOr<std::unique_ptr<Sae>> LoadSae(const std::string& dir, SaeConfig* config = nullptr);

// Copies tensors named "<prefix><name>" from `contents` into the SAE's
// tensors of the same name, checking shapes and dtypes; errors name `path`.
absl::Status LoadSaeTensors(const SafetensorsContents& contents, const std::string& path,
                            const std::string& prefix, Sae& sae);

}  // namespace saelab

#endif  // SAELAB_SAE_CHECKPOINT_H_
