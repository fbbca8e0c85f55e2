// Prints results/REPLICATION.md from the committed baselines, or writes it.
//
//   ./bazelw run //results:replication            # print
//   ./bazelw run //results:replication -- --write # update results/REPLICATION.md
#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "results/replication.h"

ABSL_FLAG(bool, write, false, "Write results/REPLICATION.md in the workspace.");

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  // bazel run starts in the runfiles; the workspace is where the user ran it.
  const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
  const std::string root = workspace != nullptr ? workspace : ".";
  absl::StatusOr<std::string> markdown =
      saelab::ReplicationMarkdown(absl::StrCat(root, "/results/baselines"));
  if (!markdown.ok()) {
    std::fprintf(stderr, "error: %s\n", markdown.status().ToString().c_str());
    return 1;
  }
  if (!absl::GetFlag(FLAGS_write)) {
    std::fputs(markdown->c_str(), stdout);
    return 0;
  }
  const std::string path = absl::StrCat(root, "/results/REPLICATION.md");
  absl::Status status = saelab::AtomicWriteFile(path, *markdown);
  if (!status.ok()) {
    std::fprintf(stderr, "error: %s\n", status.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "wrote %s\n", path.c_str());
  return 0;
}
