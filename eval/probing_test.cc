#include "eval/probing.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/match.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr int64_t kDim = 16, kLatents = 32, kPlanted = 5;

// A ReLU SAE whose latent kPlanted reads the direction u exactly
// (f_5 = relu(x . u)); the other latents read random directions.
std::unique_ptr<Sae> PlantedSae(const torch::Tensor& u) {
  std::unique_ptr<Sae> sae = PlantableReluSae(kDim, kLatents, 9);
  torch::NoGradGuard no_grad;
  sae->W_enc.select(1, kPlanted).copy_(u);
  return sae;
}

// Labels y = [x . u > 0] on Gaussian rows.
ProbeDataset PlantedTask(const torch::Tensor& u, int64_t n) {
  ProbeDataset task;
  task.name = "planted";
  task.class_names = {"negative", "positive"};
  for (auto* split : {&task.train, &task.test}) {
    split->rows = torch::randn({n, kDim});
    split->labels = (torch::matmul(split->rows, u) > 0).to(torch::kLong);
    split->example_of_row = torch::arange(n, torch::kLong);
  }
  return task;
}

TEST(ProbingTest, FindsThePlantedLatent) {
  torch::manual_seed(1);
  const torch::Tensor u = torch::randn({kDim}) / 4;
  std::unique_ptr<Sae> sae = PlantedSae(u);
  ProbeEvalConfig config;
  const absl::StatusOr<ProbeTaskScores> scores =
      EvaluateProbeTask(*sae, PlantedTask(u, 1500), config, 7);
  ASSERT_TRUE(scores.ok()) << scores.status();
  EXPECT_EQ(scores->best_latent, kPlanted);
  EXPECT_LT(scores->probe_loss, 0.25);
  EXPECT_NEAR(scores->class_entropy, std::log(2.0), 0.01);
  ASSERT_EQ(scores->sparse.size(), 5u);  // k = 1, 2, 5, 10, 20
  EXPECT_EQ(scores->sparse[0].k, 1);
  EXPECT_EQ(scores->sparse[0].latents[0], kPlanted);
  EXPECT_GT(scores->sparse[0].accuracy, 0.9);
  EXPECT_GT(scores->dense_accuracy, 0.97);
  // A random direction of a 16-dimensional space barely predicts the label.
  EXPECT_LT(scores->random_direction_accuracy, 0.8);
  EXPECT_GT(scores->random_direction_loss, scores->probe_loss + 0.2);

  SaeResult result;
  WriteProbeResults({*scores}, &result);
  ASSERT_EQ(result.probes_size(), 1);
  EXPECT_EQ(result.probes(0).best_latent(), kPlanted);
  EXPECT_DOUBLE_EQ(result.metrics().at("probe_loss"), scores->probe_loss);
  EXPECT_DOUBLE_EQ(result.metrics().at("sparse_probe_top1_accuracy"), scores->sparse[0].accuracy);
}

TEST(ProbingTest, PooledLatentsAreMeansOfTheRowsLatents) {
  torch::manual_seed(2);
  std::unique_ptr<Sae> sae = PlantedSae(torch::randn({kDim}));
  ProbeDataset::Split split;
  split.rows = torch::randn({7, kDim});
  split.example_of_row = torch::tensor({0, 0, 0, 1, 2, 2, 2}, torch::kLong);
  split.labels = torch::tensor({0, 1, 0}, torch::kLong);
  const torch::Tensor pooled = EncodePooled(*sae, split, /*batch_rows=*/2);
  const torch::Tensor f = sae->Encode(split.rows).detach();
  EXPECT_TRUE(torch::allclose(pooled[0], f.slice(0, 0, 3).mean(0), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(pooled[1], f[3], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(pooled[2], f.slice(0, 4, 7).mean(0), 1e-5, 1e-6));
}

TEST(ProbingTest, BadTasksAreClearErrors) {
  torch::manual_seed(3);
  const torch::Tensor u = torch::randn({kDim});
  std::unique_ptr<Sae> sae = PlantedSae(u);
  ProbeDataset one_class = PlantedTask(u, 50);
  one_class.test.labels.fill_(1);
  absl::StatusOr<ProbeTaskScores> scores = EvaluateProbeTask(*sae, one_class, {}, 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(),
                                "probe task planted: the test split has one class only"))
      << scores.status();
  ProbeDataset wide = PlantedTask(u, 50);
  wide.train.rows = torch::randn({50, kDim + 1});
  scores = EvaluateProbeTask(*sae, wide, {}, 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(), "17 wide but the SAE's d_in is 16"))
      << scores.status();
}

}  // namespace
}  // namespace saelab
