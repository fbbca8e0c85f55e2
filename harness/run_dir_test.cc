#include "harness/run_dir.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::TempDir;

TEST(RunDirTest, NewRunWritesTheAsRunConfig) {
  std::string dir = TempDir() + "/runs/new";
  absl::StatusOr<RunDir> run = OpenRunDir(dir, "exp", "name: \"exp\"\n", "ab12cd34ef");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_FALSE(run->resumed);
  EXPECT_EQ(run->path, dir);
  EXPECT_EQ(*ReadFile(dir + "/config.textproto"), "name: \"exp\"\n");
}

TEST(RunDirTest, ReopeningWithTheSameConfigResumes) {
  std::string dir = TempDir() + "/runs/same";
  ASSERT_TRUE(OpenRunDir(dir, "exp", "seed: 1\n", "h").ok());
  absl::StatusOr<RunDir> again = OpenRunDir(dir + "/", "exp", "seed: 1\n", "h");
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(again->resumed);
  EXPECT_EQ(again->path, dir);
}

TEST(RunDirTest, ReopeningWithADifferentConfigIsRefusedNamingTheDirectory) {
  std::string dir = TempDir() + "/runs/different";
  ASSERT_TRUE(OpenRunDir(dir, "exp", "seed: 1\n", "h1").ok());
  absl::StatusOr<RunDir> other = OpenRunDir(dir, "exp", "seed: 2\n", "h2");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(other.status().message()).find(dir), std::string::npos);
  // The original config is untouched.
  EXPECT_EQ(*ReadFile(dir + "/config.textproto"), "seed: 1\n");
}

TEST(RunDirTest, ASecondOpenWhileTheFirstIsHeldIsRefused) {
  const std::string dir = ::testing::TempDir() + "/run_locked";
  absl::StatusOr<RunDir> first = OpenRunDir(dir, "exp", "name: \"a\"\n", "h");
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<RunDir> second = OpenRunDir(dir, "exp", "name: \"a\"\n", "h");
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(second.status().message().find("is in use by process"), std::string::npos);
  first = absl::StatusOr<RunDir>(absl::CancelledError());  // releases the lock
  EXPECT_TRUE(OpenRunDir(dir, "exp", "name: \"a\"\n", "h").ok());
}

TEST(RunDirTest, DefaultPathIsUnderTheRunsRootWithTheHashPrefix) {
  absl::StatusOr<RunDir> run = OpenRunDir("", "myexp", "x: 1\n", "0123456789abcdef");
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->path.rfind(DefaultRunsRoot() + "/myexp/", 0), 0u) << run->path;
  EXPECT_NE(run->path.find("-01234567"), std::string::npos) << run->path;
}

}  // namespace
}  // namespace saelab
