// Progress of a long loop (training, harvesting): on a terminal, one live
// line redrawn in place with a bar, rate and ETA; otherwise (CI, a log file)
// a plain line at most every `plain_interval_seconds`.
//
//   Progress progress("train topk_k8", total_tokens, "tokens");
//   for (...) { ...; progress.Update(tokens_done, absl::StrFormat("loss %.4f", loss)); }
//   progress.Finish();
#ifndef SAELAB_HARNESS_PROGRESS_H_
#define SAELAB_HARNESS_PROGRESS_H_

#include <cstdint>
#include <cstdio>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace saelab {

class Progress {
 public:
  // `out` defaults to stderr; `interactive` defaults to isatty(out).
  Progress(std::string label, int64_t total, std::string unit, std::FILE* out = stderr,
           int interactive = -1, double plain_interval_seconds = 10.0);

  // Reports `done` units finished (monotone), with an optional status text.
  // Cheap to call every step: output is rate-limited.
  void Update(int64_t done, absl::string_view status = "");

  // Prints the final line (always, in both modes).
  void Finish(absl::string_view status = "");

  // The line Update would print now (exposed for tests).
  std::string Line(int64_t done, absl::string_view status) const;

 private:
  std::string label_;
  int64_t total_;
  std::string unit_;
  std::FILE* out_;
  bool interactive_;
  absl::Duration plain_interval_;
  absl::Time start_;
  absl::Time last_print_;
  int64_t start_done_ = -1;  // first `done` seen: a resumed loop's rate excludes earlier work
  int64_t last_done_ = 0;
};

// "12.3k", "4.56M": compact counts for progress lines.
std::string HumanCount(double value);

}  // namespace saelab

#endif  // SAELAB_HARNESS_PROGRESS_H_
