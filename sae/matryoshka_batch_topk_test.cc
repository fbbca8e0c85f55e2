#include "sae/matryoshka_batch_topk.h"

#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "data/activations/synthetic_features.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "sae/factory.h"
#include "sae/internal/gradient_check.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

SaeConfig MatryoshkaConfig(int64_t n_latents, int64_t k) {
  SaeConfig config;
  config.set_name("matryoshka");
  config.set_n_latents(n_latents);
  config.mutable_matryoshka_batch_topk()->mutable_batch_topk()->set_k(k);
  return config;
}

TEST(MatryoshkaBatchTopKTest, LossIsTheSumOfThePrefixNmsesWithMatchingGradients) {
  torch::manual_seed(3);
  const int64_t batch = 6, d = 4, n = 12, k = 3;
  const std::vector<int64_t> widths = {2, 5};
  torch::Tensor x = torch::randn({batch, d}, torch::kFloat64);
  std::vector<torch::Tensor> params = {
      torch::randn({d, n}, torch::kFloat64), torch::randn({n}, torch::kFloat64),
      torch::randn({n, d}, torch::kFloat64), torch::randn({d}, torch::kFloat64)};
  // Reference: the batch top-k by sorting the flattened ReLU(z); each level
  // decodes f with the latents from its width on masked out.
  auto reference = [&](const std::vector<torch::Tensor>& p) {
    torch::Tensor z = torch::mm(x - p[3], p[0]) + p[1];
    torch::Tensor flat = torch::relu(z).reshape({-1});
    torch::Tensor order = std::get<1>(flat.sort(/*dim=*/0, /*descending=*/true));
    torch::Tensor keep = torch::zeros_like(flat).index_fill(0, order.slice(0, 0, k * batch), 1.0);
    torch::Tensor f = (flat * keep).view({batch, n});
    torch::Tensor loss = torch::zeros({}, torch::kFloat64);
    for (int64_t width : {widths[0], widths[1], n}) {
      torch::Tensor mask = (torch::arange(n) < width).to(torch::kFloat64);
      torch::Tensor x_hat = torch::mm(f * mask, p[2]) + p[3];
      loss = loss + (x_hat - x).pow(2).sum() / x.pow(2).sum();
    }
    return loss;
  };
  for (bool sparse_decode : {false, true}) {
    SCOPED_TRACE(sparse_decode ? "sparse decode" : "dense decode");
    BatchTopKLossOptions options;
    options.k = k;
    options.auxk_coefficient = 0.0;
    options.sparse_decode = sparse_decode;
    options.prefix_widths = widths;
    auto under_test = [&](const std::vector<torch::Tensor>& p) {
      return BatchTopKLoss({x, p[0], p[1], p[2], p[3]}, options).loss;
    };
    EXPECT_NEAR(reference(params).item<double>(), under_test(params).item<double>(), 1e-12);
    LossOutput out = BatchTopKLoss({x, params[0], params[1], params[2], params[3]}, options);
    ASSERT_EQ(out.terms.count("prefix_nmse_2"), 1u);
    ASSERT_EQ(out.terms.count("prefix_nmse_5"), 1u);
    EXPECT_NEAR(out.loss.item<double>(),
                (out.terms.at("nmse") + out.terms.at("prefix_nmse_2") +
                 out.terms.at("prefix_nmse_5")).item<double>(),
                1e-12);
    EXPECT_GT(out.terms.at("prefix_nmse_2").item<double>(), 0.0);
    GradientCheckResult check =
        CheckGradientsAgainstReference(under_test, reference, params, 1e-7);
    EXPECT_GT(check.max_abs_gradient, 1e-2);
    EXPECT_LT(check.max_abs_error, 1e-6);
  }
}

TEST(MatryoshkaBatchTopKTest, ResolveFillsTheDefaultWidthsAndTheBatchTopKRecipe) {
  SaeConfig config = MatryoshkaConfig(256, 8);
  ASSERT_TRUE(ResolveSaeConfig(64, &config).ok());
  EXPECT_THAT(config.matryoshka_batch_topk().prefix_widths(), ElementsAre(16, 64));
  SaeConfig batch_topk;
  batch_topk.set_n_latents(256);
  batch_topk.mutable_batch_topk()->set_k(8);
  ASSERT_TRUE(ResolveSaeConfig(64, &batch_topk).ok());
  EXPECT_EQ(config.trainer().lr(), batch_topk.trainer().lr());
  EXPECT_EQ(config.trainer().adam_eps(), batch_topk.trainer().adam_eps());
  EXPECT_EQ(config.matryoshka_batch_topk().batch_topk().k_aux(), batch_topk.batch_topk().k_aux());
  EXPECT_EQ(ArchitectureName(config), "matryoshka_batch_topk");
  EXPECT_EQ(SparsityKnob(config), 8.0);
  EXPECT_THAT(DefaultMatryoshkaPrefixWidths(8), ElementsAre(2));
  EXPECT_TRUE(DefaultMatryoshkaPrefixWidths(3).empty());
}

