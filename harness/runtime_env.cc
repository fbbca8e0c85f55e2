#include "harness/runtime_env.h"

#include <sched.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace saelab {

int AvailableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  const long online = sysconf(_SC_NPROCESSORS_ONLN);
  return online > 0 ? static_cast<int>(online) : 1;
}

void PinRuntimeEnvironment(char** argv) {
  if (std::getenv("SAELAB_RUNTIME_PINNED") != nullptr) return;
  setenv("SAELAB_RUNTIME_PINNED", "1", 1);
  setenv("OPENBLAS_CORETYPE", "Haswell", /*overwrite=*/0);
  setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
  setenv("OPENBLAS_THREAD_TIMEOUT", "4", /*overwrite=*/0);
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    setenv("OMP_NUM_THREADS", std::to_string(AvailableCpus()).c_str(), 1);
    setenv(kThreadsFromCpus, "1", 1);  // ours, not the user's: workers may take a share
  }
  setenv("GLIBC_TUNABLES", kPinnedMallocTunables, /*overwrite=*/0);
  execv("/proc/self/exe", argv);
  std::perror("warning: could not re-execute with the pinned runtime settings; continuing");
}

}  // namespace saelab
