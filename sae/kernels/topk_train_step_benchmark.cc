// TopKTrainStep alone (loss and gradients, no optimizer), with AuxK off
// and with AuxK on half the latents (every other one dead), at the train-step benchmark's shapes: d 512 / n 8192 and d 768 /
// n 4096, 16384, 65536, batch 4096, k 32, k_aux the paper's default (256 at
// d 512, 512 at d 768). sgemm_fraction is the encoder-GEMM bound fraction
// (tokens/s times 2 d n flops against the sgemm ceiling of this run).
// topk_encode/... times the step's encoder alone (the blocked GEMM and the
// selections), so the AuxK selection's cost is the difference of its two
// rows.
//
//   ./bazelw run -c opt //sae/kernels:topk_train_step_benchmark
//   ./bazelw run -c opt //sae/kernels:topk_train_step_benchmark -- --benchmark_filter=n16384
#include <benchmark/benchmark.h>
#include <torch/types.h>

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/benchmark_main.h"
#include "sae/kernels/topk_encode.h"
#include "sae/kernels/topk_train_step.h"
#include "sae/topk.h"

namespace saelab {
namespace {

constexpr int64_t kBatch = 4096, kK = 32;

void BM_TopKTrainStep(benchmark::State& state, int64_t d, int64_t n, bool auxk) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({kBatch, d});
  torch::Tensor W_dec = torch::randn({n, d});
  W_dec /= W_dec.norm(2, 1, true);
  const torch::Tensor W_enc = (W_dec.t() + 0.1 * torch::randn({d, n})).contiguous();
  const torch::Tensor b_enc = 0.1 * torch::randn({n});
  const torch::Tensor b_dec = 0.1 * torch::randn({d});
  TopKGradients grads{torch::empty_like(W_enc), torch::empty_like(b_enc), torch::empty_like(W_dec),
                      torch::empty_like(b_dec)};
  TopKTrainStepOptions options;
  options.k = kK;
  options.k_aux = DefaultKAux(d, n);
  const torch::Tensor dead = auxk ? torch::arange(n) % 2 == 0 : torch::Tensor();
  TopKTrainStepWorkspace workspace;
  auto step = [&] {
    const TopKTrainStepResult result =
        TopKTrainStep(x, {W_enc, b_enc, W_dec, b_dec}, dead, options, grads, &workspace);
    benchmark::DoNotOptimize(result.loss);
  };
  step();  // warm-up: sizes the workspace
  for (auto _ : state) step();
  SetThroughputCounters(state, static_cast<double>(kBatch) * state.iterations(), 2.0 * d * n);
}

void BM_TopKEncode(benchmark::State& state, int64_t d, int64_t n, bool auxk) {
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({kBatch, d});
  const torch::Tensor W_enc = torch::randn({d, n}) / std::sqrt(static_cast<double>(d));
  const torch::Tensor b_enc = 0.1 * torch::randn({n});
  TopKEncodeOptions options;
  options.k = kK;
  options.k_aux = auxk ? DefaultKAux(d, n) : 0;
  if (auxk) options.dead_mask = torch::arange(n) % 2 == 0;
  TopKEncodeWorkspace workspace;
  auto encode = [&] {
    const TopKCode code = TopKEncode(x, W_enc, b_enc, options, &workspace);
    benchmark::DoNotOptimize(code.values);
  };
  encode();  // warm-up: sizes the workspace
  for (auto _ : state) encode();
  SetThroughputCounters(state, static_cast<double>(kBatch) * state.iterations(), 2.0 * d * n);
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  struct Shape {
    int64_t d, n;
  };
  for (Shape shape : {Shape{512, 8192}, Shape{768, 4096}, Shape{768, 16384}, Shape{768, 65536}}) {
    for (auto [auxk, name] : {std::pair{false, "topk"}, std::pair{true, "topk_auxk"}}) {
      benchmark::RegisterBenchmark(
          absl::StrCat("topk_train_step/", name, "/d", shape.d, "_n", shape.n).c_str(),
          saelab::BM_TopKTrainStep, shape.d, shape.n, auxk)
          ->UseRealTime()
          ->MinTime(2.0)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(
          absl::StrCat("topk_encode/", name, "/d", shape.d, "_n", shape.n).c_str(),
          saelab::BM_TopKEncode, shape.d, shape.n, auxk)
          ->UseRealTime()
          ->MinTime(1.0)
          ->Unit(benchmark::kMillisecond);
    }
  }
  return saelab::RunBenchmarkMain(argc, argv);
}
