#include "experiments/subject_sae.h"

#include "data/activations/subject_data.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
#include "harness/status_macros.h"

namespace saelab {

absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result) {
  ASSIGN_OR_RETURN(SubjectData data,
                   OpenSubjectData(config.activations(), seeds->Derive("data/train_stream"),
                                   result->mutable_provenance()));
  *result->mutable_activation_data() = data.summary;
  const double train_rows = static_cast<double>(data.summary.train_rows());
  return RunSweeps(config.sweeps(), *data.source, data.eval_rows, config.reconstruction_eval(),
                   run_dir, {"nmse", "dead_fraction"}, seeds, result, [&](TrainedSae& trained) {
                     // Training tokens relative to one pass over the training rows.
                     (*trained.result->mutable_metrics())["epochs"] =
                         static_cast<double>(trained.result->train_tokens()) / train_rows;
                   });
}

SAELAB_REGISTER_EXPERIMENT(subject_sae, SubjectSaeConfig, RunSubjectSae,
                           "results/plot_subject_sae.py");

}  // namespace saelab
