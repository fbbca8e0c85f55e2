// saelab evaluate: an SAE's reconstruction metrics on activations from a file.
#include <torch/types.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/activations/activation_files.h"
#include "harness/provenance.h"
#include "harness/result.pb.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "sae/factory.h"
#include "sae/interchange/sae_directory.h"
#include "tools/command.h"
#include "tools/command_util.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab evaluate --sae=DIR --activations=FILE [--rows=a:b] [--out=RESULT]

Encodes and decodes every selected row with the SAE in DIR (saelab's layout,
SAELens's cfg.json + sae_weights.safetensors, or sparsify's cfg.json +
sae.safetensors) and prints its reconstruction metrics: mse, nmse, fvu,
explained variance, l0, dead fraction (docs/metrics.md defines each). The
activations are read as by saelab train (.npy, .safetensors with --tensor,
or a store directory). With --out, writes the metrics and provenance as a
result proto (.pb binary, .textproto text) that saelab inspect and
results/read_results.py read.

Example, the held-out rows of a saelab train run, through its SAELens copy:
  saelab evaluate --sae=runs/topk_k32/saelens --activations=acts.npy --rows=-6553:)";

absl::Status Run(const CommandLine& flags, const Invocation& invocation) {
  RETURN_IF_ERROR(flags.Require("sae"));
  RETURN_IF_ERROR(flags.Require("activations"));
  const std::string out = flags.String("out");
  if (!out.empty() && !absl::EndsWith(out, ".pb") && !absl::EndsWith(out, ".textproto")) {
    return UsageError(absl::StrCat("--out=", out, " must end in .pb or .textproto"));
  }
  ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory(flags.String("sae")));
  ASSIGN_OR_RETURN(ActivationFiles acts,
                   ActivationFiles::Open(flags.String("activations"), flags.String("tensor")));
  if (acts.d() != loaded.sae->d_in()) {
    return absl::InvalidArgumentError(absl::StrCat(
        acts.path(), ": the activations are ", acts.d(), "-wide, the SAE in ",
        flags.String("sae"), " reads ", loaded.sae->d_in(), " (d_in mismatch)"));
  }
  ASSIGN_OR_RETURN(RowRange range, acts.Range(flags.String("rows")));
  ASSIGN_OR_RETURN(torch::Tensor x, acts.Rows(range));
  ASSIGN_OR_RETURN(std::string acts_sha256, acts.Sha256());
  PhaseClock clock;
  ASSIGN_OR_RETURN(SaeResult sae_result,
                   EvaluateToResult(*loaded.sae, loaded.config, x, acts.path()));
  sae_result.set_checkpoint(flags.String("sae"));
  std::printf("%s (%s, %s layout, n_latents %lld) on %s rows [%lld, %lld):\n%s",
              loaded.config.name().c_str(), ArchitectureName(loaded.config).c_str(),
              SaeLayoutName(loaded.layout), static_cast<long long>(loaded.config.n_latents()),
              acts.path().c_str(), static_cast<long long>(range.begin),
              static_cast<long long>(range.end), FormatMetrics(sae_result).c_str());
  if (out.empty()) return absl::OkStatus();

  ExperimentResult result;
  result.set_name(loaded.config.name());
  result.set_experiment("saelab_evaluate");
  *result.mutable_provenance() =
      CollectProvenance(ProtoSha256(loaded.config), 0, invocation.argc, invocation.argv);
  RecordInput(absl::StrCat("activations ", acts.path()), acts_sha256, result.mutable_provenance());
  RecordPhase("eval", clock.Seconds(), result.mutable_provenance());
  *result.add_saes() = sae_result;
  return absl::EndsWith(out, ".pb") ? WriteBinaryProtoFile(out, result)
                                    : WriteTextProtoFile(out, result);
}

}  // namespace

Command EvaluateCommand() {
  return {
      "evaluate",
      "Reconstruction metrics of an SAE directory on activations",
      kUsage,
      {
          {"sae", FlagType::kString, "", "SAE directory (saelab, SAELens or sparsify layout)."},
          {"activations", FlagType::kString, "",
           "Activations: a .npy file, a .safetensors file or an activation store directory."},
          {"tensor", FlagType::kString, "", "The tensor of a .safetensors file to read."},
          {"rows", FlagType::kString, "", "Rows to evaluate as a slice a:b (default: all)."},
          {"out", FlagType::kString, "", "Also write the result proto here (.pb or .textproto)."},
      },
      &Run,
  };
}

}  // namespace saelab
