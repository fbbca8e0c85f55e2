// Full SAE training steps as the trainer runs them (the sparse step where
// the architecture has one, else forward + autograd backward; decoder
// gradient projection, grad clip, Adam, renormalisation), for every
// architecture, at d_in 512 / n 8192 and d_in 768 / n 4096, 16384, 65536,
// batch 4096, k 32.
//
// The bound is the encoder GEMM: a k-sparse step needs exactly one dense
// O(batch * d * n) product, x W_enc, so no step can beat the tokens/s at
// which that GEMM alone runs at the sgemm ceiling (measured in the same
// process): bound = ceiling / (2 d n) tokens/s. Each benchmark reports
// tokens_per_s and bound_fraction (tokens/s over that bound);
// encoder_gemm/... times the GEMM itself into a reused buffer, the
// fraction a step could reach at best here.
//
//   ./bazelw run //sae:train_step_benchmark                                  # all (~20 min)
//   ./bazelw run //sae:train_step_benchmark -- --benchmark_filter='d768_n16384'
//
// Variants: topk and batch_topk with and without AuxK (AuxK: half the
// latents dead), topk_dense (TopK through the dense autograd reference,
// sparse_decode false), multi_topk (factor 4), relu_l1 (at its initial
// biases: dense), relu_l1_sparse (at a trained SAE's sparsity), jumprelu (at its
// initial thresholds: dense), jumprelu_sparse (at a trained SAE's sparsity:
// the sparse step), gated (at its initial biases: dense), gated_sparse (at a
// trained SAE's sparsity: the sparse step).
#include <benchmark/benchmark.h>
#include <torch/optim/adam.h>
#include <torch/types.h>
#include <ATen/Parallel.h>
// After types.h: LibTorch's clip_grad.h does not include what it uses.
#include <torch/nn/utils.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "harness/benchmark_main.h"
#include "sae/factory.h"
#include "sae/kernels/adam_step.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

constexpr int64_t kBatch = 4096, kK = 32;

struct Shape {
  int64_t d_in, n_latents;
};

struct Variant {
  std::string name;
  // Sets the architecture and its knobs on a config with name, n and batch set.
  std::function<void(SaeConfig*)> configure;
  double dead_fraction = 0.0;  // > 0: that share of latents dead (AuxK on)
  // Changes the fresh SAE's parameters (e.g. to a trained SAE's sparsity).
  std::function<void(Sae&)> prepare;
};

std::vector<Variant> Variants() {
  return {
      {"topk", [](SaeConfig* c) { c->mutable_topk()->set_k(kK); }},
      {"topk_auxk", [](SaeConfig* c) { c->mutable_topk()->set_k(kK); }, 0.5},
      {"multi_topk",
       [](SaeConfig* c) {
         c->mutable_topk()->set_k(kK);
         c->mutable_topk()->set_multi_topk_factor(4);
       }},
      {"topk_dense",
       [](SaeConfig* c) {
         c->mutable_topk()->set_k(kK);
         c->mutable_topk()->set_sparse_decode(false);
       }},
      {"batch_topk", [](SaeConfig* c) { c->mutable_batch_topk()->set_k(kK); }},
      {"batch_topk_auxk", [](SaeConfig* c) { c->mutable_batch_topk()->set_k(kK); }, 0.5},
      {"relu_l1", [](SaeConfig* c) { c->mutable_relu_l1(); }},
      // b_enc -0.25 with z ~ N(0, 0.1^2) (decoder_init_norm 0.1): 0.6% of the
      // latents fire, as in a trained ReLU-L1 SAE, so the sparse step runs.
      {"relu_l1_sparse", [](SaeConfig* c) { c->mutable_relu_l1(); }, 0.0,
       [](Sae& sae) {
         torch::NoGradGuard no_grad;
         sae.b_enc.fill_(-0.25);
       }},
      {"jumprelu", [](SaeConfig* c) { c->mutable_jumprelu(); }},
      // Thresholds 2.5 with z ~ N(0, 1): 0.6% of the latents fire, as in a
      // trained JumpReLU SAE, so the sparse step runs (at the paper's
      // initial 0.001 half of them fire and the dense path runs).
      {"jumprelu_sparse",
       [](SaeConfig* c) { c->mutable_jumprelu()->set_initial_threshold(2.5); }},
      {"gated", [](SaeConfig* c) { c->mutable_gated(); }},
      // b_gate -2.5 with pi_gate ~ N(0, 1) (unit decoder rows, W_gate =
      // W_dec^T): 0.6% of the gates open, as in a trained Gated SAE, so the
      // sparse step runs.
      {"gated_sparse", [](SaeConfig* c) { c->mutable_gated(); }, 0.0,
       [](Sae& sae) {
         torch::NoGradGuard no_grad;
         sae.b_enc.fill_(-2.5);
       }},
  };
}

