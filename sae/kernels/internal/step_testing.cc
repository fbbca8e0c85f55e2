#include "sae/kernels/internal/step_testing.h"

#include <ATen/Parallel.h>

#include <limits>

#include "gtest/gtest.h"

namespace saelab {

StepProblem RandomStepProblem(int64_t batch, int64_t d, int64_t n, uint64_t seed,
                              double bias_shift, int64_t hot_rows) {
  torch::manual_seed(seed);
  StepProblem p;
  p.x = torch::randn({batch, d});
  if (hot_rows > 0) p.x.narrow(0, 0, hot_rows).mul_(4.0);
  p.W_dec = torch::randn({n, d});
  p.W_dec /= p.W_dec.norm(2, 1, true);
  p.W_enc = (p.W_dec.t() + 0.1 * torch::randn({d, n})).contiguous();
  p.b_enc = 0.1 * torch::randn({n});
  if (bias_shift != 0.0) p.b_enc += bias_shift;
  p.b_dec = 0.1 * torch::randn({d});
  return p;
}

std::vector<torch::Tensor> Float64Leaves(const StepProblem& p) {
  std::vector<torch::Tensor> leaves;
  for (const torch::Tensor& t : {p.W_enc, p.b_enc, p.W_dec, p.b_dec}) {
    leaves.push_back(t.to(torch::kFloat64).requires_grad_(true));
  }
  return leaves;
}

std::vector<torch::Tensor> NanGradients(const StepProblem& p) {
  std::vector<torch::Tensor> grads;
  for (const torch::Tensor& t : {p.W_enc, p.b_enc, p.W_dec, p.b_dec}) {
    grads.push_back(torch::full_like(t, std::numeric_limits<float>::quiet_NaN()));
  }
  return grads;
}

void ExpectGradientsNear(const std::vector<torch::Tensor>& got,
                         const std::vector<torch::Tensor>& want, double tolerance,
                         const std::string& label) {
  const char* names[] = {"W_enc", "b_enc", "W_dec", "b_dec"};
  ASSERT_EQ(got.size(), 4u);
  ASSERT_EQ(want.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const double scale = want[i].abs().max().item<double>();
    ASSERT_GT(scale, 0.0) << label << " " << names[i];
    const double error = (got[i].to(torch::kFloat64) - want[i]).abs().max().item<double>();
    EXPECT_LT(error, tolerance * scale) << label << " " << names[i];
  }
}

void ExpectSameBitsOnOneAndTwoThreads(const std::function<StepBits()>& step) {
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const StepBits one = step();
  at::set_num_threads(2);
  const StepBits two = step();
  at::set_num_threads(threads);
  EXPECT_EQ(one.loss, two.loss);
  ASSERT_EQ(one.grads.size(), two.grads.size());
  for (size_t i = 0; i < one.grads.size(); ++i) {
    EXPECT_TRUE(torch::equal(one.grads[i], two.grads[i])) << "gradient " << i;
  }
}

}  // namespace saelab
