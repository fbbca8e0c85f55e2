// One path for the messages saelab prints while it works: every line goes
// to stderr through Log/LogLine, which knows about the live progress line
// (harness/progress.h) on a terminal, clears it before a message and redraws
// it after, so messages and progress bars never overwrite each other.
// Results go into result protos and stdout is left to a program's product
// (e.g. generated text); this is for humans watching a run.
//
//   Log("subject_sae: %s, %d train rows", hook_name, rows);
//   LogLine("resuming run directory " + dir);
#ifndef SAELAB_HARNESS_LOG_H_
#define SAELAB_HARNESS_LOG_H_

#include <cstdio>

#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"

namespace saelab {

// Writes `line` and a newline to stderr (thread-safe, flushed).
void LogLine(absl::string_view line);

// LogLine(absl::StrFormat(format, args...)).
template <typename... Args>
void Log(const absl::FormatSpec<Args...>& format, const Args&... args) {
  LogLine(absl::StrFormat(format, args...));
}

// For Progress on an interactive stream: draws `line` in place of the
// current live line of `out` ("" clears it). LogLine to the same stream
// clears the live line first and redraws it after.
void SetLiveLine(std::FILE* out, absl::string_view line);

}  // namespace saelab

#endif  // SAELAB_HARNESS_LOG_H_
