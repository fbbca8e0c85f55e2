// saelab export / saelab import: SAEs to SAELens's layout, and from SAELens's
// or sparsify's into saelab's.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/interchange/sae_directory.h"
#include "sae/interchange/saelens.h"
#include "tools/command.h"

namespace saelab {
namespace {

constexpr char kExportUsage[] =
    R"(saelab export --sae=DIR --out=DIR [--format=saelens]

Writes the SAE in DIR (any layout saelab reads) in SAELens's layout:
cfg.json + sae_weights.safetensors, which SAELens >= 6 loads with
SAE.load_from_disk. Every architecture maps (sae/interchange/saelens.h says
how); saelab's input scale is folded into the weights, so the exported SAE
takes raw activations. cfg.json keeps saelab's exact config, so
`saelab import` restores it.

Example:
  saelab export --sae=runs/topk_k32 --out=/tmp/topk_k32_saelens
  # Python: sae_lens.SAE.load_from_disk("/tmp/topk_k32_saelens"))";

constexpr char kImportUsage[] =
    R"(saelab import --in=DIR --out=DIR [--name=NAME]

Reads an SAE written by SAELens (cfg.json + sae_weights.safetensors, SAELens
>= 6 or older configs) or by EleutherAI sparsify (cfg.json + sae.safetensors;
one hook's directory, e.g. checkpoints/layers.6) and writes it in saelab's
layout (sae.safetensors + sae_config.textproto), which saelab evaluate and
the experiments read. Refused with the file and key named: architectures,
activation functions or normalisations saelab cannot run as they are.

Example:
  saelab import --in=sparsify_ckpt/layers.6 --out=imported/layer6
  saelab evaluate --sae=imported/layer6 --activations=acts.npy)";

absl::Status RunExport(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("sae"));
  RETURN_IF_ERROR(flags.Require("out"));
  if (flags.String("format") != "saelens") {
    return UsageError(absl::StrCat("--format=", flags.String("format"),
                                   ": saelab exports to saelens only (sparsify's layout holds "
                                   "TopK SAEs; import reads it)"));
  }
  ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory(flags.String("sae")));
  RETURN_IF_ERROR(ExportSaeLens(*loaded.sae, loaded.config, flags.String("out")));
  std::printf("wrote %s: %s SAE '%s' (d_in %lld, d_sae %lld) in SAELens's layout\n",
              flags.String("out").c_str(), ArchitectureName(loaded.config).c_str(),
              loaded.config.name().c_str(), static_cast<long long>(loaded.sae->d_in()),
              static_cast<long long>(loaded.config.n_latents()));
  return absl::OkStatus();
}

absl::Status RunImport(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("in"));
  RETURN_IF_ERROR(flags.Require("out"));
  ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory(flags.String("in")));
  if (!flags.String("name").empty()) loaded.config.set_name(flags.String("name"));
  RETURN_IF_ERROR(SaveSae(flags.String("out"), *loaded.sae, loaded.config));
  std::printf("wrote %s: %s SAE '%s' (d_in %lld, n_latents %lld) from %s's layout\n",
              flags.String("out").c_str(), ArchitectureName(loaded.config).c_str(),
              loaded.config.name().c_str(), static_cast<long long>(loaded.sae->d_in()),
              static_cast<long long>(loaded.config.n_latents()), SaeLayoutName(loaded.layout));
  return absl::OkStatus();
}

}  // namespace

Command ExportCommand() {
  return {
      "export",
      "Write an SAE in SAELens's layout",
      kExportUsage,
      {
          {"sae", FlagType::kString, "", "SAE directory (saelab, SAELens or sparsify layout)."},
          {"out", FlagType::kString, "", "Directory to write."},
          {"format", FlagType::kString, "saelens", "Target layout: saelens."},
      },
      &RunExport,
  };
}

Command ImportCommand() {
  return {
      "import",
      "Read a SAELens or sparsify SAE into saelab's layout",
      kImportUsage,
      {
          {"in", FlagType::kString, "", "SAE directory in SAELens's or sparsify's layout."},
          {"out", FlagType::kString, "", "Directory to write in saelab's layout."},
          {"name", FlagType::kString, "", "Rename the SAE (default: the imported name)."},
      },
      &RunImport,
  };
}

}  // namespace saelab
