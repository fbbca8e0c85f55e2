// torch::mm throughput on square float32 matrices: the sgemm ceiling that
// training benchmarks are measured against, at a few sizes, plus which BLAS
// library does the work (OpenBLAS vs Debian's reference BLAS is a ~40x gap).
//
//   ./bazelw run //harness:sgemm_benchmark
#include <benchmark/benchmark.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "harness/benchmark_main.h"

namespace saelab {
namespace {

void BM_Sgemm(benchmark::State& state) {
  const int64_t size = state.range(0);
  torch::NoGradGuard no_grad;
  torch::Tensor a = torch::randn({size, size}), b = torch::randn({size, size});
  for (auto _ : state) benchmark::DoNotOptimize(torch::mm(a, b));
  // Printed as e.g. "FLOP/s=180G/s", i.e. GFLOP/s.
  state.counters["FLOP/s"] = benchmark::Counter(2.0 * size * size * size * state.iterations(),
                                                benchmark::Counter::kIsRate);
}
BENCHMARK(BM_Sgemm)->Arg(512)->Arg(1024)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  // The ceiling itself is what this binary shows, at several sizes.
  saelab::BenchmarkMainOptions options;
  options.measure_sgemm = false;
  return saelab::RunBenchmarkMain(argc, argv, options);
}
