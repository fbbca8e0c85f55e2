// Kill -9 and resume, as a crash or an OOM killer would do it: the saelab
// binaries run as child processes and get SIGKILL at seeded random moments
// (mid training step, mid checkpoint write, mid harvest chunk, mid LM
// training), are started again with the same command until one finishes,
// and the files they leave must be byte-identical to an uninterrupted run's.
// The in-process kill tests (sae/trainer_test and friends) stop at step
// boundaries; these stop anywhere, including inside a write.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/internal/child_process.h"
#include "harness/npy.h"

namespace saelab {
namespace {

constexpr char kRefModel[] = "data/models/saelab-ref-lm";
// Kills per scenario.
constexpr int kKills = 3;

std::string Dir(const std::string& name) {
  const std::string dir = absl::StrCat(::testing::TempDir(), "/", name);
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

struct Outcome {
  bool finished = false;  // exited by itself (then exit_code holds its status)
  int exit_code = -1;
  double seconds = 0;
};

// Runs argv with stdout and stderr to `log`; SIGKILLs it after
// `kill_after_seconds` unless it has exited by then (< 0: never).
Outcome RunChild(const std::vector<std::string>& argv, const std::string& log,
                 double kill_after_seconds) {
  const absl::Time start = absl::Now();
  Outcome outcome;
  const pid_t pid = StartProcess(argv, log, /*env_extra=*/{}, /*append=*/true);
  if (pid < 0) return outcome;
  const int code = WaitProcess(pid, kill_after_seconds >= 0 ? absl::Seconds(kill_after_seconds)
                                                            : absl::InfiniteDuration());
  outcome.seconds = absl::ToDoubleSeconds(absl::Now() - start);
  outcome.finished = code >= 0 && code < 128;
  outcome.exit_code = outcome.finished ? code : -1;
  return outcome;
}

// Runs `make_argv(dir)` uninterrupted in <name>_straight, then in
// <name>_killed kills it kKills times at seeded moments and reruns it to
// completion; every file named in `compare` must have the same bytes.
void KillAndResume(const std::string& name, uint32_t seed,
                   const std::function<std::vector<std::string>(const std::string&)>& make_argv,
                   const std::vector<std::string>& compare) {
  const std::string straight = Dir(name + "_straight");
  const std::string killed = Dir(name + "_killed");
  const std::string log = absl::StrCat(::testing::TempDir(), "/", name, ".log");
  const Outcome reference = RunChild(make_argv(straight), log, -1);
  ASSERT_TRUE(reference.finished && reference.exit_code == 0)
      << name << " failed uninterrupted; see " << log << ":\n"
      << ReadFile(log).value_or("");
  // Each kill lands at a seeded point of the work still left (estimated from
  // the uninterrupted run, less the process start: loading LibTorch), so
  // it interrupts training or writing rather than the start or nothing.
  std::mt19937 random(seed);
  std::uniform_real_distribution<double> fraction(0.1, 0.9);
  const double startup = std::min(1.0, 0.2 * reference.seconds);
  double remaining = reference.seconds;
  int kills = 0;
  for (int i = 0; i < kKills; ++i) {
    const double at = startup + fraction(random) * (remaining - startup);
    const Outcome run = RunChild(make_argv(killed), log, at);
    std::printf("%s: run %d %s at %.2f s of %.2f\n", name.c_str(), i + 1,
                run.finished ? "finished before the kill" : "killed", at, reference.seconds);
    if (run.finished) {
      ASSERT_EQ(run.exit_code, 0) << name << ": a resumed run failed; see " << log << ":\n"
                                  << ReadFile(log).value_or("");
    } else {
      ++kills;
      remaining = std::max(remaining - (at - startup), 2 * startup);
    }
  }
  EXPECT_GE(kills, 1) << name << ": no kill landed before the run finished";
  const Outcome last = RunChild(make_argv(killed), log, -1);
  ASSERT_TRUE(last.finished && last.exit_code == 0)
      << name << ": the final resume failed; see " << log << ":\n"
      << ReadFile(log).value_or("");
  std::vector<std::string> files;
  for (const std::string& entry : compare) {
    if (entry.back() != '/') {
      files.push_back(entry);
      continue;
    }
    // Every file of a directory, except the lock (it holds a pid).
    for (const auto& item : std::filesystem::directory_iterator(straight + "/" + entry)) {
      const std::string file = item.path().filename().string();
      if (item.is_regular_file() && file != ".lock") files.push_back(entry + file);
    }
  }
  ASSERT_GT(files.size(), compare.size() - 1);
  for (const std::string& file : files) {
    absl::StatusOr<std::string> a = ReadFile(straight + "/" + file);
    absl::StatusOr<std::string> b = ReadFile(killed + "/" + file);
    ASSERT_TRUE(a.ok()) << a.status();
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_TRUE(*a == *b) << name << ": " << file << " differs after " << kills << " kills";
  }
}

TEST(SigkillResumeTest, SaeTrainingKilledAnywhereResumesToTheSameBytes) {
  // Seeded activations with structure (a few directions), so training moves.
  torch::manual_seed(11);
  const torch::Tensor basis = torch::randn({64, 48});
  const torch::Tensor codes = torch::relu(torch::randn({8192, 64}) - 1.0);
  const std::string acts = ::testing::TempDir() + "/acts.npy";
  absl::StatusOr<std::string> npy = SerializeNpy(codes.matmul(basis));
  ASSERT_TRUE(npy.ok()) << npy.status();
  ASSERT_TRUE(AtomicWriteFile(acts, *npy).ok());
  KillAndResume(
      "train", 1,
      [&](const std::string& dir) {
        // Checkpoints every 3 steps: a good share of the kills land inside
        // a checkpoint write.
        return std::vector<std::string>{
            Runfile("tools/saelab"), "train", "--activations=" + acts, "--out=" + dir + "/sae",
            "--architecture=topk", "--n_latents=512", "--k=8", "--batch_size=256",
            "--tokens=" + std::to_string(256 * 60), "--checkpoint_every_steps=3", "--threads=2",
            "--seed=3"};
      },
      {"sae/sae.safetensors", "sae/sae_config.textproto", "sae/training_curve.safetensors",
       "sae/saelens/"});
}

TEST(SigkillResumeTest, HarvestKilledAnywhereResumesToTheSameStore) {
  KillAndResume(
      "harvest", 2,
      [&](const std::string& dir) {
        return std::vector<std::string>{
            Runfile("tools/saelab"), "harvest", "--model_dir=" + Runfile(kRefModel),
            "--corpus=kjv", "--hooks=blocks.1.hook_resid_post", "--format=store",
            "--context_length=64", "--max_contexts=128", "--batch_contexts=8",
            "--contexts_per_chunk=8", "--threads=2", "--out=" + dir + "/acts"};
      },
      {"acts/", "acts/blocks.1.hook_resid_post/"});
}

TEST(SigkillResumeTest, LanguageModelTrainingKilledAnywhereResumesToTheSameModel) {
  const std::string config = ::testing::TempDir() + "/lm.textproto";
  ASSERT_TRUE(AtomicWriteFile(config, R"pb(
    name: "sigkill_lm"
    seed: 5
    train_subject_lm {
      data { corpora: "kjv" }
      vocab_size: 384
      model { n_layer: 1 n_head: 2 n_embd: 32 n_positions: 32 }
      trainer {
        batch_contexts: 16
        context_length: 32
        steps: 60
        lr: 1e-2
        warmup_steps: 10
        eval_every_steps: 20
        eval_contexts: 32
        checkpoint_every_steps: 5
        record_first_losses: 5
      }
    }
  )pb").ok());
  KillAndResume(
      "lm", 3,
      [&](const std::string& dir) {
        return std::vector<std::string>{Runfile("experiments/train_subject_lm"),
                                        "--config=" + config, "--run_dir=" + dir, "--noplot",
                                        "--threads=2"};
      },
      {"model/"});
}

}  // namespace
}  // namespace saelab
