#include "eval/classification.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/match.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr int64_t kDim = 8, kLatents = 24, kClasses = 3, kRowsPerExample = 3;

// Documents of class c: rows around 2 e_c (three rows each, pooled). The SAE
// has latents 0..2 reading e_0..e_2 exactly; the rest read random directions
// of the other five dimensions, which carry no class.
ProbeDataset ThreeClassTask(int64_t train_examples, int64_t test_examples) {
  ProbeDataset task;
  task.name = "three";
  task.pooled = true;
  task.class_names = {"zero", "one", "two"};
  for (auto [split, n] : {std::pair{&task.train, train_examples}, {&task.test, test_examples}}) {
    // Unbalanced: class 0 twice as often, so the majority rate is not 1/3.
    split->labels = torch::tensor({0, 0, 1, 2}, torch::kLong).repeat({n / 4});
    const int64_t examples = split->labels.numel();
    split->example_of_row =
        torch::arange(examples, torch::kLong).repeat_interleave(kRowsPerExample);
    split->rows = 2.0 * torch::one_hot(split->labels, kDim)
                            .to(torch::kFloat32)
                            .repeat_interleave(kRowsPerExample, 0) +
                  0.7 * torch::randn({examples * kRowsPerExample, kDim});
  }
  return task;
}

std::unique_ptr<Sae> PlantedSae() {
  std::unique_ptr<Sae> sae = PlantableReluSae(kDim, kLatents, 2);
  torch::NoGradGuard no_grad;
  sae->W_enc.slice(0, 0, kClasses).zero_();
  for (int64_t c = 0; c < kClasses; ++c) {
    sae->W_enc.select(1, c).zero_();
    sae->W_enc[c][c] = 1.0;
  }
  return sae;
}

TEST(ClassificationTest, L1ClassifierOnPlantedLatentsIsAccurateAndSparse) {
  torch::manual_seed(4);
  const ProbeDataset task = ThreeClassTask(800, 400);
  std::unique_ptr<Sae> sae = PlantedSae();
  ClassificationEvalConfig config;
  config.set_l1_c(0.01);
  const absl::StatusOr<ClassificationScores> scores = EvaluateClassification(*sae, task, config);
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->classes, 3);
  EXPECT_EQ(scores->train_examples, 800);
  EXPECT_NEAR(scores->majority_accuracy, 0.5, 1e-12);  // class 0 is half of test
  EXPECT_GT(scores->latent_accuracy, 0.95);
  EXPECT_GT(scores->activation_accuracy, 0.95);
  // The three planted latents carry the classes; L1 keeps few others.
  EXPECT_GE(scores->latent_features_used, 2);
  EXPECT_LE(scores->latent_features_used, 5);
  SaeResult result;
  WriteClassificationResults({*scores}, &result);
  EXPECT_EQ(result.classification(0).latent_features_used(), scores->latent_features_used);
  EXPECT_EQ(result.metrics().at("classification_latent_accuracy"), scores->latent_accuracy);
}

TEST(ClassificationTest, MissingClassIsAClearError) {
  torch::manual_seed(5);
  ProbeDataset task = ThreeClassTask(80, 40);
  task.train.labels.masked_fill_(task.train.labels == 2, 1);
  std::unique_ptr<Sae> sae = PlantedSae();
  const absl::StatusOr<ClassificationScores> scores = EvaluateClassification(*sae, task, {});
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(),
                                "classification task three: class \"two\" has no training example"))
      << scores.status();
}

}  // namespace
}  // namespace saelab
