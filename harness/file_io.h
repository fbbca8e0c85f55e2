// Whole-file reads and atomic writes.
//
// Every file saelab writes goes through AtomicWriteFile: the bytes go to a
// temporary file in the same directory, are fsync'd, and the temporary is
// renamed over the target. A kill at any moment leaves either the old file
// or the new one, never a half-written file that a later run reads as good.
//
//   RETURN_IF_ERROR(AtomicWriteFile(run_dir + "/result.pb", bytes));
//   ASSIGN_OR_RETURN(std::string text, ReadFile(path));
#ifndef SAELAB_HARNESS_FILE_IO_H_
#define SAELAB_HARNESS_FILE_IO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// Reads the whole file. NotFound if it does not exist; errors name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` atomically (temp file + fsync + rename).
// Parent directories must exist.
absl::Status AtomicWriteFile(const std::string& path, absl::string_view contents);

// Creates `path` and its missing parents (like mkdir -p).
absl::Status MakeDirs(const std::string& path);

// True if `path` exists (file or directory).
bool PathExists(const std::string& path);

// The directory for scratch files: $TMPDIR if it names a directory, else
// /tmp (std::filesystem::temp_directory_path, without its throw).
std::string TempDirectory();

}  // namespace saelab

#endif  // SAELAB_HARNESS_FILE_IO_H_
