// What every fuzz target in fuzz/ shares: a per-process scratch folder for
// parsers that only take a path, a splitter that turns one fuzz input into
// several files, and the checks that turn a broken contract (beyond a crash)
// into an abort that libFuzzer and the replay tests report.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     const absl::string_view input = fuzz::AsStringView(data, size);
//     const std::vector<absl::string_view> parts = fuzz::SplitParts(input, 2);
//     const std::string dir = fuzz::ScratchPath("sae");      // reused every call
//     fuzz::WriteFileOrDie(dir + "/cfg.json", parts[0]);
//     absl::StatusOr<...> parsed = ImportSaeLens(dir);
//     fuzz::CheckErrorNames(parsed.status(), dir, "ImportSaeLens");
//     return 0;
//   }
//
// A fuzz target aborts (FuzzCheck, CheckErrorNames) exactly when the parser
// broke its documented contract: that abort is the finding. Parsers return
// absl::Status for every bad input; nothing here is used outside fuzz/.
#ifndef SAELAB_FUZZ_FUZZ_SUPPORT_H_
#define SAELAB_FUZZ_FUZZ_SUPPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace saelab {
namespace fuzz {

// The fuzz input as bytes.
inline absl::string_view AsStringView(const uint8_t* data, size_t size) {
  return absl::string_view(reinterpret_cast<const char*>(data), size);
}

// Prints "fuzz check failed: <what>" to stderr and aborts (the finding).
[[noreturn]] void Fail(absl::string_view what);

// Fail(what) unless `ok`.
inline void FuzzCheck(bool ok, absl::string_view what) {
  if (!ok) Fail(what);
}

// With SAELAB_FUZZ_VERBOSE set, prints "<call>: <status>" to stderr (which
// seeds get how far); otherwise nothing.
void Report(const absl::Status& status, absl::string_view call);

// The documented error contract of saelab's readers: a non-OK status whose
// message contains `name` (the file or folder the reader was given), so the
// user knows which file is bad. OK statuses pass. `call` names the reader in
// the failure message. Reports the status (Report) first.
void CheckErrorNames(const absl::Status& status, absl::string_view name, absl::string_view call);

// `<scratch>/<name>`, where <scratch> is one fresh folder per process (under
// $TEST_TMPDIR in tests, else /dev/shm, else $TMPDIR or /tmp), removed at
// exit. The same name gives the same path on every call, so a target
// rewrites its files instead of creating new ones per input.
std::string ScratchPath(absl::string_view name);

// Creates folder `path` (and its parents) if missing; aborts if it cannot
// (the harness's problem, not the parser's).
void MakeDirOrDie(const std::string& path);

// Replaces `path` with exactly `bytes` (not atomically: the scratch folder
// is private to this process). Aborts if it cannot.
void WriteFileOrDie(const std::string& path, absl::string_view bytes);

// Removes `path` if it exists (a file a previous input wrote but this one
// does not have).
void RemoveFile(const std::string& path);

// Splits one fuzz input into n >= 1 parts: each of the first n - 1 parts is
// a little-endian uint32 length followed by that many bytes (clamped to what
// is left), the last part is the rest. Any input splits; a short one gives
// empty trailing parts. JoinParts is the inverse, for writing seeds.
std::vector<absl::string_view> SplitParts(absl::string_view input, int n);
std::string JoinParts(const std::vector<std::string>& parts);

// Rewrites the two checksums of a harness/sealed_file.h file in `bytes` (the
// payload sha256 at byte 24 over bytes [512, end), then the header sha256 at
// byte 448 over bytes [0, 448)) so that a mutated token shard or store chunk
// gets past SealedFile's integrity checks to the checks of its fields.
// Shorter than the 512-byte header: unchanged.
void ResealForFuzzing(std::string* bytes);

}  // namespace fuzz
}  // namespace saelab

#endif  // SAELAB_FUZZ_FUZZ_SUPPORT_H_
