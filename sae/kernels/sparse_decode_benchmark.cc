// Sparse vs dense decoding in full TopK training steps: TopKLoss forward
// (AuxK off), backward, the decoder-gradient projection, Adam, decoder
// renormalisation, at d_in = 768, k = 32, batch 4096 and n_latents in
// {4096, 16384, 65536}. Reports tokens/s for each decode
// (TopKLossOptions.sparse_decode) and, per n, sparse/dense tokens/s from the
// same run.
//
// The bound: the sgemm ceiling, measured first in the same process, and how
// much of it the dense encoder product z = x W_enc + b_enc [4096, 768] x
// [768, n] reaches on its own. That product (and its two backward products)
// remain in both variants; sparse decoding removes the decoder's three, so
// as n grows the sparse/dense ratio tends to about 2 (a little more where
// the dense path's extra [B, n] temporaries, e.g. the gradient of f, cost
// memory traffic).
//
//   ./bazelw run //sae/kernels:sparse_decode_benchmark
#include <benchmark/benchmark.h>
#include <torch/optim/adam.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>

#include "harness/benchmark_main.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"
#include "sae/topk.h"

namespace saelab {
namespace {

constexpr int64_t kDIn = 768, kBatch = 4096, kK = 32;

// What the table at the end prints, per n_latents; 0 = not run (filtered).
struct Row {
  double dense_tokens_per_s = 0;
  double sparse_tokens_per_s = 0;
  double encoder_gflops = 0;        // addmm into a preallocated z
  double encoder_alloc_gflops = 0;  // addmm allocating z, as the step does
};
std::map<int64_t, Row> g_rows;

double Seconds(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The encoder product alone, best of the timed iterations (like the
// ceiling). allocate = false writes into a preallocated z, so it times the
// BLAS call; true allocates z each time as TopKLoss does (at n = 65536 z is
// 1 GiB of fresh pages).
void BM_EncoderAddmm(benchmark::State& state, int64_t n, bool allocate) {
  torch::NoGradGuard no_grad;
  torch::Tensor x = torch::randn({kBatch, kDIn});
  torch::Tensor W_enc = torch::randn({kDIn, n}) / std::sqrt(static_cast<double>(kDIn));
  torch::Tensor b_enc = torch::zeros({n});
  torch::Tensor z = torch::addmm(b_enc, x, W_enc);  // warm-up
  double best = std::numeric_limits<double>::infinity();
  for (auto _ : state) {
    auto start = std::chrono::steady_clock::now();
    if (allocate) {
      z = torch::addmm(b_enc, x, W_enc);
    } else {
      torch::addmm_out(z, b_enc, x, W_enc);
    }
    best = std::min(best, Seconds(start));
  }
  const double gflops = 2.0 * kBatch * kDIn * n / best / 1e9;
  state.counters["GFLOP/s"] = gflops;
  state.counters["sgemm_fraction"] = gflops / SgemmCeilingGflops();
  (allocate ? g_rows[n].encoder_alloc_gflops : g_rows[n].encoder_gflops) = gflops;
}

void BM_TrainStep(benchmark::State& state, int64_t n, bool sparse_decode) {
  TopKConfig config;
  config.set_k(kK);
  config.set_k_aux(512);  // unused: AuxK is off
  TopKSae sae(kDIn, n, config, /*seed=*/1);
  torch::optim::Adam adam(sae.parameters(), torch::optim::AdamOptions(1e-4));
  TopKLossOptions options;
  options.k = kK;
  options.auxk_coefficient = 0.0;
  options.sparse_decode = sparse_decode;
  torch::Tensor x = torch::randn({kBatch, kDIn});

  auto step = [&] {
    torch::Tensor loss = TopKLoss({x, sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec}, options).loss;
    adam.zero_grad();
    loss.backward();
    ProjectOutParallelGradient(sae.W_dec, sae.W_dec.mutable_grad());
    adam.step();
    sae.AfterOptimizerStep();  // renormalise decoder rows
  };
  step();  // warm-up: allocates gradients and Adam state

  auto start = std::chrono::steady_clock::now();
  for (auto _ : state) step();
  const double tokens_per_s = kBatch * static_cast<double>(state.iterations()) / Seconds(start);
  state.counters["tokens/s"] = tokens_per_s;
  // Dense-equivalent FLOPs (six [B, d] x [d, n]-sized products, 12 B d n),
  // the same credit for both variants, as in sae/train_step_benchmark.cc.
  state.counters["dense_equiv_sgemm_fraction"] =
      12.0 * kDIn * n * tokens_per_s / (SgemmCeilingGflops() * 1e9);
  (sparse_decode ? g_rows[n].sparse_tokens_per_s : g_rows[n].dense_tokens_per_s) = tokens_per_s;
}

void PrintTable() {
  std::printf("\nTopK training step, d_in=%lld k=%lld batch=%lld; sgemm ceiling %.1f GFLOP/s\n",
              static_cast<long long>(kDIn), static_cast<long long>(kK),
              static_cast<long long>(kBatch), SgemmCeilingGflops());
  std::printf("%8s %14s %14s %14s %16s %16s\n", "n", "dense tok/s", "sparse tok/s", "sparse/dense",
              "encoder/ceiling", "(allocating z)");
  for (const auto& [n, row] : g_rows) {
    auto cell = [](double v, const char* format) {
      char buffer[32];
      if (v > 0) {
        std::snprintf(buffer, sizeof(buffer), format, v);
      } else {
        std::snprintf(buffer, sizeof(buffer), "-");
      }
      return std::string(buffer);
    };
    const bool both = row.dense_tokens_per_s > 0 && row.sparse_tokens_per_s > 0;
    std::printf("%8lld %14s %14s %14s %16s %16s\n", static_cast<long long>(n),
                cell(row.dense_tokens_per_s, "%.0f").c_str(),
                cell(row.sparse_tokens_per_s, "%.0f").c_str(),
                cell(both ? row.sparse_tokens_per_s / row.dense_tokens_per_s : 0, "%.2fx").c_str(),
                cell(row.encoder_gflops / SgemmCeilingGflops(), "%.2f").c_str(),
                cell(row.encoder_alloc_gflops / SgemmCeilingGflops(), "%.2f").c_str());
  }
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  // Fixed, small iteration counts (after one untimed warm-up each): a dense
  // step at n = 65536 is ~2.5 TFLOP (15-30 s on 2 cores) and holds ~5 GiB, so
  // the whole binary stays within a few minutes. Dense and sparse run back
  // to back at each n so their ratio sees the same machine state.
  struct Size {
    int64_t n;
    int encoder_iterations, step_iterations;
  };
  for (auto [n, encoder_iterations, step_iterations] :
       {Size{4096, 3, 5}, Size{16384, 3, 3}, Size{65536, 2, 2}}) {
    const std::string suffix = "/n:" + std::to_string(n);
    benchmark::RegisterBenchmark(("encoder_addmm" + suffix).c_str(), saelab::BM_EncoderAddmm, n,
                                 /*allocate=*/false)
        ->Iterations(encoder_iterations)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("encoder_addmm_allocating" + suffix).c_str(),
                                 saelab::BM_EncoderAddmm, n, /*allocate=*/true)
        ->Iterations(encoder_iterations)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    for (bool sparse : {false, true}) {
      benchmark::RegisterBenchmark(
          ((sparse ? "train_step/sparse" : "train_step/dense") + suffix).c_str(),
          saelab::BM_TrainStep, n, sparse)
          ->Iterations(step_iterations)
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
    }
  }
  saelab::BenchmarkMainOptions options;
  options.report = [](const saelab::BenchmarkBounds&) { saelab::PrintTable(); };
  return saelab::RunBenchmarkMain(argc, argv, options);
}
