// Entry point of every experiment target:
//
//   ./bazelw run //experiments:synthetic_recovery
//   ./bazelw run //experiments:synthetic_recovery -- --run_dir=/tmp/r --noplot
//   ./bazelw run //experiments:frontier_paper -- --model_dir=/data/gpt2
//   bazel-bin/experiments/synthetic_recovery --config=my.textproto
//   ./bazelw run //experiments:frontier -- --nproc=2     # data-parallel, 2 local workers
//   ./bazelw run //experiments:frontier -- --nproc=2 --shard_latents  # TopK latents split
//   torchrun --nnodes=2 --nproc_per_node=1 ... bazel-bin/experiments/frontier --config=...
//
// Started with torchrun's or Slurm's variables (RANK, WORLD_SIZE,
// MASTER_ADDR, ...; docs/scaling.md) the binary is one worker of a
// data-parallel job; --nproc=N starts N such workers on this machine.
//
// The BUILD target passes the experiment's textproto as --config.
#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "experiments/runner.h"
#include "experiments/sae_sweep.h"
#include "experiments/summary.h"
#include "harness/distributed.h"
#include "harness/launcher.h"
#include "harness/runtime_env.h"
#include "harness/train_state.h"

ABSL_FLAG(std::string, config, "", "Path of the ExperimentConfig textproto to run.");
ABSL_FLAG(std::string, run_dir, "",
          "Run directory; an existing one with the same config is resumed. "
          "Default: results/runs/<name>/<UTC time>-<config hash>.");
ABSL_FLAG(bool, plot, true, "Draw the experiment's plot into the run directory.");
ABSL_FLAG(std::string, model_dir, "",
          "Subject model directory (HF GPT-2 layout) replacing the config's "
          "subject_sae.activations.model_dir, e.g. your GPT-2 for the *_paper configs.");
ABSL_FLAG(int, threads, 0,
          "Intra-op threads for LibTorch (0: every CPU this process may use, or "
          "OMP_NUM_THREADS; provenance records the count used).");
ABSL_FLAG(int, nproc, 1,
          "Train data-parallel over this many local worker processes (like torchrun "
          "--nproc_per_node); each gets an equal share of the cores for OpenBLAS.");
ABSL_FLAG(bool, shard_latents, false,
          "With --nproc=N (or torchrun / Slurm workers): plain TopK SAEs split their latents "
          "over the workers instead of the batch (docs/scaling.md); the others stay "
          "data-parallel.");
ABSL_FLAG(bool, recover_train_state, false,
          "Set a corrupted train state aside (kept as <file>.corrupt) and resume from the "
          "previous checkpoint, or from the start, instead of stopping with an error.");

int main(int argc, char** argv) {
  saelab::PinRuntimeEnvironment(argv);
  absl::SetProgramUsageMessage("Runs one saelab experiment from its textproto config.");
  const std::vector<char*> original_argv(argv, argv + argc);
  absl::ParseCommandLine(argc, argv);
  if (absl::GetFlag(FLAGS_threads) > 0) at::set_num_threads(absl::GetFlag(FLAGS_threads));
  if (absl::GetFlag(FLAGS_config).empty()) {
    std::fprintf(stderr, "error: --config is required\n");
    return 2;
  }
  const int nproc = absl::GetFlag(FLAGS_nproc);
  absl::StatusOr<std::unique_ptr<saelab::Communicator>> comm = saelab::JoinJob(nproc);
  if (!comm.ok()) {
    std::fprintf(stderr, "error: %s\n", comm.status().ToString().c_str());
    return comm.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  if (*comm == nullptr && nproc > 1) {
    const absl::Status launched = saelab::LaunchSelf(
        nproc, static_cast<int>(original_argv.size()), const_cast<char**>(original_argv.data()));
    if (!launched.ok()) std::fprintf(stderr, "error: %s\n", launched.ToString().c_str());
    return launched.ok() ? 0 : 1;
  }
  if (absl::GetFlag(FLAGS_shard_latents) && *comm == nullptr) {
    std::fprintf(stderr,
                 "error: --shard_latents splits the latents over workers: give --nproc=N > 1 "
                 "(or start the workers with torchrun or Slurm)\n");
    return 2;
  }
  saelab::SetShardLatents(absl::GetFlag(FLAGS_shard_latents));
  saelab::SetProcessCommunicator(comm->get());
  saelab::SetRecoverCorruptTrainState(absl::GetFlag(FLAGS_recover_train_state));
  saelab::RunnerOptions options;
  options.config_path = absl::GetFlag(FLAGS_config);
  options.run_dir = absl::GetFlag(FLAGS_run_dir);
  options.plot = absl::GetFlag(FLAGS_plot);
  options.model_dir = absl::GetFlag(FLAGS_model_dir);
  options.argc = argc;
  options.argv = argv;
  absl::StatusOr<saelab::RunnerOutcome> outcome = saelab::RunExperiment(options);
  if (!outcome.ok()) {
    std::fprintf(stderr, "error: %s\n", outcome.status().ToString().c_str());
    return 1;
  }
  if (*comm != nullptr && (*comm)->rank() > 0) return 0;  // rank 0 reports
  std::fprintf(stderr, "\n%s\n", saelab::FormatSummaryTable(outcome->result).c_str());
  const std::string claims = saelab::FormatClaims(outcome->result);
  if (!claims.empty()) std::fprintf(stderr, "%s\n", claims.c_str());
  std::fprintf(stderr, "results: %s/result.textproto\n", outcome->run_dir.c_str());
  for (const saelab::SaeResult& sae : outcome->result.saes()) {
    if (sae.has_dashboard()) {
      std::fprintf(stderr, "dashboards: %s/dashboards/index.html\n", outcome->run_dir.c_str());
      break;
    }
  }
  return 0;
}
