// The machine's dense float32 matmul ceiling, measured in-process.
//
// Throughput benchmarks (SAE training, activation harvesting) report their
// achieved FLOP/s as a fraction of this number, measured in the same run, so
// the ratio means "how close to the BLAS bound" whatever machine, thread
// count or BLAS build it ran on. BlasLibraryInUse() says which BLAS that is:
// Debian's libtorch silently falls back to the reference BLAS (~5 GFLOP/s at
// 2048^3 on 2 cores) unless OpenBLAS (~170-200 GFLOP/s) is installed.
//
//   double ceiling = MeasureSgemmGflops();   // e.g. 180.3
//   std::cout << BlasLibraryInUse();          // ".../openblas-pthread/libblas.so.3"
#ifndef SAELAB_HARNESS_SGEMM_CEILING_H_
#define SAELAB_HARNESS_SGEMM_CEILING_H_

#include <cstdint>
#include <string>

namespace saelab {

// GFLOP/s (2 size^3 / seconds / 1e9) of torch::mm on two random float32
// [size, size] matrices: one warm-up call, then the best of `repeats` timed
// calls. Uses the process's current LibTorch/BLAS thread settings.
double MeasureSgemmGflops(int64_t size = 2048, int repeats = 5);

// The paths of the BLAS shared libraries mapped into this process (those in
// /proc/self/maps whose file name contains "blas"), comma-separated, or
// "none found" (e.g. a statically linked BLAS, or no /proc).
std::string BlasLibraryInUse();

}  // namespace saelab

#endif  // SAELAB_HARNESS_SGEMM_CEILING_H_
