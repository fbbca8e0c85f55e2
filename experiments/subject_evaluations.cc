#include "experiments/subject_evaluations.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "eval/ablation.h"
#include "eval/classification.h"
#include "eval/downstream.h"
#include "eval/probing.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<std::unique_ptr<SubjectEvaluations>> SubjectEvaluations::Create(
    const SubjectSaeConfig& config, const SubjectData& data, const std::string& run_dir,
    SeedTree* seeds, ExperimentResult* result) {
  std::unique_ptr<SubjectEvaluations> evals(
      new SubjectEvaluations(config, data, run_dir, seeds, result));
  // Mean ablation replaces the hook's activation by its mean over the
  // training rows (the store's statistics), or over the evaluation rows when
  // streaming.
  evals->mean_activation_ = data.store != nullptr ? data.store->mean() : data.eval_rows.mean(0);
  if (data.target_location) {
    // Paired rows [input | target]: a transcoder stands in for what
    // produces the target, so that is what the ablations replace.
    const int64_t d = data.model.config().n_embd;
    evals->mean_activation_ = evals->mean_activation_.narrow(0, d, d).contiguous();
    if (config.has_probe_eval() || config.has_classification_eval() ||
        config.has_absorption_eval() || config.has_steering_eval() ||
        config.has_ablation_eval() || config.has_dashboard() || config.has_feature_splitting()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activations.target_hook_name ", data.target_hook_name,
          " (transcoders): only the reconstruction and downstream evaluations run on transcoders; "
          "remove the probe, classification, absorption, steering, ablation, dashboard and "
          "feature_splitting settings"));
    }
  }
  Provenance* provenance = result->mutable_provenance();
  if (config.has_probe_eval()) {
    PhaseClock clock;
    ASSIGN_OR_RETURN(evals->probe_tasks_,
                     BuildProbeDatasets(data.model, data.tokenizer, data.hook_name,
                                        config.probe_eval(), seeds->Derive("eval/probe_data")));
    RecordPhase("eval_data/probes", clock.Seconds(), provenance);
  }
  if (config.has_classification_eval()) {
    PhaseClock clock;
    ProbeEvalConfig data_config = config.classification_eval().data();
    data_config.clear_tasks();
    for (const std::string& task : ClassificationTasks(config.classification_eval())) {
      data_config.add_tasks(task);
    }
    ASSIGN_OR_RETURN(evals->classification_tasks_,
                     BuildProbeDatasets(data.model, data.tokenizer, data.hook_name, data_config,
                                        seeds->Derive("eval/classification_data")));
    RecordPhase("eval_data/classification", clock.Seconds(), provenance);
  }
  if (config.has_absorption_eval()) {
    ASSIGN_OR_RETURN(FirstLetterData words,
                     BuildFirstLetterData(data.model, data.tokenizer, data.hook_name,
                                          config.absorption_eval()));
    evals->first_letters_ = std::move(words);
  }
  if (config.has_steering_eval()) {
    const SteeringEvalConfig& steering = config.steering_eval();
    ASSIGN_OR_RETURN(ConceptTexts texts,
                     BuiltinConceptTexts(steering.concept(), data.tokenizer,
                                         steering.context_length(), steering.finder_contexts()));
    evals->concept_texts_ = std::move(texts);
  }
  return evals;
}

