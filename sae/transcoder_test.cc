// Transcoders (SaeConfig.transcoder on a TopK SAE): the loss against an
// independent float64 computation, training on paired rows recovering a
// known sparse linear map (and, with the skip connection, a dense linear
// part), the checkpoint round trip, and the trainer's refusals.
#include <ATen/CPUGeneratorImpl.h>

#include <cmath>
#include <memory>
#include <string>

#include <torch/types.h>
#include <torch/utils.h>

#include "data/activations/activation_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/metrics.h"
#include "sae/topk.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::TempDir;

torch::Tensor RandomUnitRows(int64_t rows, int64_t d, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor w = torch::randn({rows, d}, generator);
  return w / w.norm(2, 1, true);
}

// Paired rows [x | y] of a planted map: each token has `active` of the
// n_features features on, with magnitudes in [1, 2] (codes s); x = s A and
// y = s B + x M, with A and B [n_features, d] random unit rows and M
// [d, d] dense (zero unless `dense_part`). A transcoder with n_features
// latents should find B in its decoder; without a skip connection it
// cannot carry the dense part x M.
class PlantedMapSource : public ActivationSource {
 public:
  PlantedMapSource(int64_t d, int64_t n_features, int64_t active, bool dense_part)
      : d_(d),
        n_features_(n_features),
        active_(active),
        A_(RandomUnitRows(n_features, d, 1)),
        B_(RandomUnitRows(n_features, d, 2)) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(3);
    M_ = dense_part ? torch::randn({d, d}, generator) / std::sqrt(static_cast<double>(d))
                    : torch::zeros({d, d});
  }

  int64_t d_in() const override { return d_; }
  int64_t d_target() const override { return d_; }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override {
    return Rows(1000 + step, batch_size);
  }
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override { return Rows(7, tokens); }

  // A held-out set, from seeds no training batch uses.
  torch::Tensor EvalRows(int64_t tokens) { return Rows(99, tokens); }
  const torch::Tensor& B() const { return B_; }

 private:
  torch::Tensor Rows(uint64_t seed, int64_t tokens) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    torch::Tensor on = std::get<1>(torch::rand({tokens, n_features_}, generator).topk(active_, 1));
    torch::Tensor s = torch::zeros({tokens, n_features_});
    s.scatter_(1, on, 1.0 + torch::rand({tokens, active_}, generator));
    torch::Tensor x = s.mm(A_);
    torch::Tensor y = s.mm(B_) + x.mm(M_);
    return torch::cat({x, y}, 1);
  }

  int64_t d_, n_features_, active_;
  torch::Tensor A_, B_, M_;
};

SaeConfig TranscoderConfigForTest(bool skip, int64_t n_latents, int64_t k, int64_t steps) {
  SaeConfig config;
  config.set_name(skip ? "skip_transcoder" : "transcoder");
  config.set_n_latents(n_latents);
  config.mutable_topk()->set_k(k);
  config.mutable_transcoder()->set_skip_connection(skip);
  TrainerConfig* trainer = config.mutable_trainer();
  trainer->set_batch_size(256);
  trainer->set_total_tokens(256 * steps);
  trainer->set_lr(3e-3);
  trainer->set_init_sample_tokens(2048);
  trainer->set_dead_after_tokens(256 * 50);
  trainer->set_log_every_steps(100000);
  return config;
}

// FVU of the target over paired rows: sum ||y - y_hat||^2 / sum ||y - mean y||^2.
double TargetFvu(Sae& sae, const torch::Tensor& rows) {
  torch::NoGradGuard no_grad;
  const int64_t d = sae.d_in();
  torch::Tensor x = rows.narrow(1, 0, d), y = rows.narrow(1, d, d).to(torch::kDouble);
  torch::Tensor y_hat = sae.Reconstruct(x).to(torch::kDouble);
  return ((y - y_hat).pow(2).sum() / (y - y.mean(0)).pow(2).sum()).item<double>();
}

