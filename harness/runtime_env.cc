#include "harness/runtime_env.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>

namespace saelab {

void PinRuntimeEnvironment(char** argv) {
  if (std::getenv("SAELAB_RUNTIME_PINNED") != nullptr) return;
  setenv("SAELAB_RUNTIME_PINNED", "1", 1);
  setenv("OPENBLAS_CORETYPE", "Haswell", /*overwrite=*/0);
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", /*overwrite=*/0);
  setenv("GLIBC_TUNABLES",
         "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=17179869184:"
         "glibc.malloc.top_pad=268435456",
         /*overwrite=*/0);
  execv("/proc/self/exe", argv);
  std::perror("warning: could not re-execute with the pinned runtime settings; continuing");
}

}  // namespace saelab