absl::Status SubjectEvaluations::Evaluate(TrainedSae& trained) {
  Sae& sae = *trained.sae;
  SaeResult* out = trained.result;
  const std::string& name = out->name();
  Provenance* provenance = result_->mutable_provenance();
  // Each evaluation's seed depends on the SAE's name, so adding an SAE to a
  // sweep never changes another one's numbers.
  auto seed_for = [&](const std::string& evaluation) {
    return seeds_->Derive(absl::StrCat("eval/", evaluation, "/", name));
  };
  auto timed = [&](const std::string& phase, const auto& body) -> absl::Status {
    PhaseClock clock;
    RETURN_IF_ERROR(body());
    RecordPhase(absl::StrCat(phase, "/", name), clock.Seconds(), provenance);
    return absl::OkStatus();
  };
  if (config_.downstream_eval().eval_contexts() != 0) {
    RETURN_IF_ERROR(timed("downstream", [&]() -> absl::Status {
      // A transcoder reads hook_name and replaces the target hook's activation.
      const bool paired = data_.target_location.has_value();
      ASSIGN_OR_RETURN(
          DownstreamMetrics core,
          EvaluateDownstream(data_.model, paired ? data_.target_hook_name : data_.hook_name, sae,
                             data_.val_contexts, mean_activation_, config_.downstream_eval(),
                             paired ? data_.hook_name : ""));
      core.WriteTo(out);
      Log("%-28s ce %.4f -> %.4f  delta_loss %.4f  loss_recovered %.4f  kl %.4f", name,
          core.ce_clean, core.ce_spliced, core.delta_loss, core.loss_recovered, core.kl_mean);
      return absl::OkStatus();
    }));
  }
  absl::flat_hash_map<int64_t, LatentAnnotation> annotations;
  if (config_.has_probe_eval()) {
    RETURN_IF_ERROR(timed("probes", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(std::vector<ProbeTaskScores> scores,
                       EvaluateProbes(sae, probe_tasks_, config_.probe_eval(), seed_for("probes")));
      WriteProbeResults(scores, out);
      for (const ProbeTaskScores& s : scores) {
        auto [it, inserted] = annotations.try_emplace(s.best_latent);
        if (inserted || s.probe_loss < it->second.probe_loss) {
          it->second = LatentAnnotation{s.task, s.probe_loss};
        }
      }
      Log("%-28s probe loss %.4f  dense probe accuracy %.3f", name,
          out->metrics().at("probe_loss"), out->metrics().at("dense_probe_accuracy"));
      return absl::OkStatus();
    }));
  }
  if (config_.has_ablation_eval()) {
    RETURN_IF_ERROR(timed("ablation", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(AblationSparsity ablation,
                       EvaluateAblationSparsity(data_.model, data_.hook_name, sae,
                                                data_.val_contexts, config_.ablation_eval(),
                                                seed_for("ablation")));
      ablation.WriteTo(out);
      return absl::OkStatus();
    }));
  }
  if (first_letters_.has_value()) {
    RETURN_IF_ERROR(timed("absorption", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(AbsorptionScores absorption,
                       EvaluateAbsorption(sae, *first_letters_, config_.absorption_eval()));
      absorption.WriteTo(out);
      Log("%-28s absorption fraction %.4f  full absorption %.4f", name,
          absorption.mean_absorption_fraction, absorption.mean_full_absorption_rate);
      return absl::OkStatus();
    }));
  }
  if (!classification_tasks_.empty()) {
    RETURN_IF_ERROR(timed("classification", [&]() -> absl::Status {
      std::vector<ClassificationScores> scores;
      for (const ProbeDataset& task : classification_tasks_) {
        ASSIGN_OR_RETURN(ClassificationScores s,
                         EvaluateClassification(sae, task, config_.classification_eval()));
        scores.push_back(s);
      }
      WriteClassificationResults(scores, out);
      return absl::OkStatus();
    }));
  }
  if (concept_texts_.has_value()) {
    RETURN_IF_ERROR(timed("steering", [&]() -> absl::Status {
      const SteeringEvalConfig& config = config_.steering_eval();
      ASSIGN_OR_RETURN(ConceptLatent latent,
                       FindConceptLatent(data_.model, data_.hook_name, sae, *concept_texts_));
      const std::string pattern = config.concept_pattern().empty() ? concept_texts_->pattern
                                                                   : config.concept_pattern();
      ASSIGN_OR_RETURN(SteeringScores steering,
                       SteerLatent(data_.model, data_.tokenizer, data_.hook_name, sae, latent,
                                   pattern, config, seed_for("steering")));
      steering.concept = config.concept();
      steering.WriteTo(out);
      Log("%-28s steering latent %lld: concept rate %.3f -> %.3f", name,
          static_cast<long long>(latent.latent), steering.unsteered.concept_rate,
          out->metrics().at("steering_concept_rate"));
      return absl::OkStatus();
    }));
  }
  if (config_.has_dashboard()) {
    RETURN_IF_ERROR(timed("dashboard", [&]() -> absl::Status {
      ASSIGN_OR_RETURN(SaeDashboard dashboard,
                       BuildDashboard(data_.model, data_.tokenizer, data_.hook_name, sae,
                                      data_.val_contexts,
                                      DashboardOptionsFromConfig(config_.dashboard()),
                                      annotations));
      dashboard.name = name;
      const std::string page = absl::StrCat(name, ".html");
      RETURN_IF_ERROR(MakeDirs(run_dir_ + "/dashboards"));
      RETURN_IF_ERROR(WriteDashboardHtml(dashboard, absl::StrCat(run_dir_, "/dashboards/", page)));
      out->set_dashboard(absl::StrCat("dashboards/", page));
      dashboards_.push_back(IndexEntryFor(dashboard, page));
      return absl::OkStatus();
    }));
  }
  return absl::OkStatus();
}

absl::Status SubjectEvaluations::Finish() {
  if (dashboards_.empty()) return absl::OkStatus();
  return WriteDashboardIndex(dashboards_, absl::StrCat(run_dir_, "/dashboards/index.html"));
}

}  // namespace saelab
