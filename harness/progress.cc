#include "harness/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "harness/log.h"

namespace saelab {

std::string HumanCount(double value) {
  const char* suffixes[] = {"", "k", "M", "G", "T"};
  int i = 0;
  while (std::fabs(value) >= 1000.0 && i < 4) {
    value /= 1000.0;
    ++i;
  }
  return i == 0 ? absl::StrFormat("%.0f", value) : absl::StrFormat("%.3g%s", value, suffixes[i]);
}

Progress::Progress(std::string label, int64_t total, std::string unit, std::FILE* out,
                   int interactive, double plain_interval_seconds)
    : label_(std::move(label)),
      total_(std::max<int64_t>(total, 1)),
      unit_(std::move(unit)),
      out_(out),
      interactive_(interactive < 0 ? ::isatty(::fileno(out)) != 0 : interactive != 0),
      plain_interval_(absl::Seconds(plain_interval_seconds)),
      start_(absl::Now()),
      last_print_(absl::InfinitePast()) {}

std::string Progress::Line(int64_t done, absl::string_view status) const {
  double elapsed = absl::ToDoubleSeconds(absl::Now() - start_);
  double fraction = std::min(1.0, static_cast<double>(done) / total_);
  int64_t base = start_done_ < 0 ? done : start_done_;
  double rate = elapsed > 0 ? (done - base) / elapsed : 0.0;
  std::string eta = "?";
  if (rate > 0) {
    eta = absl::FormatDuration(absl::Seconds(std::round((total_ - done) / rate)));
  }
  std::string bar;
  if (interactive_) {
    const int width = 24;
    int filled = static_cast<int>(fraction * width);
    bar = absl::StrCat("[", std::string(filled, '#'), std::string(width - filled, '.'), "] ");
  }
  return absl::StrFormat("%s %s%5.1f%% %s/%s %s %s/s ETA %s%s%s", label_, bar, 100.0 * fraction,
                         HumanCount(done), HumanCount(total_), unit_, HumanCount(rate), eta,
                         status.empty() ? "" : "  ", status);
}

void Progress::Update(int64_t done, absl::string_view status) {
  if (start_done_ < 0) {
    start_done_ = done;
    start_ = absl::Now();
  }
  last_done_ = done;
  absl::Time now = absl::Now();
  absl::Duration interval = interactive_ ? absl::Milliseconds(200) : plain_interval_;
  if (now - last_print_ < interval) return;
  last_print_ = now;
  std::string line = Line(done, status);
  if (interactive_) {
    SetLiveLine(out_, line);
  } else {
    absl::FPrintF(out_, "%s\n", line);
    std::fflush(out_);
  }
}

void Progress::Finish(absl::string_view status) {
  std::string line = Line(last_done_, status);
  if (interactive_) SetLiveLine(out_, "");
  absl::FPrintF(out_, "%s\n", line);
  std::fflush(out_);
}

}  // namespace saelab
