#include "eval/reconstruction.h"

#include <cstdint>
#include <torch/utils.h>

#include "gtest/gtest.h"
#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

// A small TopK SAE (d_in 8, 32 latents, k 3) with its seeded random init:
// the evaluation only needs some fixed encoder and decoder.
std::unique_ptr<Sae> SmallSae() {
  SaeConfig config;
  config.set_name("small");
  config.set_n_latents(32);
  config.mutable_topk()->set_k(3);
  EXPECT_TRUE(ResolveSaeConfig(/*d_in=*/8, &config).ok());
  auto sae = CreateSae(config, /*d_in=*/8, /*seed=*/7);
  EXPECT_TRUE(sae.ok()) << sae.status();
  return std::move(sae).value();
}

// The metrics recomputed here in float64 over the whole set at once, from
// Encode/Decode, by the formulas of docs/metrics.md (an independent route
// from ReconstructionMetrics' running sums).
TEST(ReconstructionTest, MetricsEqualAWholeSetFloat64Recomputation) {
  std::unique_ptr<Sae> sae = SmallSae();
  torch::manual_seed(3);
  torch::Tensor x = torch::randn({1000, 8}) * 2.0 + 0.5;
  ReconstructionEvalConfig config;
  config.set_batch_size(64);
  absl::StatusOr<ReconstructionMetrics> metrics = EvaluateReconstruction(*sae, x, config);
  ASSERT_TRUE(metrics.ok()) << metrics.status();

  torch::NoGradGuard no_grad;
  torch::Tensor f = sae->Encode(x);
  torch::Tensor x64 = x.to(torch::kFloat64);
  torch::Tensor err = (x64 - sae->Decode(f).to(torch::kFloat64)).pow(2).sum();
  const double nmse = (err / x64.pow(2).sum()).item<double>();
  const double fvu = (err / (x64 - x64.mean(0)).pow(2).sum()).item<double>();
  const double l0 = (f != 0).sum().item<double>() / 1000.0;
  const double dead = ((f != 0).sum(0) == 0).sum().item<double>() / 32.0;
  EXPECT_NEAR(metrics->Nmse(), nmse, 1e-6 * nmse);
  EXPECT_NEAR(metrics->Fvu(), fvu, 1e-6 * fvu);
  EXPECT_DOUBLE_EQ(metrics->L0(), l0);
  EXPECT_DOUBLE_EQ(metrics->DeadFraction(), dead);
  EXPECT_EQ(metrics->tokens(), 1000);
}

