// The evaluations of eval/ on each SAE of a subject-model experiment, set up
// once per run: the SAE-independent data (probe tasks, classification tasks,
// first-letter words, concept texts) is built when the evaluator is created
// and reused for every SAE of the sweeps.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<SubjectEvaluations> evals,
//                    SubjectEvaluations::Create(config, data, run_dir, &seeds, result));
//   RunSweeps(..., [&](TrainedSae& trained) { status.Update(evals->Evaluate(trained)); });
//   RETURN_IF_ERROR(evals->Finish());   // the dashboard index
//
// Which evaluations run: downstream (core metrics) unless its eval_contexts
// is 0; every other one when its field is present in the config.
#ifndef SAELAB_EXPERIMENTS_SUBJECT_EVALUATIONS_H_
#define SAELAB_EXPERIMENTS_SUBJECT_EVALUATIONS_H_

#include <torch/types.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/activations/subject_data.h"
#include "eval/absorption.h"
#include "eval/dashboard.h"
#include "eval/probe_data.h"
#include "eval/steering.h"
#include "experiments/experiment_config.pb.h"
#include "experiments/sae_sweep.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

class SubjectEvaluations {
 public:
  // Builds the data the configured evaluations share. `data` and `result`
  // must outlive the evaluator. Errors of the data builders (unknown probe
  // task, unknown concept, ...).
  static absl::StatusOr<std::unique_ptr<SubjectEvaluations>> Create(
      const SubjectSaeConfig& config, const SubjectData& data, const std::string& run_dir,
      SeedTree* seeds, ExperimentResult* result);

  // Every configured evaluation of one SAE, into trained.result (typed
  // results and metrics), each timed into the provenance.
  absl::Status Evaluate(TrainedSae& trained);

  // Writes the dashboard index (if dashboards are on).
  absl::Status Finish();

 private:
  SubjectEvaluations(const SubjectSaeConfig& config, const SubjectData& data,
                     std::string run_dir, SeedTree* seeds, ExperimentResult* result)
      : config_(config), data_(data), run_dir_(std::move(run_dir)), seeds_(seeds),
        result_(result) {}

  const SubjectSaeConfig& config_;
  const SubjectData& data_;
  const std::string run_dir_;
  SeedTree* seeds_;
  ExperimentResult* result_;
  torch::Tensor mean_activation_;
  std::vector<ProbeDataset> probe_tasks_;
  std::vector<ProbeDataset> classification_tasks_;
  std::optional<FirstLetterData> first_letters_;
  std::optional<ConceptTexts> concept_texts_;
  std::vector<DashboardIndexEntry> dashboards_;
};

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_SUBJECT_EVALUATIONS_H_
