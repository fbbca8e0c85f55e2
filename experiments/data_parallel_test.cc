// Data-parallel experiments as a user runs them, as child processes:
// `--nproc=2` (the launcher and two workers over loopback Gloo) gives the
// single-process metrics; a killed worker ends the job with a clear error
// in bounded time, whether the launcher or torchrun-style variables
// started it.
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/internal/child_process.h"
#include "harness/result.pb.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

std::string Binary() { return Runfile("experiments/synthetic_recovery"); }
std::string SmallConfig() {
  return Runfile("experiments/testdata/synthetic_recovery_small.textproto");
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

ExperimentResult ReadResult(const std::string& run_dir) {
  ExperimentResult result;
  std::ifstream in(run_dir + "/result.pb", std::ios::binary);
  EXPECT_TRUE(result.ParseFromIstream(&in)) << run_dir;
  return result;
}

// The child processes of `pid` (Linux's /proc/<pid>/task/<pid>/children).
std::vector<pid_t> Children(pid_t pid) {
  std::vector<pid_t> children;
  for (absl::string_view field :
       absl::StrSplit(Slurp(absl::StrCat("/proc/", pid, "/task/", pid, "/children")), ' ',
                      absl::SkipWhitespace())) {
    children.push_back(std::stoi(std::string(field)));
  }
  return children;
}

std::string Dir(const std::string& name) { return ::testing::TempDir() + "/" + name; }

TEST(DataParallelExperimentTest, TwoLocalWorkersGiveTheSingleProcessMetrics) {
  const std::string single = Dir("single"), parallel = Dir("parallel");
  ASSERT_EQ(WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(), "--run_dir=" + single,
                                      "--plot=false"},
                                     Dir("single.log")),
                        absl::Seconds(120)),
            0)
      << Slurp(Dir("single.log"));
  ASSERT_EQ(WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(),
                                      "--run_dir=" + parallel, "--plot=false", "--nproc=2"},
                                     Dir("parallel.log"), {"TMPDIR=" + ::testing::TempDir()}),
                        absl::Seconds(300)),
            0)
      << Slurp(Dir("parallel.log"));
  const ExperimentResult a = ReadResult(single), b = ReadResult(parallel);
  EXPECT_FALSE(a.provenance().has_data_parallel_ranks());
  EXPECT_EQ(b.provenance().data_parallel_ranks(), 2);
  ASSERT_EQ(a.saes_size(), 2);
  ASSERT_EQ(b.saes_size(), 2);
  // 1000 steps each of ReLU-L1 and TopK: the float rounding of the split
  // sums moves the metrics by under 0.1% (measured: ReLU-L1 L0 3.6626 vs
  // 3.6611, NMSE 0.2424 vs 0.2423; TopK equal to 4 digits).
  for (int i = 0; i < 2; ++i) {
    EXPECT_EQ(a.saes(i).name(), b.saes(i).name());
    for (const char* metric : {"nmse", "l0", "mmcs", "dead_fraction"}) {
      const double x = a.saes(i).metrics().at(metric), y = b.saes(i).metrics().at(metric);
      EXPECT_NEAR(y, x, 5e-3 * std::max(1.0, std::abs(x))) << a.saes(i).name() << " " << metric;
    }
  }
  // The second worker's scratch directory and log are gone; rank 0's run
  // directory holds the results alone.
  for (const auto& entry : std::filesystem::directory_iterator(::testing::TempDir())) {
    EXPECT_THAT(entry.path().filename().string(), ::testing::Not(HasSubstr("rank1")));
  }

  // --shard_latents: TopK's latents split over the two workers instead of
  // the batch (ReLU-L1 stays data-parallel); the same metrics (measured:
  // TopK equal to 4 digits), and the shard states give way to the saved SAE.
  const std::string sharded = Dir("sharded");
  ASSERT_EQ(WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(),
                                      "--run_dir=" + sharded, "--plot=false", "--nproc=2",
                                      "--shard_latents"},
                                     Dir("sharded.log"), {"TMPDIR=" + ::testing::TempDir()}),
                        absl::Seconds(300)),
            0)
      << Slurp(Dir("sharded.log"));
  const ExperimentResult c = ReadResult(sharded);
  ASSERT_EQ(c.saes_size(), 2);
  for (int i = 0; i < 2; ++i) {
    for (const char* metric : {"nmse", "l0", "mmcs", "dead_fraction"}) {
      const double x = a.saes(i).metrics().at(metric), y = c.saes(i).metrics().at(metric);
      EXPECT_NEAR(y, x, 5e-3 * std::max(1.0, std::abs(x))) << c.saes(i).name() << " " << metric;
    }
  }
  EXPECT_THAT(Slurp(Dir("sharded.log")),
              HasSubstr(c.saes(1).name() + ": latents split over 2 ranks"));
  EXPECT_THAT(Slurp(Dir("sharded.log")),
              ::testing::Not(HasSubstr(c.saes(0).name() + ": latents split")));
  EXPECT_TRUE(std::filesystem::exists(sharded + "/saes/" + c.saes(1).name() + "/sae.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(sharded + "/saes/" + c.saes(1).name() + "/shard_states"));
  // Without workers the flag is refused before any work.
  EXPECT_EQ(WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(),
                                      "--run_dir=" + Dir("alone"), "--shard_latents"},
                                     Dir("alone.log")),
                        absl::Seconds(60)),
            2);
  EXPECT_THAT(Slurp(Dir("alone.log")), HasSubstr("--shard_latents splits the latents"));
}

