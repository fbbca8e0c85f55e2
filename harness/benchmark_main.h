// The one main of every saelab benchmark (Google Benchmark targets tagged
// `benchmark`): the same runtime as the experiments (harness/runtime_env.h:
// pinned OpenBLAS kernel and malloc thresholds), the BLAS library in use,
// and the sgemm ceiling measured in the same process before and after the
// benchmarks (the higher one is the bound: on a shared machine one
// measurement can land in a busy moment), so every benchmark reports its
// throughput as a fraction of a bound measured where it ran.
//
//   int main(int argc, char** argv) {
//     BenchmarkMainOptions options;
//     options.setup = [] { Model(); return absl::OkStatus(); };    // untimed
//     options.report = [](const BenchmarkBounds& bounds) {          // summary
//       std::printf("sgemm_fraction %.2f\n", g_gflops / bounds.sgemm_gflops);
//     };
//     return RunBenchmarkMain(argc, argv, options);
//   }
//
// Inside a benchmark, SetThroughputCounters names the counters the same way
// everywhere: tokens_per_s, gflops and sgemm_fraction.
#ifndef SAELAB_HARNESS_BENCHMARK_MAIN_H_
#define SAELAB_HARNESS_BENCHMARK_MAIN_H_

#include <functional>
#include <string>

#include "absl/status/status.h"
#include "benchmark/benchmark.h"

namespace saelab {

// What the benchmarks are measured against.
struct BenchmarkBounds {
  std::string blas;         // BlasLibraryInUse()
  double sgemm_gflops = 0;  // max(before, after); 0 when not measured
  double sgemm_gflops_before = 0;
  double sgemm_gflops_after = 0;
  // A fresh directory for the run's files (BenchmarkMainOptions.scratch_dir);
  // empty when none was asked for.
  std::string scratch_dir;
};

struct BenchmarkMainOptions {
  // Measure the sgemm ceiling (2048^3, best of 20) before and after.
  bool measure_sgemm = true;
  // Non-empty: create <system temp dir>/<scratch_dir>.XXXXXX before setup
  // (BenchmarkBounds.scratch_dir) and remove it with everything in it after
  // report, or after a failed setup.
  std::string scratch_dir;
  // Untimed set-up after flag parsing and the first ceiling measurement
  // (build a model, write a store); an error ends the program with status 1.
  std::function<absl::Status(const BenchmarkBounds&)> setup;
  // After the benchmarks: print the ratios to the bounds.
  std::function<void(const BenchmarkBounds&)> report;
};

// Pins the runtime (may re-execute the binary once), parses Google
// Benchmark's flags (unrecognised ones are an error, status 1), prints and
// records (AddCustomContext: blas, sgemm_ceiling_gflops) the bounds, runs
// setup, the registered benchmarks and report. Returns the exit status.
int RunBenchmarkMain(int argc, char** argv, const BenchmarkMainOptions& options = {});

// The ceiling measured before the benchmarks ran (0 outside RunBenchmarkMain
// or when not measured): what SetThroughputCounters divides by.
double SgemmCeilingGflops();

// Sets the counters every throughput benchmark reports: tokens_per_s (a
// rate over the benchmark's real time), gflops (flops_per_token * the same
// rate) and sgemm_fraction (gflops / SgemmCeilingGflops(), when measured).
// `tokens` is the total over all iterations.
void SetThroughputCounters(benchmark::State& state, double tokens, double flops_per_token);

}  // namespace saelab

#endif  // SAELAB_HARNESS_BENCHMARK_MAIN_H_