TEST(TranscoderTest, LossIsTheNmseOfTheTargetWithoutPreEncoderBiasAndWithTheSkipTerm) {
  const int64_t d = 6, n = 10, k = 3, batch = 5;
  TopKConfig topk;
  topk.set_k(k);
  topk.set_k_aux(2);
  topk.set_auxk_coefficient(0.0);
  TranscoderConfig transcoder;
  transcoder.set_skip_connection(true);
  TopKSae sae(d, n, topk, /*seed=*/4, &transcoder);
  {
    torch::NoGradGuard no_grad;
    sae.b_dec.normal_();
    sae.b_enc.normal_();
    sae.W_skip.normal_();
  }
  torch::Tensor x = torch::randn({batch, d}), y = torch::randn({batch, d});
  TrainStepInfo info;
  info.target = y;
  TrainOutput out = sae.TrainForward(x, info);

  // By hand in float64: z = x W_enc + b_enc (no b_dec subtracted), the top
  // k of each row after ReLU, y_hat = f W_dec + b_dec + x W_skip.
  auto D = [](const torch::Tensor& t) { return t.detach().to(torch::kDouble); };
  torch::Tensor z = D(x).mm(D(sae.W_enc)) + D(sae.b_enc);
  torch::Tensor f = torch::zeros({batch, n}, torch::kDouble);
  for (int64_t b = 0; b < batch; ++b) {
    torch::Tensor top = std::get<1>(z[b].topk(k));
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = top[j].item<int64_t>();
      f[b][i] = std::max(0.0, z[b][i].item<double>());
    }
  }
  torch::Tensor y_hat = f.mm(D(sae.W_dec)) + D(sae.b_dec) + D(x).mm(D(sae.W_skip));
  const double nmse = ((y_hat - D(y)).pow(2).sum() / D(y).pow(2).sum()).item<double>();
  EXPECT_NEAR(out.loss.item<double>(), nmse, 1e-5 * nmse);
  EXPECT_LT((D(out.x_hat) - y_hat).abs().max().item<double>(), 1e-5);
  // ReconstructScaled is the same map (input scale 1 here).
  torch::NoGradGuard no_grad;
  EXPECT_LT((D(sae.ReconstructScaled(x)) - y_hat).abs().max().item<double>(), 1e-5);
  // The gradient reaches W_skip.
  torch::AutoGradMode grad(true);
  TrainOutput again = sae.TrainForward(x, info);
  again.loss.backward();
  ASSERT_TRUE(sae.W_skip.grad().defined());
  EXPECT_GT(sae.W_skip.grad().abs().max().item<double>(), 0.0);
}

TEST(TranscoderTest, RecoversAPlantedSparseLinearMap) {
  PlantedMapSource source(/*d=*/24, /*n_features=*/32, /*active=*/2, /*dense_part=*/false);
  absl::StatusOr<TrainResult> trained =
      TrainSae(TranscoderConfigForTest(false, 32, 2, 1500), source, /*seed=*/5);
  ASSERT_TRUE(trained.ok()) << trained.status();
  torch::Tensor eval = source.EvalRows(4096);
  const double fvu = TargetFvu(*trained->sae, eval);
  // The target's directions B are what the decoder learns; the input's are
  // different random directions.
  const double mmcs = MeanMaxCosineSimilarity(source.B(), trained->sae->DecoderDirections());
  EXPECT_LT(fvu, 0.05);
  EXPECT_GT(mmcs, 0.95);
  // The paired metrics say the same (sae/metrics.h on target and estimate).
  ReconstructionMetrics metrics(24, 32);
  torch::NoGradGuard no_grad;
  torch::Tensor x = eval.narrow(1, 0, 24);
  metrics.Add(eval.narrow(1, 24, 24), trained->sae->Reconstruct(x), trained->sae->Encode(x));
  EXPECT_NEAR(metrics.Fvu(), fvu, 1e-6);
}

