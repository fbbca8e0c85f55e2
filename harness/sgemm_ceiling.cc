#include "harness/sgemm_ceiling.h"

#include <algorithm>
#include <chrono>
#include <fstream>
#include <limits>
#include <set>

#include <torch/types.h>
#include <torch/utils.h>

namespace saelab {

double MeasureSgemmGflops(int64_t size, int repeats) {
  torch::NoGradGuard no_grad;
  torch::Tensor a = torch::randn({size, size}), b = torch::randn({size, size});
  torch::Tensor c = torch::mm(a, b);  // warm-up: BLAS thread pool, buffers
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < repeats; ++i) {
    auto start = std::chrono::steady_clock::now();
    // Into the same output every time: a fresh one would be page-faulted
    // in on each call and time the kernel's memory handling, not the GEMM.
    torch::mm_out(c, a, b);  // CPU ops are synchronous: done on return
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  return 2.0 * static_cast<double>(size) * size * size / best / 1e9;
}

std::string BlasLibraryInUse() {
  std::ifstream maps("/proc/self/maps");
  std::set<std::string> found;  // each library has several mappings
  std::string line;
  while (std::getline(maps, line)) {
    // "start-end perms offset dev inode   /path": the path is the last field.
    std::string::size_type slash = line.find('/');
    if (slash == std::string::npos) continue;
    std::string path = line.substr(slash);
    if (path.substr(path.rfind('/')).find("blas") != std::string::npos) found.insert(path);
  }
  std::string result;
  for (const std::string& path : found) result += (result.empty() ? "" : ", ") + path;
  return result.empty() ? "none found" : result;
}

}  // namespace saelab
