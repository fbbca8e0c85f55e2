// One full SAE training step as the trainer runs it (forward, backward,
// decoder-gradient projection, grad clip, Adam, decoder renormalisation) at
// d_in = 512, n_latents = 8192, batch 4096. Reports tokens/s and
// sgemm_fraction: achieved FLOP/s over the machine's sgemm ceiling, measured
// at startup in the same process. The step is dense-matmul bound, so the
// fraction should be most of 1; the gap is TopK selection, scatter,
// elementwise ops and Adam.
//
//   ./bazelw run -c opt //sae:train_step_benchmark
#include <benchmark/benchmark.h>
#include <torch/optim/adam.h>
#include <torch/types.h>
// After types.h: LibTorch's clip_grad.h does not include what it uses.
#include <torch/types.h>
// After types.h: LibTorch's clip_grad.h does not include what it uses.
#include <torch/nn/utils.h>

#include <chrono>
#include <iostream>
#include <memory>
#include <tuple>
#include <vector>

#include "absl/status/statusor.h"
#include "harness/benchmark_main.h"
#include "sae/factory.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

constexpr int64_t kDIn = 512, kNLatents = 8192, kBatch = 4096, kK = 32;

// FLOPs credited to one step: six matmuls of 2*B*d*n each, i.e. 12*B*d*n
// (the "6 x parameters x tokens" rule, with 2*d*n parameters):
//   forward   z = x W_enc,          x_hat = f W_dec
//   backward  dW_enc = x^T dz,      dx = dz W_enc^T,
//             df = dx_hat W_dec^T,  dW_dec = f^T dx_hat.
// The same count for every variant keeps sgemm_fraction comparable across
// them (it is proportional to tokens/s): AuxK's extra decoder pass (three
// more matmuls) earns no credit, and ReLU-L1 is not charged less for
// skipping dx (its encoder input needs no gradient; TopK's x - b_dec does).
constexpr double kStepFlops = 12.0 * kBatch * kDIn * kNLatents;

enum class Arch { kReluL1, kTopK };

absl::StatusOr<std::unique_ptr<Sae>> MakeSae(Arch arch, SaeConfig* config) {
  config->set_name(arch == Arch::kReluL1 ? "relu_l1" : "topk");
  config->set_n_latents(kNLatents);
  config->mutable_trainer()->set_batch_size(kBatch);
  if (arch == Arch::kReluL1) {
    config->mutable_relu_l1();
  } else {
    config->mutable_topk()->set_k(kK);
  }
  if (absl::Status status = ResolveSaeConfig(kDIn, config); !status.ok()) return status;
  return CreateSae(*config, kDIn, /*seed=*/1);
}

// dead_fraction > 0 marks that share of latents dead, so TopK adds AuxK.
void BM_TrainStep(benchmark::State& state, Arch arch, double dead_fraction) {
  SaeConfig config;
  absl::StatusOr<std::unique_ptr<Sae>> made = MakeSae(arch, &config);
  if (!made.ok()) {
    state.SkipWithError(made.status().ToString().c_str());
    return;
  }
  Sae& sae = **made;
  const TrainerConfig& trainer = config.trainer();
  std::vector<torch::Tensor> params = sae.parameters();
  torch::optim::Adam adam(params, torch::optim::AdamOptions(trainer.lr())
                                      .betas({trainer.adam_beta1(), trainer.adam_beta2()})
                                      .eps(trainer.adam_eps()));
  torch::Tensor x = torch::randn({kBatch, kDIn});
  // Past ReLU-L1's lambda warm-up; the first dead_fraction of latents dead.
  TrainStepInfo info{/*step=*/100, /*total_steps=*/1000,
                     torch::arange(kNLatents) < static_cast<int64_t>(dead_fraction * kNLatents)};

  auto step = [&] {
    TrainOutput out = sae.TrainForward(x, info);
    adam.zero_grad();
    out.loss.backward();
    sae.BeforeOptimizerStep();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    adam.step();
    sae.AfterOptimizerStep();
  };
  step();  // warm-up: allocates gradients and Adam state

  for (auto _ : state) step();
  const double tokens = static_cast<double>(kBatch) * static_cast<double>(state.iterations());
  SetThroughputCounters(state, tokens, kStepFlops / kBatch);
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  using saelab::Arch;
  // dead_fraction 0.5 makes TopK add the AuxK loss over 4096 dead latents.
  for (auto [name, arch, dead_fraction] : {std::tuple{"train_step/relu_l1", Arch::kReluL1, 0.0},
                                           std::tuple{"train_step/topk", Arch::kTopK, 0.0},
                                           std::tuple{"train_step/topk_auxk", Arch::kTopK, 0.5}}) {
    // ~1.5 s a step on 2 cores: a 3 s minimum gives a few timed steps each.
    benchmark::RegisterBenchmark(name, saelab::BM_TrainStep, arch, dead_fraction)
        ->UseRealTime()
        ->MinTime(3.0)
        ->Unit(benchmark::kMillisecond);
  }
  return saelab::RunBenchmarkMain(argc, argv);
}
