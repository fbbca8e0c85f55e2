#include "harness/log.h"

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace saelab {
namespace {

struct LiveLine {
  absl::Mutex mu;
  std::FILE* out ABSL_GUARDED_BY(mu) = nullptr;
  std::string line ABSL_GUARDED_BY(mu);
};

LiveLine& Live() {
  static auto* live = new LiveLine();
  return *live;
}

}  // namespace

void LogLine(absl::string_view line) {
  LiveLine& live = Live();
  absl::MutexLock lock(&live.mu);
  const bool redraw = live.out == stderr && !live.line.empty();
  if (redraw) std::fputs("\r\033[K", stderr);
  absl::FPrintF(stderr, "%s\n", line);
  if (redraw) std::fputs(live.line.c_str(), stderr);
  std::fflush(stderr);
}

void SetLiveLine(std::FILE* out, absl::string_view line) {
  LiveLine& live = Live();
  absl::MutexLock lock(&live.mu);
  absl::FPrintF(out, "\r\033[K%s", line);
  std::fflush(out);
  live.out = line.empty() ? nullptr : out;
  live.line = std::string(line);
}

}  // namespace saelab
