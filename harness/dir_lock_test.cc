#include "harness/dir_lock.h"

#include <sys/wait.h>
#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;

std::string TestDir(const std::string& name) { return ::testing::TempDir() + "/lock_" + name; }

TEST(DirectoryLockTest, ASecondHolderIsRefusedNamingTheFirstsPid) {
  const std::string dir = TestDir("second");
  absl::StatusOr<DirectoryLock> first = DirectoryLock::Acquire(dir);
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<DirectoryLock> second = DirectoryLock::Acquire(dir);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(second.status().message()),
              HasSubstr(absl::StrCat(dir, " is in use by process ", ::getpid())));
}

TEST(DirectoryLockTest, TheLockIsReleasedWithItsHolder) {
  const std::string dir = TestDir("released");
  { ASSERT_TRUE(DirectoryLock::Acquire(dir).ok()); }
  absl::StatusOr<DirectoryLock> again = DirectoryLock::Acquire(dir);
  EXPECT_TRUE(again.ok()) << again.status();
  // Moving keeps it held.
  DirectoryLock moved = *std::move(again);
  EXPECT_FALSE(DirectoryLock::Acquire(dir).ok());
}

TEST(DirectoryLockTest, AnotherProcessIsLockedOutAndAKilledHolderLeavesNoStaleLock) {
  const std::string dir = TestDir("process");
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    absl::StatusOr<DirectoryLock> held = DirectoryLock::Acquire(dir);
    const char byte = held.ok() ? 'y' : 'n';
    (void)!::write(ready[1], &byte, 1);
    ::pause();  // until SIGKILL
    ::_exit(0);
  }
  char byte = 0;
  ASSERT_EQ(::read(ready[0], &byte, 1), 1);
  ASSERT_EQ(byte, 'y');
  absl::StatusOr<DirectoryLock> refused = DirectoryLock::Acquire(dir);
  ASSERT_FALSE(refused.ok());
  EXPECT_THAT(std::string(refused.status().message()),
              HasSubstr(absl::StrCat("in use by process ", child)));
  ::kill(child, SIGKILL);
  int status = 0;
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  absl::StatusOr<DirectoryLock> after = DirectoryLock::Acquire(dir);
  EXPECT_TRUE(after.ok()) << after.status();
}

}  // namespace
}  // namespace saelab