TEST(TranscoderTest, SkipConnectionLearnsTheDenseLinearPartThatAPlainTranscoderCannot) {
  PlantedMapSource source(/*d=*/24, /*n_features=*/32, /*active=*/2, /*dense_part=*/true);
  torch::Tensor eval = source.EvalRows(4096);
  absl::StatusOr<TrainResult> skip =
      TrainSae(TranscoderConfigForTest(true, 32, 2, 1500), source, /*seed=*/5);
  absl::StatusOr<TrainResult> plain =
      TrainSae(TranscoderConfigForTest(false, 32, 2, 1500), source, /*seed=*/5);
  ASSERT_TRUE(skip.ok()) << skip.status();
  ASSERT_TRUE(plain.ok()) << plain.status();
  const double skip_fvu = TargetFvu(*skip->sae, eval), plain_fvu = TargetFvu(*plain->sae, eval);
  // (W_skip itself need not equal M: the part of s B that is linear in x
  // can sit in either path.)
  EXPECT_LT(skip_fvu, 0.05);
  EXPECT_GT(plain_fvu, 3 * skip_fvu);
}

TEST(TranscoderTest, CheckpointRoundTripKeepsTheSkipConnectionAndTheMap) {
  PlantedMapSource source(8, 12, 2, true);
  SaeConfig config = TranscoderConfigForTest(true, 12, 2, 20);
  absl::StatusOr<TrainResult> trained = TrainSae(config, source, 1);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const std::string dir = TempDir() + "/transcoder_checkpoint";
  ASSERT_TRUE(SaveSae(dir, *trained->sae, trained->config).ok());
  SaeConfig loaded_config;
  absl::StatusOr<std::unique_ptr<Sae>> loaded = LoadSae(dir, &loaded_config);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE((*loaded)->is_transcoder());
  EXPECT_TRUE(loaded_config.transcoder().skip_connection());
  torch::NoGradGuard no_grad;
  torch::Tensor x = source.EvalRows(64).narrow(1, 0, 8);
  EXPECT_TRUE(torch::equal((*loaded)->Reconstruct(x), trained->sae->Reconstruct(x)));
  EXPECT_GT(dynamic_cast<TopKSae&>(**loaded).W_skip.abs().max().item<double>(), 0.0);
}

// A plain source: the planted map's inputs only.
class InputsOnly : public ActivationSource {
 public:
  explicit InputsOnly(PlantedMapSource* paired) : paired_(paired) {}
  int64_t d_in() const override { return paired_->d_in(); }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override {
    absl::StatusOr<torch::Tensor> rows = paired_->TrainBatch(step, batch_size);
    if (!rows.ok()) return rows;
    return rows->narrow(1, 0, d_in()).contiguous();
  }
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override { return TrainBatch(0, tokens); }

 private:
  PlantedMapSource* paired_;
};

TEST(TranscoderTest, TrainerRefusesMismatchedSourcesAndArchitectures) {
  PlantedMapSource paired(8, 12, 2, false);
  InputsOnly plain(&paired);
  absl::StatusOr<TrainResult> no_target = TrainSae(TranscoderConfigForTest(false, 12, 2, 4), plain, 1);
  ASSERT_FALSE(no_target.ok());
  EXPECT_THAT(no_target.status().message(),
              AllOf(HasSubstr("'transcoder' is a transcoder"), HasSubstr("target hook")));

  SaeConfig sae = TranscoderConfigForTest(false, 12, 2, 4);
  sae.clear_transcoder();
  absl::StatusOr<TrainResult> not_transcoder = TrainSae(sae, paired, 1);
  ASSERT_FALSE(not_transcoder.ok());
  EXPECT_THAT(not_transcoder.status().message(),
              AllOf(HasSubstr("paired"), HasSubstr("not a transcoder")));

  SaeConfig relu = TranscoderConfigForTest(false, 12, 2, 4);
  relu.mutable_relu_l1();
  absl::Status resolved = ResolveSaeConfig(8, &relu);
  EXPECT_EQ(resolved.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(resolved.message(), HasSubstr("transcoder is supported for topk only, not relu_l1"));
}

}  // namespace
}  // namespace saelab
