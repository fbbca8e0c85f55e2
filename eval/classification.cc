#include "eval/classification.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "eval/linear_probe.h"
#include "eval/probing.h"
#include "harness/status_macros.h"

namespace saelab {

std::vector<std::string> ClassificationTasks(const ClassificationEvalConfig& config) {
  std::vector<std::string> names(config.tasks().begin(), config.tasks().end());
  if (names.empty()) names = {"brown_genre", "fortunes_language"};
  return names;
}

absl::StatusOr<ClassificationScores> EvaluateClassification(
    Sae& sae, const ProbeDataset& task, const ClassificationEvalConfig& config) {
  RETURN_IF_ERROR(CheckRowsWidth(task, sae.d_in(), "classification"));
  torch::NoGradGuard no_grad;
  ClassificationScores scores;
  scores.task = task.name;
  scores.classes = static_cast<int64_t>(task.class_names.size());
  scores.train_examples = task.train.examples();
  scores.test_examples = task.test.examples();
  scores.l1_c = config.l1_c();
  const torch::Tensor counts = torch::bincount(task.train.labels, {}, scores.classes);
  for (int64_t c = 0; c < scores.classes; ++c) {
    if (counts[c].item<int64_t>() == 0) {
      return absl::InvalidArgumentError(absl::StrCat("classification task ", task.name,
                                                     ": class \"", task.class_names[c],
                                                     "\" has no training example"));
    }
  }
  const int64_t majority = counts.argmax().item<int64_t>();
  scores.majority_accuracy =
      (task.test.labels == majority).to(torch::kFloat64).mean().item<double>();
  LogisticOptions options;
  options.penalty = Penalty::kL1;
  options.c = config.l1_c();
  auto fit = [&](const torch::Tensor& train, const torch::Tensor& test, double* accuracy,
                 int64_t* used) -> absl::Status {
    ASSIGN_OR_RETURN(LinearClassifier classifier,
                     FitLogisticRegression(train, task.train.labels, options));
    *accuracy = (classifier.Predict(test) == task.test.labels).to(torch::kFloat64).mean()
                    .item<double>();
    *used = classifier.FeaturesUsed();
    return absl::OkStatus();
  };
  RETURN_IF_ERROR(fit(EncodePooled(sae, task.train), EncodePooled(sae, task.test),
                      &scores.latent_accuracy, &scores.latent_features_used));
  RETURN_IF_ERROR(fit(PoolByExample(task.train.rows, task.train),
                      PoolByExample(task.test.rows, task.test), &scores.activation_accuracy,
                      &scores.activation_features_used));
  return scores;
}

void WriteClassificationResults(const std::vector<ClassificationScores>& scores,
                                SaeResult* result) {
  if (scores.empty()) return;
  double latent = 0, activation = 0, features = 0;
  for (const ClassificationScores& s : scores) {
    ClassificationResult* r = result->add_classification();
    r->set_task(s.task);
    r->set_classes(s.classes);
    r->set_train_examples(s.train_examples);
    r->set_test_examples(s.test_examples);
    r->set_latent_accuracy(s.latent_accuracy);
    r->set_latent_features_used(s.latent_features_used);
    r->set_activation_accuracy(s.activation_accuracy);
    r->set_activation_features_used(s.activation_features_used);
    r->set_majority_accuracy(s.majority_accuracy);
    r->set_l1_c(s.l1_c);
    latent += s.latent_accuracy;
    activation += s.activation_accuracy;
    features += static_cast<double>(s.latent_features_used);
  }
  const double n = static_cast<double>(scores.size());
  auto& metrics = *result->mutable_metrics();
  metrics["classification_latent_accuracy"] = latent / n;
  metrics["classification_activation_accuracy"] = activation / n;
  metrics["classification_latent_features"] = features / n;
}

}  // namespace saelab