TEST(MatryoshkaBatchTopKTest, BadWidthsAreErrorsNamingTheField) {
  for (const std::vector<int64_t>& widths :
       std::vector<std::vector<int64_t>>{{0}, {32, 16}, {16, 16}, {256}, {300}}) {
    SaeConfig config = MatryoshkaConfig(256, 8);
    for (int64_t width : widths) config.mutable_matryoshka_batch_topk()->add_prefix_widths(width);
    absl::Status status = ResolveSaeConfig(64, &config);
    EXPECT_THAT(status.message(), HasSubstr("matryoshka_batch_topk.prefix_widths")) << status;
  }
  SaeConfig tiny = MatryoshkaConfig(3, 1);
  EXPECT_THAT(ResolveSaeConfig(4, &tiny).message(), HasSubstr("list the widths"));
  SaeConfig bad_k = MatryoshkaConfig(256, 0);
  EXPECT_THAT(ResolveSaeConfig(64, &bad_k).message(),
              HasSubstr("matryoshka_batch_topk.batch_topk.k must be in [1, n_latents = 256]"));
}

// ||x_hat - x||^2 / ||x - mean x||^2 of the reconstruction from the first
// `width` latents of the SAE's inference code, over x [tokens, d] (scaled).
double PrefixFvu(Sae& sae, const torch::Tensor& x, int64_t width) {
  torch::NoGradGuard no_grad;
  torch::Tensor f = sae.EncodeScaled(x).clone();
  f.narrow(1, width, f.size(1) - width).zero_();
  torch::Tensor x_hat = sae.DecodeScaled(f);
  return ((x_hat - x).pow(2).sum() / (x - x.mean(0)).pow(2).sum()).item<double>();
}

TEST(MatryoshkaBatchTopKTest, EachPrefixReconstructsOnItsOwnUnlikeBatchTopKs) {
  SyntheticDataConfig data;
  data.set_d(32);
  data.set_n_features(128);
  data.set_mean_active_features(4);
  data.set_frequency_decay(0.5);
  data.set_magnitude_min(0.1);
  data.set_eval_tokens(4096);
  auto source = std::move(SyntheticFeatureSource::Create(data, 5).value());
  SaeConfig matryoshka = MatryoshkaConfig(256, 4);
  TrainerConfig* trainer = matryoshka.mutable_trainer();
  trainer->set_batch_size(512);
  trainer->set_total_tokens(512 * 400);
  trainer->set_dead_after_tokens(512 * 50);
  trainer->set_log_every_steps(0);
  SaeConfig batch_topk = matryoshka;
  batch_topk.set_name("batch_topk");
  batch_topk.mutable_batch_topk()->set_k(4);  // the same trainer settings
  auto m = TrainSae(matryoshka, *source, 7);
  auto b = TrainSae(batch_topk, *source, 7);
  ASSERT_TRUE(m.ok()) << m.status();
  ASSERT_TRUE(b.ok()) << b.status();
  const torch::Tensor x = source->EvalSet() * m->sae->input_scale();
  const torch::Tensor xb = source->EvalSet() * b->sae->input_scale();
  // The prefixes of 16 and 64 latents (n/16, n/4) explain the data on their
  // own; BatchTopK's first latents are as good as any random subset.
  for (int64_t width : {16, 64}) {
    const double matryoshka_fvu = PrefixFvu(*m->sae, x, width);
    const double batch_topk_fvu = PrefixFvu(*b->sae, xb, width);
    std::cout << "width " << width << " fvu: matryoshka " << matryoshka_fvu << ", batch_topk "
              << batch_topk_fvu << "\n";
    EXPECT_LT(matryoshka_fvu, 0.7 * batch_topk_fvu)
        << "width " << width << ": " << matryoshka_fvu << " vs " << batch_topk_fvu;
  }
  // ... at a modest cost at the full width.
  const double full_m = PrefixFvu(*m->sae, x, 256), full_b = PrefixFvu(*b->sae, xb, 256);
  std::cout << "full fvu: matryoshka " << full_m << ", batch_topk " << full_b << "\n";
  EXPECT_LT(full_m, 1.3 * full_b) << full_m << " vs " << full_b;
}

}  // namespace
}  // namespace saelab