// The small subject-model config with its own token and store cache.
std::string SubjectConfig(const std::string& cache) {
  const std::string path = Dir(cache + ".textproto");
  std::string text = Slurp(Runfile("experiments/testdata/subject_sae_small.textproto"));
  text = absl::StrReplaceAll(
      text, {{"  activations {\n",
              absl::StrCat("  activations {\n    cache_dir: \"", Dir(cache), "\"\n")}});
  EXPECT_TRUE(AtomicWriteFile(path, text).ok());
  return path;
}

std::map<std::string, std::string> StoreFiles(const std::string& cache) {
  std::map<std::string, std::string> files;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(cache + "/activations")) {
    if (entry.is_regular_file()) {
      files[entry.path().filename().string()] = *ReadFile(entry.path().string());
    }
  }
  return files;
}

TEST(DataParallelExperimentTest, WorkersShareTheCacheAndHarvestTheStoreTogether) {
  const std::string binary = Runfile("experiments/subject_sae");
  // One process with the workers' OpenBLAS threads (the launcher gives each
  // cores / 2): the forward's bits depend on the BLAS thread count.
  ASSERT_EQ(
      WaitProcess(
          StartProcess({binary, "--config=" + SubjectConfig("cache1"), "--run_dir=" + Dir("s1")},
                       Dir("s1.log"),
                       {absl::StrCat("OPENBLAS_NUM_THREADS=",
                                     std::max(1u, std::thread::hardware_concurrency() / 2))}),
          absl::Seconds(240)),
      0)
      << Slurp(Dir("s1.log"));
  ASSERT_EQ(WaitProcess(StartProcess({binary, "--config=" + SubjectConfig("cache2"),
                                      "--run_dir=" + Dir("s2"), "--nproc=2"},
                                     Dir("s2.log"), {"TMPDIR=" + ::testing::TempDir()}),
                        absl::Seconds(240)),
            0)
      << Slurp(Dir("s2.log"));
  // Each worker harvested its share of the chunks into the one store, and
  // rank 0 finished it: the same files as one process's harvest.
  const auto one = StoreFiles(Dir("cache1")), two = StoreFiles(Dir("cache2"));
  EXPECT_EQ(one.size(), 5u);  // 256 contexts / 64 per chunk, and the manifest
  for (const auto& [name, bytes] : one) {
    EXPECT_TRUE(two.count(name) && two.at(name) == bytes) << name << " differs";
  }
  EXPECT_THAT(Slurp(Dir("s2.log")), HasSubstr("(share 0 of 2)"));
  const ExperimentResult a = ReadResult(Dir("s1")), b = ReadResult(Dir("s2"));
  ASSERT_EQ(a.saes_size(), 1);
  ASSERT_EQ(b.saes_size(), 1);
  for (const char* metric : {"nmse", "l0", "dead_fraction"}) {
    const double x = a.saes(0).metrics().at(metric), y = b.saes(0).metrics().at(metric);
    EXPECT_NEAR(y, x, 5e-3 * std::max(1.0, std::abs(x))) << metric;
  }
}

