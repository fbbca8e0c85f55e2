#include "harness/train_state.h"

#include <ATen/Parallel.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/match.h"
#include "harness/log.h"

namespace saelab {
namespace {

std::atomic<bool> recover_corrupt_train_state{false};

}  // namespace

std::string ComputeSettings() {
  const char* coretype = std::getenv("OPENBLAS_CORETYPE");
  return absl::StrCat("torch_threads=", at::get_num_threads(),
                      " openblas_coretype=", coretype != nullptr ? coretype : "(auto)");
}

std::string PreviousTrainStatePath(const std::string& path) {
  constexpr absl::string_view kExtension = ".safetensors";
  if (absl::EndsWith(path, kExtension)) {
    return absl::StrCat(path.substr(0, path.size() - kExtension.size()), ".previous", kExtension);
  }
  return path + ".previous";
}

void SetRecoverCorruptTrainState(bool recover) { recover_corrupt_train_state = recover; }
bool RecoverCorruptTrainState() { return recover_corrupt_train_state; }

void RemoveTrainState(const std::string& path) {
  std::remove(path.c_str());
  std::remove(PreviousTrainStatePath(path).c_str());
}

namespace train_state_internal {

absl::Status Rename(const std::string& from, const std::string& to) {
  if (std::rename(from.c_str(), to.c_str()) != 0) {
    return absl::InternalError(
        absl::StrCat("cannot rename ", from, " to ", to, ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

void LogRecovery(const std::string& message) { LogLine(message); }

}  // namespace train_state_internal
}  // namespace saelab
