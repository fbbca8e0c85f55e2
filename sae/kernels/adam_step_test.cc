// FusedAdamStep against LibTorch's Adam::step (the reference): parameters
// and both moments within float32 rounding after several steps, the step
// count and state layout the same (so checkpoints interchange), the same
// bits on one and two threads, and groups it cannot fuse (weight decay)
// stepped exactly as LibTorch does.
#include "sae/kernels/adam_step.h"

#include <ATen/Parallel.h>

#include <vector>

#include "gtest/gtest.h"

namespace saelab {
namespace {

struct AdamRun {
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Adam> adam;
};

AdamRun Make(const torch::optim::AdamOptions& options) {
  torch::manual_seed(1);
  AdamRun run;
  run.params = {torch::randn({300, 70}).requires_grad_(true), torch::randn({70}).requires_grad_(true),
                torch::randn({5}).requires_grad_(true)};
  run.adam = std::make_unique<torch::optim::Adam>(run.params, options);
  return run;
}

// Sets the same pseudo-random gradients for step `step` (none on the third
// parameter in odd steps, as a parameter without a gradient is skipped).
void SetGradients(AdamRun& run, int step) {
  torch::manual_seed(100 + step);
  for (size_t i = 0; i < run.params.size(); ++i) {
    torch::Tensor g = torch::randn(run.params[i].sizes()) * static_cast<double>(i + 1);
    run.params[i].mutable_grad() = (i == 2 && step % 2 == 1) ? torch::Tensor() : g;
  }
}

const torch::optim::AdamParamState& State(const AdamRun& run, size_t i) {
  return static_cast<const torch::optim::AdamParamState&>(
      *run.adam->state().at(c10::guts::to_string(run.params[i].unsafeGetTensorImpl())));
}

torch::optim::AdamOptions Options() {
  return torch::optim::AdamOptions(2e-3).betas({0.9, 0.999}).eps(6.25e-10);
}

TEST(FusedAdamStepTest, MatchesLibTorchAdamWithinFloatRounding) {
  AdamRun fused = Make(Options());
  AdamRun reference = Make(Options());
  for (int step = 0; step < 6; ++step) {
    SetGradients(fused, step);
    SetGradients(reference, step);
    FusedAdamStep(*fused.adam);
    reference.adam->step();
  }
  for (size_t i = 0; i < fused.params.size(); ++i) {
    EXPECT_TRUE(torch::allclose(fused.params[i], reference.params[i], 1e-6, 1e-6)) << i;
    EXPECT_EQ(State(fused, i).step(), State(reference, i).step()) << i;
    EXPECT_TRUE(torch::allclose(State(fused, i).exp_avg(), State(reference, i).exp_avg(), 1e-6, 1e-7)) << i;
    EXPECT_TRUE(torch::allclose(State(fused, i).exp_avg_sq(), State(reference, i).exp_avg_sq(), 1e-6, 1e-9)) << i;
  }
  EXPECT_EQ(State(fused, 2).step(), 3);  // no gradient on odd steps: skipped
  // The steps moved the parameters by about lr per step, far above the tolerance.
  EXPECT_GT((fused.params[0] - Make(Options()).params[0]).abs().max().item<float>(), 5e-3);
}

TEST(FusedAdamStepTest, SameBitsOnOneAndTwoThreads) {
  const int threads = at::get_num_threads();
  std::vector<torch::Tensor> results;
  for (int t : {1, 2}) {
    at::set_num_threads(t);
    AdamRun run = Make(Options());
    for (int step = 0; step < 3; ++step) {
      SetGradients(run, step);
      FusedAdamStep(*run.adam);
    }
    results.push_back(run.params[0].detach().clone());
  }
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(results[0], results[1]));
}

TEST(FusedAdamStepTest, WeightDecayFallsBackToLibTorchExactly) {
  AdamRun fused = Make(Options().weight_decay(0.01));
  AdamRun reference = Make(Options().weight_decay(0.01));
  for (int step = 0; step < 3; ++step) {
    SetGradients(fused, step);
    SetGradients(reference, step);
    FusedAdamStep(*fused.adam);
    reference.adam->step();
  }
  for (size_t i = 0; i < fused.params.size(); ++i) {
    EXPECT_TRUE(torch::equal(fused.params[i], reference.params[i])) << i;
  }
}

}  // namespace
}  // namespace saelab
