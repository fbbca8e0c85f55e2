#include "experiments/subject_sae.h"

#include "data/activations/subject_data.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
#include "experiments/subject_evaluations.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {

absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result) {
  ASSIGN_OR_RETURN(SubjectData data,
                   OpenSubjectData(config.activations(), seeds->Derive("data/train_stream"),
                                   result->mutable_provenance()));
  *result->mutable_activation_data() = data.summary;
  const double train_rows = static_cast<double>(data.summary.train_rows());
  ASSIGN_OR_RETURN(std::unique_ptr<SubjectEvaluations> evaluations,
                   SubjectEvaluations::Create(config, data, run_dir, seeds, result));
  absl::Status evaluation_status;
  RETURN_IF_ERROR(RunSweeps(
      config.sweeps(), *data.source, data.eval_rows, config.reconstruction_eval(), run_dir,
      {"nmse", "dead_fraction", "delta_loss"}, seeds, result, [&](TrainedSae& trained) {
        auto& metrics = *trained.result->mutable_metrics();
        // Training tokens relative to one pass over the training rows.
        metrics["epochs"] = static_cast<double>(trained.result->train_tokens()) / train_rows;
        if (evaluation_status.ok()) evaluation_status = evaluations->Evaluate(trained);
      }));
  RETURN_IF_ERROR(evaluation_status);
  return evaluations->Finish();
}

SAELAB_REGISTER_EXPERIMENT(subject_sae, SubjectSaeConfig, RunSubjectSae,
                           "results/plot_subject_sae.py");

}  // namespace saelab