// BatchTopK's training code (the k * batch largest activations of each
// evaluation batch) gives nmse_training_mode and l0_training_mode, here
// recomputed in float64 from the weights with a flattened top-k; the
// inference metrics and the threshold are untouched. A TopK SAE, whose
// training code is its inference code, reports neither.
TEST(ReconstructionTest, BatchTopKAlsoReportsItsTrainingModeCodePerEvalBatch) {
  SaeConfig config;
  config.set_name("batch_topk");
  config.set_n_latents(32);
  config.mutable_batch_topk()->set_k(3);
  ASSERT_TRUE(ResolveSaeConfig(8, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, 8, 7);
  sae->set_input_scale(0.7);
  torch::manual_seed(5);
  torch::Tensor x = torch::randn({1000, 8}) * 2.0 + 0.5;
  ReconstructionEvalConfig eval;
  eval.set_batch_size(100);
  absl::StatusOr<ReconstructionMetrics> metrics = EvaluateReconstruction(*sae, x, eval);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  SaeResult result;
  metrics->WriteTo(&result);

  torch::NoGradGuard no_grad;
  const double s = sae->input_scale();
  auto w64 = [](const torch::Tensor& t) { return t.detach().to(torch::kFloat64); };
  double err = 0, norm = 0, active = 0;
  for (int64_t begin = 0; begin < 1000; begin += 100) {
    torch::Tensor xb = x.slice(0, begin, begin + 100).to(torch::kFloat64);
    torch::Tensor z = torch::relu(
        torch::mm(xb * s - w64(sae->b_dec), w64(sae->W_enc)) + w64(sae->b_enc));  // [100, 32]
    torch::Tensor flat = z.flatten();
    torch::Tensor kept = torch::zeros_like(flat);
    torch::Tensor top = std::get<1>(flat.topk(3 * 100));
    kept.index_put_({top}, flat.index({top}));
    torch::Tensor f = kept.view({100, 32});
    torch::Tensor x_hat = (torch::mm(f, w64(sae->W_dec)) + w64(sae->b_dec)) / s;
    err += (xb - x_hat).pow(2).sum().item<double>();
    norm += xb.pow(2).sum().item<double>();
    active += (f != 0).sum().item<double>();
  }
  ASSERT_EQ(result.metrics().count("nmse_training_mode"), 1u);
  EXPECT_NEAR(result.metrics().at("nmse_training_mode"), err / norm, 1e-5 * err / norm);
  EXPECT_DOUBLE_EQ(result.metrics().at("l0_training_mode"), active / 1000);
  EXPECT_EQ(sae->NamedTensors().at("threshold").item<double>(), 0.0);
  // With the threshold unset, inference is plain ReLU: a different code.
  EXPECT_GT(result.metrics().at("l0"), 2 * result.metrics().at("l0_training_mode"));

  SaeResult topk_result;
  std::unique_ptr<Sae> topk = SmallSae();
  (*EvaluateReconstruction(*topk, x, eval)).WriteTo(&topk_result);
  EXPECT_EQ(topk_result.metrics().count("nmse_training_mode"), 0u);
  EXPECT_EQ(topk_result.metrics().count("l0_training_mode"), 0u);
}

// A transcoder's metrics are of the target half of paired rows [x | y],
// against Reconstruct(x) (the skip term included).
TEST(ReconstructionTest, TranscoderMetricsAreOfTheTargetOfPairedRows) {
  SaeConfig config;
  config.set_name("skip_transcoder");
  config.set_n_latents(32);
  config.mutable_topk()->set_k(3);
  config.mutable_transcoder()->set_skip_connection(true);
  ASSERT_TRUE(ResolveSaeConfig(8, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, 8, 7);
  torch::manual_seed(4);
  {
    torch::NoGradGuard no_grad;
    for (auto& [name, tensor] : sae->NamedTensors()) {
      if (name != "input_scale") tensor.add_(0.2 * torch::randn(tensor.sizes()));
    }
  }
  torch::Tensor x = torch::randn({500, 8}), y = torch::randn({500, 8}) + 1.0;
  ReconstructionEvalConfig eval;
  eval.set_batch_size(64);
  absl::StatusOr<ReconstructionMetrics> metrics =
      EvaluateReconstruction(*sae, torch::cat({x, y}, 1), eval);
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  torch::NoGradGuard no_grad;
  torch::Tensor y64 = y.to(torch::kFloat64);
  torch::Tensor err = (y64 - sae->Reconstruct(x).to(torch::kFloat64)).pow(2).sum();
  const double nmse = (err / y64.pow(2).sum()).item<double>();
  const double fvu = (err / (y64 - y64.mean(0)).pow(2).sum()).item<double>();
  EXPECT_NEAR(metrics->Nmse(), nmse, 1e-6 * nmse);
  EXPECT_NEAR(metrics->Fvu(), fvu, 1e-6 * fvu);
  EXPECT_DOUBLE_EQ(metrics->L0(), (sae->Encode(x) != 0).sum().item<double>() / 500.0);
  // Unpaired rows are refused, naming the width a transcoder needs.
  absl::StatusOr<ReconstructionMetrics> unpaired = EvaluateReconstruction(*sae, x, eval);
  EXPECT_EQ(unpaired.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(unpaired.status().message()).find("paired rows [input | target] of width 16"),
            std::string::npos)
      << unpaired.status();
}

TEST(ReconstructionTest, BatchSizeDoesNotChangeTheMetrics) {
  std::unique_ptr<Sae> sae = SmallSae();
  torch::manual_seed(4);
  torch::Tensor x = torch::randn({777, 8});
  ReconstructionEvalConfig small, whole;
  small.set_batch_size(10);
  whole.set_batch_size(100000);
  auto a = EvaluateReconstruction(*sae, x, small);
  auto b = EvaluateReconstruction(*sae, x, whole);
  ASSERT_TRUE(a.ok() && b.ok());
  // The sums are float64 over per-token float32 errors; only those can
  // differ, by float32 rounding, because OpenBLAS's AVX2 (Haswell) sgemm
  // kernel may round a row of 10 differently from one of 777 (here by 3e-9
  // relative). A lost partial batch (7 of 777 tokens) or per-batch means
  // averaged unweighted would move NMSE by orders of magnitude more.
  EXPECT_NEAR(a->Nmse(), b->Nmse(), 1e-7);
  EXPECT_NEAR(a->Fvu(), b->Fvu(), 1e-7);
  EXPECT_EQ(a->L0(), b->L0());
}

TEST(ReconstructionTest, HistogramHasTheConfiguredBins) {
  std::unique_ptr<Sae> sae = SmallSae();
  ReconstructionEvalConfig config;
  config.set_density_histogram_bins(7);
  auto metrics = EvaluateReconstruction(*sae, torch::randn({200, 8}), config);
  ASSERT_TRUE(metrics.ok());
  SaeResult result;
  metrics->WriteTo(&result);
  EXPECT_EQ(result.density_histogram().counts_size(), 7);
}

TEST(ReconstructionTest, ActivationsOfTheWrongWidthAreRefusedNamingBothSizes) {
  std::unique_ptr<Sae> sae = SmallSae();
  absl::Status status = EvaluateReconstruction(*sae, torch::randn({5, 9})).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("[5, 9]"), std::string::npos) << status;
  EXPECT_NE(std::string(status.message()).find("d_in is 8"), std::string::npos) << status;
}

TEST(ReconstructionTest, EmptySetAndBadBatchSizeAreRefused) {
  std::unique_ptr<Sae> sae = SmallSae();
  EXPECT_EQ(EvaluateReconstruction(*sae, torch::zeros({0, 8})).status().code(),
            absl::StatusCode::kInvalidArgument);
  ReconstructionEvalConfig config;
  config.set_batch_size(0);
  EXPECT_EQ(EvaluateReconstruction(*sae, torch::zeros({4, 8}), config).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
