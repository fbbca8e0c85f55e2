// JumpReluTrainStep against the dense reference, JumpReluLoss (STANDARD,
// sae/jumprelu.h) differentiated by autograd in float64 (jumprelu_test
// holds that autograd gradient to the paper's pseudo-derivatives): loss,
// terms and all five gradients, with the L0 coefficient on and off; without
// thresholds and with the L1 term, ReluL1Loss (sae/relu_l1.h) the same way;
// a code denser than max_density is left alone; the same bits on 1 and 2
// threads.
#include "sae/kernels/jumprelu_train_step.h"

#include <cmath>
#include <limits>

#include "gtest/gtest.h"
#include "sae/jumprelu.h"
#include "sae/kernels/internal/step_testing.h"
#include "sae/relu_l1.h"
#include "sae/sae.h"

namespace saelab {
namespace {

struct Problem {
  StepProblem p;
  torch::Tensor log_threshold;  // [n]
};

// theta in [0.5, 1.5]: z ~ N(0, ~1.2), so about a fifth of the entries fire.
Problem Random(int64_t batch, int64_t d, int64_t n, uint64_t seed) {
  Problem problem{RandomStepProblem(batch, d, n, seed), torch::Tensor()};
  problem.log_threshold = (0.5 + torch::rand({n})).log();
  return problem;
}

struct Reference {
  double loss, mse, l0;
  std::vector<torch::Tensor> grads;  // W_enc, b_enc, W_dec, b_dec
  torch::Tensor log_threshold_grad;
};

Reference Dense(const Problem& problem, const JumpReluTrainStepOptions& options) {
  std::vector<torch::Tensor> leaves = Float64Leaves(problem.p);
  torch::Tensor log_threshold = problem.log_threshold.to(torch::kFloat64).requires_grad_(true);
  LossInputs inputs{problem.p.x.to(torch::kFloat64), leaves[0], leaves[1], leaves[2], leaves[3]};
  inputs.extra["log_threshold"] = log_threshold;
  JumpReluLossOptions loss_options;
  loss_options.variant = JumpReluConfig::STANDARD;
  loss_options.bandwidth = options.bandwidth;
  loss_options.sparsity_coefficient = options.sparsity_coefficient;
  LossOutput out = JumpReluLoss(inputs, loss_options);
  out.loss.backward();
  Reference ref{out.loss.item<double>(), out.terms.at("mse").item<double>(),
                out.terms.at("l0").item<double>(), {}, log_threshold.grad()};
  for (const torch::Tensor& leaf : leaves) ref.grads.push_back(leaf.grad());
  return ref;
}

struct Sparse {
  JumpReluTrainStepResult result;
  std::vector<torch::Tensor> grads;  // W_enc, b_enc, W_dec, b_dec
  torch::Tensor log_threshold_grad;
};

Sparse RunStep(const Problem& problem, const JumpReluTrainStepOptions& options,
               JumpReluTrainStepWorkspace* workspace) {
  Sparse s{{}, NanGradients(problem.p),
           torch::full_like(problem.log_threshold, std::numeric_limits<float>::quiet_NaN())};
  const StepProblem& p = problem.p;
  s.result = JumpReluTrainStep(
      p.x, {p.W_enc, p.b_enc, p.W_dec, p.b_dec, problem.log_threshold}, options,
      {s.grads[0], s.grads[1], s.grads[2], s.grads[3], s.log_threshold_grad}, workspace);
  return s;
}

// The firing and band sets from float32 and float64 pre-activations agree
// (else an entry within rounding of theta or of a band edge would make the
// comparison meaningless): a check on the test's own problem.
void ExpectSameSetsInBothPrecisions(const Problem& problem, double bandwidth) {
  const StepProblem& p = problem.p;
  const torch::Tensor theta = problem.log_threshold.exp();
  const torch::Tensor z32 = torch::addmm(p.b_enc, p.x, p.W_enc);
  const torch::Tensor z64 = torch::addmm(p.b_enc.to(torch::kFloat64), p.x.to(torch::kFloat64),
                                         p.W_enc.to(torch::kFloat64));
  const torch::Tensor theta64 = theta.to(torch::kFloat64);
  ASSERT_TRUE(torch::equal(z32 > theta, z64 > theta64));
  ASSERT_TRUE(torch::equal(((z32 - theta) / bandwidth).abs() <= 0.5,
                           ((z64 - theta64) / bandwidth).abs() <= 0.5));
}

TEST(JumpReluTrainStepTest, LossAndGradientsMatchTheFloat64DenseReference) {
  for (double lambda : {0.0, 0.5}) {
    const Problem problem = Random(/*batch=*/96, /*d=*/24, /*n=*/300, /*seed=*/7);
    JumpReluTrainStepOptions options;
    options.bandwidth = 0.2;
    options.sparsity_coefficient = lambda;
    options.max_density = 1.0;
    ExpectSameSetsInBothPrecisions(problem, options.bandwidth);
    const Reference ref = Dense(problem, options);
    JumpReluTrainStepWorkspace workspace;
    const Sparse got = RunStep(problem, options, &workspace);
    ASSERT_TRUE(got.result.computed);
    const std::string label = "lambda " + std::to_string(lambda);
    EXPECT_NEAR(got.result.loss, ref.loss, 1e-5 * ref.loss) << label;
    EXPECT_NEAR(got.result.mse, ref.mse, 1e-5 * ref.mse) << label;
    EXPECT_EQ(got.result.l0, ref.l0) << label;
    ExpectGradientsNear(got.grads, ref.grads, 2e-5, label);
    const double scale = ref.log_threshold_grad.abs().max().item<double>();
    ASSERT_GT(scale, 0.0) << label;
    EXPECT_LT((got.log_threshold_grad.to(torch::kFloat64) - ref.log_threshold_grad)
                  .abs()
                  .max()
                  .item<double>(),
              2e-5 * scale)
        << label;
    // fired: the latents firing on some row, from the dense code.
    const torch::Tensor z = torch::addmm(problem.p.b_enc, problem.p.x, problem.p.W_enc);
    EXPECT_TRUE(torch::equal(got.result.fired, (z > problem.log_threshold.exp()).any(0))) << label;
  }
}

// Without thresholds and with the L1 term: ReLU-L1's loss (sae/relu_l1.h).
TEST(JumpReluTrainStepTest, WithoutThresholdsItIsTheReluL1LossAndGradients) {
  const StepProblem p = RandomStepProblem(/*batch=*/96, /*d=*/24, /*n=*/300, /*seed=*/12);
  const double mu = 0.3;
  const torch::Tensor z32 = torch::addmm(p.b_enc, p.x, p.W_enc);
  const torch::Tensor z64 = torch::addmm(p.b_enc.to(torch::kFloat64), p.x.to(torch::kFloat64),
                                         p.W_enc.to(torch::kFloat64));
  ASSERT_TRUE(torch::equal(z32 > 0, z64 > 0));  // the same firing set in both precisions

  std::vector<torch::Tensor> leaves = Float64Leaves(p);
  LossInputs inputs{p.x.to(torch::kFloat64), leaves[0], leaves[1], leaves[2], leaves[3]};
  ReluL1LossOptions loss_options;
  loss_options.l1_coefficient = mu;
  LossOutput ref = ReluL1Loss(inputs, loss_options);
  ref.loss.backward();
  std::vector<torch::Tensor> ref_grads;
  for (const torch::Tensor& leaf : leaves) ref_grads.push_back(leaf.grad());

  JumpReluTrainStepOptions options;
  options.l1_coefficient = mu;
  options.max_density = 1.0;  // half the entries fire at this init
  std::vector<torch::Tensor> grads = NanGradients(p);
  JumpReluTrainStepWorkspace workspace;
  const JumpReluTrainStepResult got =
      JumpReluTrainStep(p.x, {p.W_enc, p.b_enc, p.W_dec, p.b_dec, torch::Tensor()}, options,
                        {grads[0], grads[1], grads[2], grads[3], torch::Tensor()}, &workspace);
  ASSERT_TRUE(got.computed);
  EXPECT_NEAR(got.loss, ref.loss.item<double>(), 1e-5 * ref.loss.item<double>());
  EXPECT_NEAR(got.mse, ref.terms.at("mse").item<double>(), 1e-5 * got.mse);
  EXPECT_NEAR(got.l1, ref.terms.at("l1").item<double>(), 1e-5 * got.l1);
  EXPECT_EQ(got.l0, (z32 > 0).sum(1).to(torch::kFloat64).mean().item<double>());
  ExpectGradientsNear(grads, ref_grads, 2e-5, "relu_l1");
}

TEST(JumpReluTrainStepTest, LeavesADenseCodeToTheDensePath) {
  const Problem problem = Random(96, 24, 300, 8);
  JumpReluTrainStepOptions options;
  options.bandwidth = 0.2;
  options.max_density = 0.1;  // about a fifth fire
  JumpReluTrainStepWorkspace workspace;
  const Sparse got = RunStep(problem, options, &workspace);
  EXPECT_FALSE(got.result.computed);
  EXPECT_GT(got.result.density, 0.1);
  for (const torch::Tensor& grad : got.grads) EXPECT_TRUE(grad.isnan().all().item<bool>());
  EXPECT_TRUE(got.log_threshold_grad.isnan().all().item<bool>());
}

TEST(JumpReluTrainStepTest, SameBitsOnOneAndTwoThreads) {
  const Problem problem = Random(300, 24, 1000, 9);
  JumpReluTrainStepOptions options;
  options.bandwidth = 0.2;
  options.sparsity_coefficient = 0.5;
  options.max_density = 1.0;
  JumpReluTrainStepWorkspace workspace;
  ExpectSameBitsOnOneAndTwoThreads([&] {
    Sparse s = RunStep(problem, options, &workspace);
    s.grads.push_back(s.log_threshold_grad);
    return StepBits{s.result.loss, s.grads};
  });
}

}  // namespace
}  // namespace saelab
