#include "sae/interchange/sae_directory.h"

#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"
#include "sae/checkpoint.h"
#include "sae/interchange/saelens.h"
#include "sae/interchange/sparsify.h"

namespace saelab {

const char* SaeLayoutName(SaeLayout layout) {
  switch (layout) {
    case SaeLayout::kSaelab:
      return "saelab";
    case SaeLayout::kSaeLens:
      return "SAELens";
    case SaeLayout::kSparsify:
      return "sparsify";
  }
  return "";
}

absl::StatusOr<LoadedSae> LoadSaeDirectory(const std::string& dir) {
  LoadedSae loaded;
  if (PathExists(dir + "/sae_config.textproto") && PathExists(dir + "/sae.safetensors")) {
    loaded.layout = SaeLayout::kSaelab;
    ASSIGN_OR_RETURN(loaded.sae, LoadSae(dir, &loaded.config));
  } else if (PathExists(dir + "/cfg.json") && PathExists(dir + "/sae_weights.safetensors")) {
    loaded.layout = SaeLayout::kSaeLens;
    ASSIGN_OR_RETURN(loaded.sae, ImportSaeLens(dir, &loaded.config));
  } else if (PathExists(dir + "/cfg.json") && PathExists(dir + "/sae.safetensors")) {
    loaded.layout = SaeLayout::kSparsify;
    ASSIGN_OR_RETURN(loaded.sae, ImportSparsify(dir, &loaded.config));
  } else {
    return absl::NotFoundError(absl::StrCat(
        dir, ": not an SAE directory: saelab's holds sae_config.textproto + sae.safetensors, "
             "SAELens's cfg.json + sae_weights.safetensors, sparsify's cfg.json + "
             "sae.safetensors",
        PathExists(dir) ? "" : " (the directory does not exist)"));
  }
  return loaded;
}

}  // namespace saelab
