// The source revision a binary was built from, stamped by Bazel
// (tools/workspace_status.sh; `--stamp` is on in .bazelrc).
#ifndef SAELAB_HARNESS_BUILD_INFO_H_
#define SAELAB_HARNESS_BUILD_INFO_H_

namespace saelab {

// `git rev-parse HEAD` at build time, or "unknown" outside a git checkout.
const char* BuildGitCommit();
// True if tracked files had uncommitted changes at build time.
bool BuildGitDirty();

}  // namespace saelab

#endif  // SAELAB_HARNESS_BUILD_INFO_H_
