// The process settings every saelab binary that computes runs under, so
// experiments and benchmarks see the same BLAS kernel and allocator (a
// benchmark measures what an experiment gets).
//
//   int main(int argc, char** argv) {
//     PinRuntimeEnvironment(argv);   // may re-execute the binary once
//     ...
//   }
#ifndef SAELAB_HARNESS_RUNTIME_ENV_H_
#define SAELAB_HARNESS_RUNTIME_ENV_H_

namespace saelab {

// Settings that only take effect at process start are put in the
// environment, and the binary re-executes itself once (marked by
// SAELAB_RUNTIME_PINNED=1, so it happens once):
// - OPENBLAS_CORETYPE=Haswell. OpenBLAS picks its sgemm kernel from the CPU
//   when it loads, and kernels sum in different orders, so the same config
//   would give other bits on another x86-64 CPU. The AVX2 ("Haswell") kernel
//   runs on every AVX2 machine, making CPU runs bit-reproducible across
//   them (docs/reproducibility.md); here it was also faster than the
//   auto-picked Cooperlake kernel (0.50 vs 0.65 s per LM training step).
// - GLIBC_TUNABLES with larger malloc mmap/trim thresholds: glibc hands
//   large freed blocks back to the kernel and then page-faults them in again
//   every step (a third of LM training time went to the kernel).
// - OMP_WAIT_POLICY=PASSIVE. LibTorch's OpenMP threads otherwise spin for
//   a while after each parallel loop, on cores OpenBLAS's own threads need
//   for the next GEMM: with 2 intra-op threads on 2 cores a TopK training
//   step took 519 ms spinning and 298 ms passive (d 768, n 4096, batch
//   4096; 310 ms with 1 thread). Waiting policy changes no bits.
// - OPENBLAS_THREAD_TIMEOUT=4. OpenBLAS's worker threads likewise keep
//   calling sched_yield for 2^28 cycles (about 0.1 s) after each GEMM, on
//   the cores the intra-op threads need for the top-k, sparse passes and
//   Adam that follow it: a sixth of a TopK step's CPU samples went to that
//   spinning. 4 (2^4 cycles, OpenBLAS's minimum) puts them to sleep at once;
//   the step went from 258 to 232 ms (d 768, n 4096, 2 intra-op threads)
//   with the GEMM alone unchanged. No bits change.
// - OMP_NUM_THREADS = the CPUs this process may run on (sched_getaffinity).
//   LibTorch's intra-op pool defaults to the physical cores, 1 on a 2-vCPU
//   machine, where the top-k, the sparse passes and Adam then ran on one
//   core while OpenBLAS used both for the GEMM: a TopK step at d 768,
//   n 16384 took 0.55 of the encoder-GEMM bound on 1 thread and 0.68 on 2
//   (results/benchmarks/train_step.md). SAE training gives the same bits on
//   any thread count (trainer_test), so this changes speed only. `--threads`
//   still sets the count; data-parallel workers get an equal share.
// A variable the user already set is left alone. If re-executing fails, a
// warning is printed and the process continues unpinned. Call first thing
// in main, before any thread starts.
void PinRuntimeEnvironment(char** argv);

// The CPUs this process may run on (its affinity mask), at least 1.
int AvailableCpus();

// The malloc thresholds PinRuntimeEnvironment puts in GLIBC_TUNABLES.
// .bazelrc gives tests the same (plus huge pages) through --test_env;
// runtime_env_test fails when the two differ.
inline constexpr char kPinnedMallocTunables[] =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184:"
    "glibc.malloc.top_pad=268435456";

// Set to "1" when PinRuntimeEnvironment chose OMP_NUM_THREADS (the user did
// not), so that a launcher may give its workers a share instead.
inline constexpr char kThreadsFromCpus[] = "SAELAB_THREADS_FROM_CPUS";

}  // namespace saelab

#endif  // SAELAB_HARNESS_RUNTIME_ENV_H_
