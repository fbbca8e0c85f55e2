// Loads an SAE from a directory in whichever layout it was written: saelab's
// own (sae/checkpoint.h), SAELens's (saelens.h) or EleutherAI sparsify's
// (sparsify.h), told apart by the files each layout holds. What
// `saelab evaluate`, `export` and `inspect` accept as --sae.
//
//   ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory("/runs/x/saes/topk_k32"));
//   std::printf("%s SAE, %s layout\n", ArchitectureName(loaded.config).c_str(),
//               SaeLayoutName(loaded.layout));
#ifndef SAELAB_SAE_INTERCHANGE_SAE_DIRECTORY_H_
#define SAELAB_SAE_INTERCHANGE_SAE_DIRECTORY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {

enum class SaeLayout {
  kSaelab,    // sae_config.textproto + sae.safetensors
  kSaeLens,   // cfg.json + sae_weights.safetensors
  kSparsify,  // cfg.json + sae.safetensors
};

// "saelab", "SAELens", "sparsify".
const char* SaeLayoutName(SaeLayout layout);

struct LoadedSae {
  std::unique_ptr<Sae> sae;
  // The resolved config (for foreign layouts, as the importer builds it).
  SaeConfig config;
  SaeLayout layout = SaeLayout::kSaelab;
};

// Detects the layout of `dir` (in the order listed above: a directory with
// saelab's files is read as saelab even if it also holds a cfg.json) and
// loads the SAE with that layout's loader, whose errors name the file.
// NotFound naming `dir` and the files each layout needs when none matches.
absl::StatusOr<LoadedSae> LoadSaeDirectory(const std::string& dir);

}  // namespace saelab

#endif  // SAELAB_SAE_INTERCHANGE_SAE_DIRECTORY_H_
