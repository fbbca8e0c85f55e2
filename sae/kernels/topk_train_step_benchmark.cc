// TopKTrainStep alone (loss and gradients, no optimizer), with AuxK off
// and with AuxK on half the latents (every other one dead), at the
// train-step benchmark's shapes: d 512 / n 8192 and d 768 / n 4096, 16384,
// 65536, batch 4096, k 32, k_aux the paper's default (256 at d 512, 512 at
// d 768). sgemm_fraction is the encoder-GEMM bound fraction (tokens/s
// times 2 d n flops against the sgemm ceiling of this run).
// topk_encode/... times the step's encoder alone (the blocked GEMM and the
// selections), so the AuxK selection's cost is the difference of its two
// rows.
//
// scattered_row_ceiling/... is what AuxK's own passes are measured
// against: the rate of their inner loop, AxpyEntries (internal/row_ops.h),
// with nothing else in the way. For each of
// the batch's rows it sums k_aux picked rows (latent order, random picks
// among the m = n/2 dead latents) of a packed [m, 64] slice into eight
// registers, one load per FMA, slice after slice over d, rows split over
// the intra-op threads as in the step. AuxK does this work four times
// (e_hat, dz, the decoder and encoder gradients: 4 batch k_aux d
// multiply-adds), so four times this row's time is the least AuxK can add
// to a step at this loop's rate (its selection comes on top); its
// sgemm_fraction says how far below the sgemm ceiling that loop runs. Its
// gflops counts 2 k_aux d flops per row. The packed slice is m * 256 bytes:
// 512 KB at d 768, n 4096, which stays in L2; at n 16384 and 65536 (2 and
// 8 MB) it spills, so those rows are slower than a chunked pass need be.
//
//   ./bazelw run -c opt //sae/kernels:topk_train_step_benchmark
//   ./bazelw run -c opt //sae/kernels:topk_train_step_benchmark -- --benchmark_filter=n16384
#include <benchmark/benchmark.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/benchmark_main.h"
#include "harness/parallel_for.h"
#include "sae/kernels/internal/row_ops.h"
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

void BM_ScatteredRowCeiling(benchmark::State& state, int64_t d, int64_t n) {
  constexpr int64_t kSlice = 64;
  const int64_t m = n / 2, k_aux = std::min(DefaultKAux(d, n), m);
  std::vector<float> packed(m * kSlice), coef(kBatch * k_aux), out(kBatch * kSlice);
  std::vector<int32_t> picks(kBatch * k_aux);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1, 1);
  for (float& v : packed) v = uniform(rng);
  for (float& v : coef) v = uniform(rng);
  std::vector<int32_t> latents(m);
  std::iota(latents.begin(), latents.end(), 0);
  for (int64_t b = 0; b < kBatch; ++b) {
    // k_aux distinct latents per row, ascending (std::sample keeps order).
    std::sample(latents.begin(), latents.end(), picks.begin() + b * k_aux, k_aux, rng);
  }
  auto pass = [&] {
    // d / 64 slices; the same packed slice stands in for each (the data a
    // real slice pass reads has the same size and layout).
    for (int64_t slice = 0; slice < d / kSlice; ++slice) {
      ParallelFor(0, kBatch, 64, [&](int64_t begin, int64_t end) {
        for (int64_t b = begin; b < end; ++b) {
          const float* c = coef.data() + b * k_aux;
          const int32_t* p = picks.data() + b * k_aux;
          float* y = out.data() + b * kSlice;
          std::fill(y, y + kSlice, 0.0f);
          kernels_internal::AxpyEntries(
              kSlice, k_aux, [&](int64_t e) { return c[e]; },
              [&](int64_t e) { return packed.data() + p[e] * kSlice; }, y);
        }
      });
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  };
  pass();
  for (auto _ : state) pass();
  SetThroughputCounters(state, static_cast<double>(kBatch) * state.iterations(), 2.0 * k_aux * d);
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
    benchmark::RegisterBenchmark(
        absl::StrCat("scattered_row_ceiling/d", shape.d, "_n", shape.n).c_str(),
        saelab::BM_ScatteredRowCeiling, shape.d, shape.n)
        ->UseRealTime()
        ->MinTime(1.0)
        ->Unit(benchmark::kMillisecond);
  }
  return saelab::RunBenchmarkMain(argc, argv);
}
