// An exclusive lock on a directory, so that two processes never write one
// run (two trainers interleaving their checkpoints make an SAE that neither
// would have made). The lock is flock(2) on <dir>/.lock, which also records
// the holder's pid for the message; the kernel releases it when the holder
// exits, however it exits (kill -9 included), so a stale lock never blocks.
//
//   ASSIGN_OR_RETURN(DirectoryLock lock, DirectoryLock::Acquire(run_dir));
//   ... write into run_dir; the lock is held until `lock` is destroyed ...
//
// flock locks belong to an open file description: a second Acquire of the
// same directory fails even in the same process, which is what the tests use.
#ifndef SAELAB_HARNESS_DIR_LOCK_H_
#define SAELAB_HARNESS_DIR_LOCK_H_

#include <string>

#include "absl/status/statusor.h"

namespace saelab {

class DirectoryLock {
 public:
  // Creates `dir` if needed and takes its lock without waiting.
  // FailedPrecondition "<dir> is in use by process <pid> (it holds
  // <dir>/.lock); wait for it to finish or use another directory" if another
  // holder has it; other errors name the lock file.
  static absl::StatusOr<DirectoryLock> Acquire(const std::string& dir);

  DirectoryLock(DirectoryLock&& other) noexcept;
  DirectoryLock& operator=(DirectoryLock&& other) noexcept;
  DirectoryLock(const DirectoryLock&) = delete;
  DirectoryLock& operator=(const DirectoryLock&) = delete;
  ~DirectoryLock();

 private:
  explicit DirectoryLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace saelab

#endif  // SAELAB_HARNESS_DIR_LOCK_H_
