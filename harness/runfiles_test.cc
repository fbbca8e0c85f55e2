#include "harness/runfiles.h"

#include <cstdlib>
#include <string>

#include "absl/status/status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;

TEST(RunfilesTest, FindsAFileUnderRunfilesDir) {
  const std::string root = ::testing::TempDir() + "runfiles";
  ASSERT_TRUE(MakeDirs(root + "/some_repo/sub").ok());
  ASSERT_TRUE(AtomicWriteFile(root + "/some_repo/sub/file.txt", "x").ok());
  ASSERT_EQ(setenv("RUNFILES_DIR", root.c_str(), 1), 0);
  absl::StatusOr<std::string> found = FindRunfile("some_repo/sub/file.txt");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(*found, root + "/some_repo/sub/file.txt");
  EXPECT_EQ(RunfilesRoots().front(), root);
  unsetenv("RUNFILES_DIR");
}

TEST(RunfilesTest, FindsThisWorkspaceUnderTestSrcdir) {
  // A test's runfiles always hold the test binary itself.
  absl::StatusOr<std::string> found = FindRunfile("saelab/harness/runfiles_test");
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_TRUE(PathExists(*found));
}

TEST(RunfilesTest, MissingFileIsNotFoundNamingItAndTheRoots) {
  absl::StatusOr<std::string> found = FindRunfile("no_such_repo/file.txt");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(found.status().message(), HasSubstr("no_such_repo/file.txt"));
  EXPECT_THAT(found.status().message(), HasSubstr(std::getenv("TEST_SRCDIR")));
  EXPECT_THAT(found.status().message(), HasSubstr("`data`"));
}

}  // namespace
}  // namespace saelab