// Tokens/s over the encoder-GEMM bound, as a rate counter.
void SetBoundCounters(benchmark::State& state, const Shape& shape) {
  const double tokens = static_cast<double>(kBatch) * static_cast<double>(state.iterations());
  state.counters["tokens_per_s"] = benchmark::Counter(tokens, benchmark::Counter::kIsRate);
  const double ceiling = SgemmCeilingGflops();
  if (ceiling > 0) {
    const double gemm_gflop_per_token = 2.0 * shape.d_in * shape.n_latents / 1e9;
    state.counters["bound_fraction"] =
        benchmark::Counter(tokens * gemm_gflop_per_token / ceiling, benchmark::Counter::kIsRate);
  }
}

void BM_TrainStep(benchmark::State& state, Shape shape, Variant variant) {
  SaeConfig config;
  config.set_name(variant.name);
  config.set_n_latents(shape.n_latents);
  config.mutable_trainer()->set_batch_size(kBatch);
  variant.configure(&config);
  absl::StatusOr<std::unique_ptr<Sae>> made = [&]() -> absl::StatusOr<std::unique_ptr<Sae>> {
    if (absl::Status status = ResolveSaeConfig(shape.d_in, &config); !status.ok()) return status;
    return CreateSae(config, shape.d_in, /*seed=*/1);
  }();
  if (!made.ok()) {
    state.SkipWithError(made.status().ToString().c_str());
    return;
  }
  Sae& sae = **made;
  if (variant.prepare) variant.prepare(sae);
  const TrainerConfig& trainer = config.trainer();
  std::vector<torch::Tensor> params = sae.parameters();
  torch::optim::Adam adam(params, torch::optim::AdamOptions(trainer.lr())
                                      .betas({trainer.adam_beta1(), trainer.adam_beta2()})
                                      .eps(trainer.adam_eps()));
  torch::manual_seed(2);
  const torch::Tensor x = torch::randn({kBatch, shape.d_in});
  // Past the sparsity warm-ups; the first dead_fraction of latents dead.
  TrainStepInfo info{/*step=*/100, /*total_steps=*/1000,
                     torch::arange(shape.n_latents) <
                         static_cast<int64_t>(variant.dead_fraction * shape.n_latents)};

  // The trainer's step (sae/trainer.cc).
  auto step = [&] {
    TrainOutput out;
    if (!sae.TrainStepGradients(x, info, &out)) {
      out = sae.TrainForward(x, info);
      adam.zero_grad();
      out.loss.backward();
    }
    benchmark::DoNotOptimize(out.loss.item<double>());
    sae.BeforeOptimizerStep();
    torch::nn::utils::clip_grad_norm_(params, 1.0);
    FusedAdamStep(adam);
    sae.AfterOptimizerStep();
  };
  step();  // warm-up: allocates gradients, Adam state and workspaces

  for (auto _ : state) step();
  SetBoundCounters(state, shape);
}

// The bound's own GEMM, x [batch, d] W_enc [d, n] into a reused buffer.
void BM_EncoderGemm(benchmark::State& state, Shape shape) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({kBatch, shape.d_in});
  const torch::Tensor W = torch::randn({shape.d_in, shape.n_latents});
  torch::Tensor z = torch::empty({kBatch, shape.n_latents});
  torch::mm_out(z, x, W);
  for (auto _ : state) torch::mm_out(z, x, W);
  SetBoundCounters(state, shape);
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  using saelab::Shape;
  for (Shape shape : {Shape{512, 8192}, Shape{768, 4096}, Shape{768, 16384}, Shape{768, 65536}}) {
    const std::string suffix = absl::StrCat("/d", shape.d_in, "_n", shape.n_latents);
    benchmark::RegisterBenchmark(("encoder_gemm" + suffix).c_str(), saelab::BM_EncoderGemm, shape)
        ->UseRealTime()
        ->MinTime(1.0)
        ->Unit(benchmark::kMillisecond);
    for (const saelab::Variant& variant : saelab::Variants()) {
      // A step takes 0.1 s to tens of seconds: a 2 s minimum gives a few.
      benchmark::RegisterBenchmark(("train_step/" + variant.name + suffix).c_str(),
                                   saelab::BM_TrainStep, shape, variant)
          ->UseRealTime()
          ->MinTime(2.0)
          ->Unit(benchmark::kMillisecond);
    }
  }
  // The kernels' row and latent passes run on LibTorch's intra-op pool.
  benchmark::AddCustomContext("torch_threads", std::to_string(at::get_num_threads()));
  return saelab::RunBenchmarkMain(argc, argv);
}
