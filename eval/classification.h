// Feature-based classification (Anthropic, "Scaling Monosemanticity"): SAE
// latents, mean-pooled over a context of a document, as the features of an
// L1-regularised logistic classifier, against the same classifier on the
// pooled raw activation. The question is how few latents a classifier needs
// and what it gives up for reading latents instead of the activation.
//
//   ProbeEvalConfig data = config.data();
//   data.add_tasks("brown_genre");
//   ASSIGN_OR_RETURN(auto tasks, BuildProbeDatasets(model, tokenizer, hook, data, seed));
//   ASSIGN_OR_RETURN(ClassificationScores s, EvaluateClassification(sae, tasks[0], config));
//   WriteClassificationResults({s}, sae_result);
#ifndef SAELAB_EVAL_CLASSIFICATION_H_
#define SAELAB_EVAL_CLASSIFICATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "eval/eval_config.pb.h"
#include "eval/probe_data.h"
#include "harness/result.pb.h"
#include "sae/sae.h"

namespace saelab {

struct ClassificationScores {
  std::string task;
  int64_t classes = 0, train_examples = 0, test_examples = 0;
  double latent_accuracy = 0;
  int64_t latent_features_used = 0;
  double activation_accuracy = 0;
  int64_t activation_features_used = 0;
  double majority_accuracy = 0;  // the most frequent training class, on test
  double l1_c = 0;
};

// One multi-class (or binary) task. InvalidArgument for rows of the wrong
// width, and a class missing from the training split (naming it).
absl::StatusOr<ClassificationScores> EvaluateClassification(
    Sae& sae, const ProbeDataset& task, const ClassificationEvalConfig& config);

// The task names config.tasks() asks for (default brown_genre,
// fortunes_language).
std::vector<std::string> ClassificationTasks(const ClassificationEvalConfig& config);

// result->classification, and metrics classification_latent_accuracy,
// classification_activation_accuracy, classification_latent_features
// (means over tasks).
void WriteClassificationResults(const std::vector<ClassificationScores>& scores,
                                SaeResult* result);

}  // namespace saelab

#endif  // SAELAB_EVAL_CLASSIFICATION_H_
