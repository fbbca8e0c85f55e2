// GatedTrainStep against the dense reference, GatedLoss (sae/gated.h)
// differentiated by autograd in float64 (gated_test holds that loss to the
// paper's): the loss, its three terms and all six gradients, with the L1
// coefficient on and off and a non-zero r_mag; a code denser than
// max_density is left alone; the same bits on 1 and 2 threads.
#include "sae/kernels/gated_train_step.h"

#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "sae/gated.h"
#include "sae/kernels/internal/step_testing.h"
#include "sae/sae.h"

namespace saelab {
namespace {

struct Problem {
  StepProblem p;
  torch::Tensor r_mag, b_mag;  // [n]
};

// b_gate shifted down by 0.8, so about a fifth of the gates open; r_mag
// ~ N(0, 0.3^2), b_mag ~ N(0, 0.2^2), so some open gates have pi_mag <= 0.
Problem Random(int64_t batch, int64_t d, int64_t n, uint64_t seed) {
  Problem problem{RandomStepProblem(batch, d, n, seed, /*bias_shift=*/-0.8), {}, {}};
  problem.r_mag = 0.3 * torch::randn({n});
  problem.b_mag = 0.2 * torch::randn({n});
  return problem;
}

struct Result {
  double loss = 0, mse = 0, l1 = 0, aux = 0;
  // W_enc, b_enc, W_dec, b_dec, r_mag, b_mag
  std::vector<torch::Tensor> grads;
};

Result Dense(const Problem& problem, double lambda) {
  std::vector<torch::Tensor> leaves = Float64Leaves(problem.p);
  torch::Tensor r_mag = problem.r_mag.to(torch::kFloat64).requires_grad_(true);
  torch::Tensor b_mag = problem.b_mag.to(torch::kFloat64).requires_grad_(true);
  LossInputs inputs{problem.p.x.to(torch::kFloat64), leaves[0], leaves[1], leaves[2], leaves[3]};
  inputs.extra["r_mag"] = r_mag;
  inputs.extra["b_mag"] = b_mag;
  GatedLossOptions options;
  options.l1_coefficient = lambda;
  LossOutput out = GatedLoss(inputs, options);
  out.loss.backward();
  Result ref{out.loss.item<double>(), out.terms.at("mse").item<double>(),
             out.terms.at("l1").item<double>(), out.terms.at("aux").item<double>(), {}};
  for (const torch::Tensor& leaf : leaves) ref.grads.push_back(leaf.grad());
  ref.grads.push_back(r_mag.grad());
  ref.grads.push_back(b_mag.grad());
  return ref;
}

struct Sparse {
  GatedTrainStepResult result;
  std::vector<torch::Tensor> grads;
};

Sparse RunStep(const Problem& problem, const GatedTrainStepOptions& options,
               GatedTrainStepWorkspace* workspace) {
  Sparse s{{}, NanGradients(problem.p)};
  const float nan = std::numeric_limits<float>::quiet_NaN();
  s.grads.push_back(torch::full_like(problem.r_mag, nan));
  s.grads.push_back(torch::full_like(problem.b_mag, nan));
  const StepProblem& p = problem.p;
  s.result = GatedTrainStep(
      p.x, {p.W_enc, p.b_enc, problem.r_mag, problem.b_mag, p.W_dec, p.b_dec}, options,
      {s.grads[0], s.grads[1], s.grads[4], s.grads[5], s.grads[2], s.grads[3]}, workspace);
  return s;
}

TEST(GatedTrainStepTest, LossTermsAndGradientsMatchTheFloat64DenseReference) {
  for (double lambda : {0.0, 0.7}) {
    const Problem problem = Random(/*batch=*/96, /*d=*/24, /*n=*/300, /*seed=*/5);
    const StepProblem& p = problem.p;
    // The open gates and the positive magnitudes are the same sets in both
    // precisions (else an entry within rounding of 0 would decide).
    const torch::Tensor xc32 = p.x - p.b_dec;
    const torch::Tensor xc64 = p.x.to(torch::kFloat64) - p.b_dec.to(torch::kFloat64);
    const torch::Tensor gate32 = torch::addmm(p.b_enc, xc32, p.W_enc);
    const torch::Tensor gate64 =
        torch::addmm(p.b_enc.to(torch::kFloat64), xc64, p.W_enc.to(torch::kFloat64));
    ASSERT_TRUE(torch::equal(gate32 > 0, gate64 > 0));
    const torch::Tensor mag64 = torch::addmm(problem.b_mag.to(torch::kFloat64), xc64,
                                             p.W_enc.to(torch::kFloat64) *
                                                 problem.r_mag.to(torch::kFloat64).exp());
    const torch::Tensor mag32 =
        torch::addmm(problem.b_mag, xc32, p.W_enc * problem.r_mag.exp());
    ASSERT_TRUE(torch::equal(mag32 > 0, mag64 > 0));
    const double open = (gate32 > 0).to(torch::kFloat64).mean().item<double>();
    ASSERT_GT(open, 0.05);
    ASSERT_LT(open, 0.5);
    ASSERT_TRUE(((gate32 > 0) & (mag32 <= 0)).any().item<bool>());  // the magnitude ReLU matters

    const Result ref = Dense(problem, lambda);
    GatedTrainStepOptions options;
    options.l1_coefficient = lambda;
    options.max_density = 1.0;
    GatedTrainStepWorkspace workspace;
    const Sparse got = RunStep(problem, options, &workspace);
    ASSERT_TRUE(got.result.computed);
    const std::string label = "lambda " + std::to_string(lambda);
    EXPECT_NEAR(got.result.loss, ref.loss, 1e-5 * ref.loss) << label;
    EXPECT_NEAR(got.result.mse, ref.mse, 1e-5 * ref.mse) << label;
    EXPECT_NEAR(got.result.l1, ref.l1, 1e-5 * ref.l1) << label;
    EXPECT_NEAR(got.result.aux, ref.aux, 1e-5 * ref.aux) << label;
    ExpectGradientsNear({got.grads[0], got.grads[1], got.grads[2], got.grads[3]},
                        {ref.grads[0], ref.grads[1], ref.grads[2], ref.grads[3]}, 2e-5, label);
    for (int j : {4, 5}) {  // r_mag, b_mag
      const double scale = ref.grads[j].abs().max().item<double>();
      ASSERT_GT(scale, 0.0) << label << " " << j;
      EXPECT_LT((got.grads[j].to(torch::kFloat64) - ref.grads[j]).abs().max().item<double>(),
                2e-5 * scale)
          << label << " " << j;
    }
    // fired: f > 0 somewhere, from the dense code.
    EXPECT_TRUE(torch::equal(got.result.fired, ((gate32 > 0) & (mag32 > 0)).any(0))) << label;
    EXPECT_EQ(got.result.l0, ((gate32 > 0) & (mag32 > 0)).sum(1).to(torch::kFloat64).mean().item<double>());
  }
}

TEST(GatedTrainStepTest, LeavesADenseCodeToTheDensePath) {
  const Problem problem = Random(96, 24, 300, 6);
  GatedTrainStepOptions options;
  options.max_density = 0.05;  // about a fifth open
  GatedTrainStepWorkspace workspace;
  const Sparse got = RunStep(problem, options, &workspace);
  EXPECT_FALSE(got.result.computed);
  EXPECT_GT(got.result.density, 0.05);
  for (const torch::Tensor& grad : got.grads) EXPECT_TRUE(grad.isnan().all().item<bool>());
}

TEST(GatedTrainStepTest, SameBitsOnOneAndTwoThreads) {
  const Problem problem = Random(300, 24, 1000, 9);
  GatedTrainStepOptions options;
  options.l1_coefficient = 0.5;
  options.max_density = 1.0;
  GatedTrainStepWorkspace workspace;
  ExpectSameBitsOnOneAndTwoThreads([&] {
    Sparse s = RunStep(problem, options, &workspace);
    return StepBits{s.result.loss, s.grads};
  });
}

}  // namespace
}  // namespace saelab
