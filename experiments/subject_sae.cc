#include "experiments/subject_sae.h"

#include "data/activations/subject_data.h"
#include "eval/downstream.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
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
  // Mean ablation replaces the hook's activation by its mean over the
  // training rows (the store's statistics), or over the evaluation rows when
  // streaming.
  const torch::Tensor mean = data.store != nullptr ? data.store->mean() : data.eval_rows.mean(0);
  const DownstreamEvalConfig& downstream = config.downstream_eval();
  absl::Status downstream_status;
  RETURN_IF_ERROR(RunSweeps(
      config.sweeps(), *data.source, data.eval_rows, config.reconstruction_eval(), run_dir,
      {"nmse", "dead_fraction", "delta_loss"}, seeds, result, [&](TrainedSae& trained) {
        auto& metrics = *trained.result->mutable_metrics();
        // Training tokens relative to one pass over the training rows.
        metrics["epochs"] = static_cast<double>(trained.result->train_tokens()) / train_rows;
        if (downstream.eval_contexts() == 0 || !downstream_status.ok()) return;
        PhaseClock clock;
        absl::StatusOr<DownstreamMetrics> core = EvaluateDownstream(
            data.model, data.hook_name, *trained.sae, data.val_contexts, mean, downstream);
        if (!core.ok()) {
          downstream_status = core.status();
          return;
        }
        core->WriteTo(trained.result);
        RecordPhase("downstream/" + trained.result->name(), clock.Seconds(),
                    result->mutable_provenance());
        Log("%-28s ce %.4f -> %.4f  delta_loss %.4f  loss_recovered %.4f  kl %.4f",
            trained.result->name(), core->ce_clean, core->ce_spliced, core->delta_loss,
            core->loss_recovered, core->kl_mean);
      }));
  return downstream_status;
}

SAELAB_REGISTER_EXPERIMENT(subject_sae, SubjectSaeConfig, RunSubjectSae,
                           "results/plot_subject_sae.py");

}  // namespace saelab
