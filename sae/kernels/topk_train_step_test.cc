// TopKTrainStep's loss and gradients against the dense reference, TopKLoss
// (sae/topk.h) differentiated by autograd in float64 (topk_test holds that
// autograd gradient to central differences): plain TopK, AuxK with half
// and all latents dead, AuxK over several row blocks and row chunks and
// with over 4096 picked latents (its other e_hat order), Multi-TopK, k = n;
// every gradient element written; the same bits on one and two threads.
#include "sae/kernels/topk_train_step.h"

#include "gtest/gtest.h"
#include "sae/kernels/internal/step_testing.h"
#include "sae/sae.h"
#include "sae/topk.h"

namespace saelab {
namespace {

struct Case {
  std::string name;
  int64_t batch, d, n;
  TopKTrainStepOptions options;
  torch::Tensor dead_mask;  // [n] bool or undefined
};

StepProblem Random(const Case& c, uint64_t seed) {
  return RandomStepProblem(c.batch, c.d, c.n, seed);
}

struct Reference {
  double loss;
  std::map<std::string, double> terms;
  std::vector<torch::Tensor> grads;  // W_enc, b_enc, W_dec, b_dec
};

// TopKLoss and its autograd gradients in float64.
Reference Dense(const Case& c, const StepProblem& p) {
  std::vector<torch::Tensor> leaves = Float64Leaves(p);
  LossInputs inputs{p.x.to(torch::kFloat64), leaves[0], leaves[1], leaves[2], leaves[3]};
  inputs.dead_mask = c.dead_mask;
  TopKLossOptions options;
  static_cast<TopKTrainStepOptions&>(options) = c.options;
  options.sparse_decode = false;
  LossOutput out = TopKLoss(inputs, options);
  out.loss.backward();
  Reference ref;
  ref.loss = out.loss.item<double>();
  for (const auto& [name, term] : out.terms) ref.terms[name] = term.item<double>();
  for (const torch::Tensor& leaf : leaves) ref.grads.push_back(leaf.grad());
  return ref;
}

struct Sparse {
  TopKTrainStepResult result;
  std::vector<torch::Tensor> grads;
};

Sparse RunStep(const Case& c, const StepProblem& p, TopKTrainStepWorkspace* workspace) {
  Sparse s;
  s.grads = NanGradients(p);
  s.result = TopKTrainStep(p.x, {p.W_enc, p.b_enc, p.W_dec, p.b_dec}, c.dead_mask, c.options,
                           {s.grads[0], s.grads[1], s.grads[2], s.grads[3]}, workspace);
  return s;
}

std::vector<Case> Cases() {
  std::vector<Case> cases;
  TopKTrainStepOptions plain;
  plain.k = 8;
  plain.k_aux = 32;
  cases.push_back({"plain", 96, 24, 300, plain, torch::Tensor()});
  cases.push_back({"auxk_half_dead", 96, 24, 300, plain, torch::arange(300) % 2 == 1});
  cases.push_back({"auxk_all_dead", 96, 24, 300, plain, torch::ones({300}, torch::kBool)});
  cases.push_back({"auxk_few_dead", 96, 24, 300, plain, torch::arange(300) % 60 == 0});
  // 400 rows: AuxK's sparse passes run over several row blocks.
  cases.push_back({"auxk_row_blocks", 400, 24, 300, plain, torch::arange(300) % 2 == 0});
  // 4200 rows: AuxK's gradient slices span two chunks of rows.
  cases.push_back({"auxk_row_chunks", 4200, 24, 300, plain, torch::arange(300) % 2 == 0});
  // Over 4096 picked latents: e_hat summed latent by latent, not by row.
  TopKTrainStepOptions wide_aux = plain;
  wide_aux.k_aux = 512;
  cases.push_back({"auxk_many_picked", 64, 8, 9000, wide_aux, torch::ones({9000}, torch::kBool)});
  TopKTrainStepOptions multi = plain;
  multi.multi_topk_factor = 4;
  cases.push_back({"multi_topk", 96, 24, 300, multi, torch::arange(300) < 100});
  TopKTrainStepOptions all = plain;
  all.k = 40;
  all.k_aux = 8;
  cases.push_back({"k_equals_n", 32, 12, 40, all, torch::arange(40) < 20});
  return cases;
}

TEST(TopKTrainStepTest, LossAndGradientsMatchTheFloat64DenseReference) {
  uint64_t seed = 10;
  for (const Case& c : Cases()) {
    const StepProblem p = Random(c, ++seed);
    const Reference ref = Dense(c, p);
    TopKTrainStepWorkspace workspace;
    const Sparse got = RunStep(c, p, &workspace);
    EXPECT_NEAR(got.result.loss, ref.loss, 1e-5 * ref.loss) << c.name;
    EXPECT_NEAR(got.result.nmse, ref.terms.at("nmse"), 1e-5 * ref.terms.at("nmse")) << c.name;
    if (ref.terms.count("auxk")) {
      EXPECT_NEAR(got.result.auxk, ref.terms.at("auxk"), 1e-5 * ref.terms.at("auxk") + 1e-12)
          << c.name;
      EXPECT_EQ(got.result.auxk_on, ref.terms.at("auxk") != 0.0) << c.name;
    }
    if (c.options.multi_topk_factor > 0) {
      EXPECT_NEAR(got.result.multi_topk_nmse, ref.terms.at("multi_topk_nmse"),
                  1e-5 * ref.terms.at("multi_topk_nmse"))
          << c.name;
    }
    ExpectGradientsNear(got.grads, ref.grads, 2e-5, c.name);
  }
}

TEST(TopKTrainStepTest, CodeAndReconstructionAreTheForwardPass) {
  const Case c = Cases()[0];
  const StepProblem p = Random(c, 3);
  TopKTrainStepWorkspace workspace;
  const Sparse got = RunStep(c, p, &workspace);
  const torch::Tensor z = torch::addmm(p.b_enc, p.x - p.b_dec, p.W_enc);
  auto [values, indices] = z.topk(c.options.k, 1);
  EXPECT_TRUE(torch::equal(got.result.indices, indices));
  EXPECT_TRUE(torch::equal(got.result.values, torch::relu(values)));
  const torch::Tensor x_hat = torch::addmm(
      p.b_dec, ScatterTopK(torch::relu(values), indices, c.n), p.W_dec);
  EXPECT_TRUE(torch::allclose(got.result.x_hat, x_hat, 1e-5, 1e-5));
}

TEST(TopKTrainStepTest, SameBitsOnOneAndTwoThreadsAndAcrossCalls) {
  Case c = Cases()[4];  // Multi-TopK and AuxK: every path
  c.batch = 300;
  c.n = 1000;
  c.dead_mask = torch::arange(1000) % 2 == 0;
  const StepProblem p = Random(c, 4);
  TopKTrainStepWorkspace workspace;  // reused: the second call sees the first's buffers
  ExpectSameBitsOnOneAndTwoThreads([&] {
    const Sparse s = RunStep(c, p, &workspace);
    return StepBits{s.result.loss, s.grads};
  });
}

}  // namespace
}  // namespace saelab
