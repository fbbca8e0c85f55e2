// Entry point of every experiment target:
//
//   ./bazelw run //experiments:synthetic_recovery
//   ./bazelw run //experiments:synthetic_recovery -- --run_dir=/tmp/r --noplot
//   bazel-bin/experiments/synthetic_recovery --config=my.textproto
//
// The BUILD target passes the experiment's textproto as --config.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include <ATen/Parallel.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "experiments/runner.h"

ABSL_FLAG(std::string, config, "", "Path of the ExperimentConfig textproto to run.");
ABSL_FLAG(std::string, run_dir, "",
          "Run directory; an existing one with the same config is resumed. "
          "Default: results/runs/<name>/<UTC time>-<config hash>.");
ABSL_FLAG(bool, plot, true, "Draw the experiment's plot into the run directory.");
ABSL_FLAG(int, threads, 0, "Intra-op threads for LibTorch (0: its default, the core count).");

namespace {

// Settings that only take effect at process start, so they are put in the
// environment and the binary re-executes itself once:
// - OpenBLAS picks its sgemm kernel from the CPU when it loads, and kernels
//   sum in different orders, so the same config would give other bits on
//   another x86-64 CPU. The AVX2 ("Haswell") kernel runs on every AVX2
//   machine, making CPU runs bit-reproducible across them; here it was also
//   faster than the auto-picked Cooperlake kernel (0.50 vs 0.65 s per
//   train_subject_lm step).
// - glibc's malloc hands large freed blocks back to the kernel and then
//   page-faults them in again every step (a third of the time went to the
//   kernel); higher thresholds keep them.
// A variable the user already set is left alone.
void PinRuntimeEnvironment(char** argv) {
  if (std::getenv("SAELAB_RUNTIME_PINNED") != nullptr) return;
  setenv("SAELAB_RUNTIME_PINNED", "1", 1);
  setenv("OPENBLAS_CORETYPE", "Haswell", /*overwrite=*/0);
  setenv("GLIBC_TUNABLES",
         "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184:"
         "glibc.malloc.top_pad=268435456",
         /*overwrite=*/0);
  execv("/proc/self/exe", argv);
  std::perror("warning: could not re-execute with the pinned runtime settings; continuing");
}

}  // namespace

int main(int argc, char** argv) {
  PinRuntimeEnvironment(argv);
  absl::SetProgramUsageMessage("Runs one saelab experiment from its textproto config.");
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  saelab::RunnerOptions options;
  options.config_path = absl::GetFlag(FLAGS_config);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  options.plot = absl::GetFlag(FLAGS_plot);
  options.argc = argc;
  options.argv = argv;
  if (options.config_path.empty()) {
    std::fprintf(stderr, "error: --config is required\n");
    return 2;
  }
  absl::StatusOr<saelab::RunnerOutcome> outcome = saelab::RunExperiment(options);
  if (!outcome.ok()) {
    std::fprintf(stderr, "error: %s\n", outcome.status().ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "results: %s/result.textproto\n", outcome->run_dir.c_str());
  return 0;
}
