// saelab inspect: what a run directory or an SAE directory holds, readable.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "experiments/summary.h"
#include "harness/file_io.h"
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
    R"(saelab inspect --dir=DIR

Prints what DIR holds, for a person to read:
  an experiment run directory (result.pb): its name, provenance (commit,
    config hash, seeds, inputs, timings, command), the summary table of its
    SAEs and its paper claims;
  an SAE directory (saelab, SAELens or sparsify layout): its layout,
    architecture, sizes and config, and, for a saelab train output, the
    metrics and provenance of its result.pb.

Example:
  saelab inspect --dir=results/runs/quickstart/20261201T120000Z-3f2a9c1b
  saelab inspect --dir=runs/topk_k32)";

std::string FormatProvenance(const Provenance& p) {
  std::string out;
  absl::StrAppendFormat(&out, "  commit      %s%s\n", p.git_commit(),
                        p.git_dirty() ? " (uncommitted changes)" : "");
  absl::StrAppendFormat(&out, "  config      sha256 %s\n", p.config_sha256());
  absl::StrAppendFormat(&out, "  started     %s on %s (%s, %d cores, %d torch threads%s)\n",
                        p.start_time(), p.hostname(), p.cpu_model(), p.cpu_cores(),
                        p.torch_threads(), p.gpu().empty() ? "" : absl::StrCat(", ", p.gpu()));
  absl::StrAppendFormat(&out, "  versions    libtorch %s, protobuf %s, %s\n", p.libtorch_version(),
                        p.protobuf_version(), p.compiler());
  absl::StrAppendFormat(&out, "  root seed   %d (%d derived)\n", p.root_seed(), p.seeds_size());
  for (const InputHash& input : p.inputs()) {
    absl::StrAppendFormat(&out, "  input       %s sha256 %s\n", input.name(), input.sha256());
  }
  double total = 0;
  for (const PhaseTiming& t : p.timings()) total += t.wall_seconds();
  absl::StrAppendFormat(&out, "  wall time   %.1f s over %d phases\n", total, p.timings_size());
  absl::StrAppendFormat(&out, "  command     %s\n", p.command_line());
  return out;
}

std::string FormatResult(const ExperimentResult& result) {
  std::string out = absl::StrCat(result.experiment(), " '", result.name(), "'\n",
                                 FormatProvenance(result.provenance()));
  const std::string table = FormatSummaryTable(result);
  if (!table.empty()) absl::StrAppend(&out, "\n", table, "\n");
  if (result.saes_size() == 1) {
    absl::StrAppend(&out, "metrics of ", result.saes(0).name(), " (", result.saes(0).eval_tokens(),
                    " held-out rows):\n", FormatMetrics(result.saes(0)));
  }
  const std::string claims = FormatClaims(result);
  if (!claims.empty()) absl::StrAppend(&out, "\n", claims, "\n");
  return out;
}

absl::Status Run(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("dir"));
  const std::string dir = flags.String("dir");
  const bool has_result = PathExists(dir + "/result.pb");
  const bool is_sae = PathExists(dir + "/sae_config.textproto") || PathExists(dir + "/cfg.json");
  if (!has_result && !is_sae) {
    return absl::NotFoundError(absl::StrCat(
        dir, ": neither a run directory (result.pb) nor an SAE directory (sae_config.textproto "
             "or cfg.json)",
        PathExists(dir) ? "" : "; the directory does not exist"));
  }
  std::string out;
  if (is_sae) {
    ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory(dir));
    absl::StrAppendFormat(&out, "%s SAE '%s' in %s's layout: d_in %d, n_latents %d\n",
                          ArchitectureName(loaded.config), loaded.config.name(),
                          SaeLayoutName(loaded.layout), loaded.sae->d_in(),
                          loaded.config.n_latents());
    absl::StrAppend(&out, "config:\n", ToTextProto(loaded.config), "\n");
  }
  if (has_result) {
    ExperimentResult result;
    RETURN_IF_ERROR(ReadBinaryProtoFile(dir + "/result.pb", &result));
    absl::StrAppend(&out, FormatResult(result));
  }
  std::fputs(out.c_str(), stdout);
  return absl::OkStatus();
}

}  // namespace

Command InspectCommand() {
  return {
      "inspect",
      "Show a run or SAE directory: config, provenance, metrics",
      kUsage,
      {{"dir", FlagType::kString, "", "A run directory or an SAE directory."}},
      &Run,
  };
}

}  // namespace saelab
