// saelab evaluate: an SAE's reconstruction metrics on activations from a file.
#include <torch/types.h>

#include <cstdio>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/activations/activation_files.h"
#include "data/subject_model/gpt2_model.h"
#include "eval/downstream.h"
#include "eval/eval_config.pb.h"
#include "harness/npy.h"
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
                [--model_dir=DIR --hook=HOOK --contexts=TOKENS.npy]

Encodes and decodes every selected row with the SAE in DIR (saelab's layout,
SAELens's cfg.json + sae_weights.safetensors, or sparsify's cfg.json +
sae.safetensors) and prints its reconstruction metrics: mse, nmse, fvu,
explained variance, l0, dead fraction (docs/metrics.md defines each). The
activations are read as by saelab train (.npy, .safetensors with --tensor,
or a store directory). With --out, writes the metrics and provenance as a
result proto (.pb binary, .textproto text) that saelab inspect and
results/read_results.py read.

With --model_dir, --hook and --contexts ([N, L] token ids, each context
starting with <|endoftext|>, as the tokens.npy `saelab harvest` writes), also
the downstream metrics with the SAE spliced into the model at the hook:
ce_clean, ce_spliced, delta_loss, loss_recovered (against zero ablation),
KL divergence (docs/metrics.md). Mean ablation uses the mean of the
selected activation rows.

Example, the held-out rows of a saelab train run, through its SAELens copy:
  saelab evaluate --sae=runs/topk_k32/saelens --activations=acts.npy --rows=-6553:
Example, what splicing the SAE into the model costs:
  saelab evaluate --sae=runs/topk_k32 --activations=acts/blocks.6.hook_resid_post.npy \
      --model_dir=/models/gpt2 --hook=blocks.6.hook_resid_post --contexts=acts/tokens.npy)";

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
  const bool downstream = !flags.String("model_dir").empty();
  if (downstream != !flags.String("hook").empty() ||
      downstream != !flags.String("contexts").empty()) {
    return UsageError("downstream metrics need --model_dir, --hook and --contexts together");
  }
  PhaseClock clock;
  ASSIGN_OR_RETURN(SaeResult sae_result,
                   EvaluateToResult(*loaded.sae, loaded.config, x));
  sae_result.set_checkpoint(flags.String("sae"));
  if (downstream) {
    ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(flags.String("model_dir")));
    ASSIGN_OR_RETURN(torch::Tensor contexts, ReadNpyTensor(flags.String("contexts")));
    if (contexts.dim() != 2 ||
        (contexts.scalar_type() != torch::kInt && contexts.scalar_type() != torch::kLong)) {
      return absl::InvalidArgumentError(absl::StrCat(
          flags.String("contexts"), ": token contexts must be a 2-D int32 or int64 array [N, L], not ",
          c10::toString(contexts.scalar_type()), " ", c10::str(contexts.sizes())));
    }
    DownstreamEvalConfig config;
    config.set_eval_contexts(flags.Int("eval_contexts"));
    config.set_batch_contexts(flags.Int("batch_contexts"));
    torch::NoGradGuard no_grad;
    ASSIGN_OR_RETURN(DownstreamMetrics metrics,
                     EvaluateDownstream(model, flags.String("hook"), *loaded.sae,
                                        contexts.to(torch::kLong), x.mean(0), config));
    metrics.WriteTo(&sae_result);
    sae_result.set_hook_name(flags.String("hook"));
  }
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
          {"model_dir", FlagType::kString, "",
           "GPT-2 directory: also measure the SAE spliced into this model."},
          {"hook", FlagType::kString, "", "The hook the SAE reads (with --model_dir)."},
          {"contexts", FlagType::kString, "",
           "Token contexts [N, L] as .npy, BOS first (with --model_dir)."},
          {"eval_contexts", FlagType::kInt, "256", "Contexts scored for downstream (-1: all)."},
          {"batch_contexts", FlagType::kInt, "32", "Contexts per forward pass."},
      },
      &Run,
  };
}

}  // namespace saelab
