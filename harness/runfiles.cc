#include "harness/runfiles.h"

#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"

namespace saelab {

std::vector<std::string> RunfilesRoots(const char* argv0) {
  std::vector<std::string> roots;
  auto add = [&roots](const std::string& root) {
    if (root.empty()) return;
    for (const std::string& r : roots) {
      if (r == root) return;
    }
    roots.push_back(root);
  };
  if (const char* dir = std::getenv("RUNFILES_DIR")) add(dir);
  if (const char* dir = std::getenv("TEST_SRCDIR")) add(dir);
  if (argv0 != nullptr && *argv0 != '\0') add(absl::StrCat(argv0, ".runfiles"));
  char exe[4096];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  if (n > 0) add(absl::StrCat(std::string(exe, static_cast<size_t>(n)), ".runfiles"));
  add("..");
  return roots;
}

absl::StatusOr<std::string> FindRunfile(const std::string& runfiles_path, const char* argv0) {
  std::vector<std::string> roots = RunfilesRoots(argv0);
  for (const std::string& root : roots) {
    std::string candidate = absl::StrCat(root, "/", runfiles_path);
    if (PathExists(candidate)) return candidate;
  }
  return absl::NotFoundError(absl::StrCat("runfile ", runfiles_path, " not found under any of [",
                                          absl::StrJoin(roots, ", "),
                                          "]; is it in the `data` of the target being run?"));
}

}  // namespace saelab
