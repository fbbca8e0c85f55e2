#include "experiments/subject_sae.h"

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activations/subject_data.h"
#include "experiments/analysis.h"
#include "experiments/feature_splitting.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
#include "experiments/subject_evaluations.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// The sweeps at one hook: its own data (store), evaluations and SAEs.
// With `prefix_names`, SAE and series names start with "<hook>.".
// harvest_also: the other hooks, whose stores the first hook's harvest
// writes in the same pass over the model.
absl::Status RunAtHook(const SubjectSaeConfig& config, const std::string& hook,
                       bool prefix_names, const std::string& run_dir, SeedTree* seeds,
                       ExperimentResult* result, const std::vector<std::string>& harvest_also) {
  SubjectActivationsConfig activations = config.activations();
  activations.set_hook_name(hook);
  // One training stream seed for every hook: the same shuffle of contexts.
  ASSIGN_OR_RETURN(SubjectData data,
                   OpenSubjectData(activations, seeds->Derive("data/train_stream"),
                                   result->mutable_provenance(), harvest_also));
  if (!result->has_activation_data()) *result->mutable_activation_data() = data.summary;
  const double train_rows = static_cast<double>(data.summary.train_rows());
  ASSIGN_OR_RETURN(std::unique_ptr<SubjectEvaluations> evaluations,
                   SubjectEvaluations::Create(config, data, run_dir, seeds, result));
  google::protobuf::RepeatedPtrField<SaeSweep> sweeps = config.sweeps();
  if (prefix_names) {
    for (SaeSweep& sweep : sweeps) {
      sweep.mutable_base()->set_name(absl::StrCat(hook, ".", sweep.base().name()));
    }
  }
  const std::string splitting_sweep =
      !config.has_feature_splitting() ? ""
      : config.feature_splitting().sweep().empty() ? sweeps[0].base().name()
                                                   : config.feature_splitting().sweep();
  std::vector<SplittingSae> splitting;
  absl::Status evaluation_status;
  RETURN_IF_ERROR(RunSweeps(
      sweeps, *data.source, data.eval_rows, config.reconstruction_eval(), run_dir,
      {"nmse", "dead_fraction", "delta_loss"}, seeds, result, [&](TrainedSae& trained) {
        trained.result->set_hook_name(hook);
        if (prefix_names) {  // the sweep as configured, the hook beside it
          trained.result->set_sweep(trained.result->sweep().substr(hook.size() + 1));
        }
        auto& metrics = *trained.result->mutable_metrics();
        // Training tokens relative to one pass over the training rows.
        metrics["epochs"] = static_cast<double>(trained.result->train_tokens()) / train_rows;
        if (evaluation_status.ok()) evaluation_status = evaluations->Evaluate(trained);
        if (trained.result->sweep() == splitting_sweep && trained.result->seed_index() == 0) {
          splitting.push_back({std::move(trained.sae), trained.result});
        }
      },
      config.train_together()));
  RETURN_IF_ERROR(evaluation_status);
  if (config.has_feature_splitting()) {
    PhaseClock clock;
    RETURN_IF_ERROR(AnalyzeFeatureSplitting(config.feature_splitting(), splitting, data.eval_rows,
                                            data.val_contexts, data.tokenizer,
                                            seeds->Derive("feature_splitting"),
                                            result->mutable_feature_splitting()));
    SummarizeGroups(result);  // again, with the split_* metrics
    RecordPhase("feature_splitting", clock.Seconds(), result->mutable_provenance());
  }
  return evaluations->Finish();
}

}  // namespace

absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result) {
  if (config.has_feature_splitting() && !config.hooks().empty()) {
    return absl::InvalidArgumentError(
        "feature_splitting compares the dictionaries of one hook; leave `hooks` empty");
  }
  if (config.activations().has_target_hook_name() && !config.hooks().empty()) {
    return absl::InvalidArgumentError(
        "activations.target_hook_name pairs one input hook with one target; leave `hooks` empty");
  }
  if (config.sweeps().empty()) {
    return absl::InvalidArgumentError("subject_sae needs at least one sweep");
  }
  if (config.hooks().empty()) {
    RETURN_IF_ERROR(
        RunAtHook(config, config.activations().hook_name(), false, run_dir, seeds, result, {}));
  } else {
    // Every hook's store from one pass over the model, at the first hook.
    const std::vector<std::string> hooks(config.hooks().begin(), config.hooks().end());
    for (size_t i = 0; i < hooks.size(); ++i) {
      Log("hook %s", hooks[i].c_str());
      RETURN_IF_ERROR(RunAtHook(config, hooks[i], true, run_dir, seeds, result,
                                i == 0 ? hooks : std::vector<std::string>{}));
    }
  }
  return FitPowerLaws(config.fits(), seeds->Derive("fits"), result);
}

SAELAB_REGISTER_EXPERIMENT(subject_sae, SubjectSaeConfig, RunSubjectSae,
                           "results/plot_subject_sae.py");

}  // namespace saelab