// A config that trains long enough to be killed mid-run.
std::string LongConfig() {
  const std::string path = Dir("long.textproto");
  std::string text = Slurp(SmallConfig());
  text = absl::StrReplaceAll(text, {{"total_tokens: 256000 ", "total_tokens: 256000000 "}});
  EXPECT_TRUE(AtomicWriteFile(path, text).ok());
  return path;
}

TEST(DataParallelExperimentTest, AKilledWorkerEndsTheLaunchedJobWithAClearError) {
  const pid_t launcher = StartProcess({Binary(), "--config=" + LongConfig(),
                                       "--run_dir=" + Dir("killed"), "--plot=false", "--nproc=2"},
                                      Dir("killed.log"), {"TMPDIR=" + ::testing::TempDir()});
  // Both workers up and training.
  std::vector<pid_t> workers;
  for (int i = 0; i < 200 && workers.size() < 2; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    workers = Children(launcher);
  }
  ASSERT_EQ(workers.size(), 2u);
  std::this_thread::sleep_for(std::chrono::seconds(2));
  ASSERT_EQ(kill(workers[1], SIGKILL), 0);
  const Clock::time_point killed = Clock::now();
  EXPECT_EQ(WaitProcess(launcher, absl::Seconds(60)), 1);
  EXPECT_LT(Clock::now() - killed, std::chrono::seconds(30));
  EXPECT_THAT(Slurp(Dir("killed.log")),
              HasSubstr("worker 1 of 2 was killed by signal 9 (Killed); the other workers "
                        "were stopped"));
  // No worker outlives the launcher.
  for (pid_t worker : workers) EXPECT_NE(kill(worker, 0), 0);
}

TEST(DataParallelExperimentTest, TorchrunStyleWorkersStopWhenAPeerDies) {
  // Two workers started the way torchrun or Slurm start them; no launcher.
  const std::string port = absl::StrCat(20000 + getpid() % 20000);
  std::vector<pid_t> workers;
  for (int rank = 0; rank < 2; ++rank) {
    workers.push_back(StartProcess(
        {Binary(), "--config=" + LongConfig(), "--run_dir=" + Dir("torchrun"), "--plot=false"},
        Dir(absl::StrCat("torchrun", rank, ".log")),
        {absl::StrCat("RANK=", rank), "WORLD_SIZE=2", "LOCAL_RANK=0", "MASTER_ADDR=127.0.0.1",
         "MASTER_PORT=" + port, "SAELAB_DIST_TIMEOUT_SECONDS=20",
         "TMPDIR=" + ::testing::TempDir()}));
  }
  // Training has begun once rank 0 logs its progress.
  for (int i = 0; i < 600 && Slurp(Dir("torchrun0.log")).find("tokens") == std::string::npos; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_THAT(Slurp(Dir("torchrun0.log")), HasSubstr("tokens"));
  ASSERT_EQ(kill(workers[1], SIGKILL), 0);
  WaitProcess(workers[1], absl::Seconds(10));
  const Clock::time_point killed = Clock::now();
  EXPECT_EQ(WaitProcess(workers[0], absl::Seconds(60)), 1);
  EXPECT_LT(Clock::now() - killed, std::chrono::seconds(40));
  EXPECT_THAT(Slurp(Dir("torchrun0.log")), HasSubstr("UNAVAILABLE: rank 0 of 2"));
}

TEST(DataParallelExperimentTest, ConflictingRankSettingsAreAnErrorBeforeAnyWork) {
  ASSERT_EQ(
      WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(), "--run_dir=" + Dir("bad"),
                                "--nproc=2"},
                               Dir("bad.log"), {"RANK=0", "WORLD_SIZE=3", "MASTER_ADDR=127.0.0.1"}),
                  absl::Seconds(30)),
      2);
  EXPECT_THAT(Slurp(Dir("bad.log")), HasSubstr("--nproc=2, but the environment says"));
  ASSERT_EQ(
      WaitProcess(StartProcess({Binary(), "--config=" + SmallConfig(), "--run_dir=" + Dir("bad2")},
                               Dir("bad2.log"), {"RANK=1", "MASTER_ADDR=127.0.0.1"}),
                  absl::Seconds(30)),
      2);
  EXPECT_THAT(Slurp(Dir("bad2.log")), HasSubstr("RANK=1 is set but WORLD_SIZE is not"));
  EXPECT_FALSE(PathExists(Dir("bad")));
  EXPECT_FALSE(PathExists(Dir("bad2")));
}

}  // namespace
}  // namespace saelab
