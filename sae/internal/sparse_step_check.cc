#include "sae/internal/sparse_step_check.h"

#include <cmath>

#include "gtest/gtest.h"

namespace saelab {

void ExpectSparseStepMatchesDensePath(Sae& sae, const torch::Tensor& x, const TrainStepInfo& info,
                                      const std::vector<std::string>& terms) {
  TrainOutput sparse;
  ASSERT_TRUE(sae.TrainStepGradients(x, info, &sparse));
  std::vector<torch::Tensor> sparse_grads;
  for (const torch::Tensor& p : sae.parameters()) sparse_grads.push_back(p.grad().clone());
  for (const torch::Tensor& p : sae.parameters()) p.mutable_grad().zero_();
  TrainOutput dense = sae.TrainForward(x, info);
  dense.loss.backward();
  EXPECT_NEAR(sparse.loss.item<double>(), dense.loss.item<double>(),
              1e-5 * dense.loss.item<double>());
  for (const std::string& term : terms) {
    EXPECT_NEAR(sparse.terms.at(term), dense.terms.at(term), 1e-5 * std::abs(dense.terms.at(term)))
        << term;
  }
  EXPECT_TRUE(torch::equal(sparse.fired, (dense.f != 0).any(0)));
  const std::vector<torch::Tensor> params = sae.parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    const double scale = params[i].grad().abs().max().item<double>();
    ASSERT_GT(scale, 0.0) << "parameter " << i;
    EXPECT_LT((sparse_grads[i] - params[i].grad()).abs().max().item<double>(), 1e-4 * scale)
        << "parameter " << i;
  }
}

}  // namespace saelab
