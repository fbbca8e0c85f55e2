#include "fuzz/fuzz_support.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <system_error>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "harness/sealed_file.h"
#include "harness/sha256.h"

namespace saelab {
namespace fuzz {
namespace {

bool IsWritableDir(const char* path) {
  struct stat st;
  return path != nullptr && path[0] != '\0' && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
         access(path, W_OK) == 0;
}

// The process's scratch folder, made on first use. Fuzzing runs millions of
// inputs: /dev/shm keeps the file writes in memory instead of on disk.
const std::string& ScratchDir() {
  static const std::string* const dir = [] {
    const char* base = std::getenv("TEST_TMPDIR");
    if (!IsWritableDir(base)) base = "/dev/shm";
    if (!IsWritableDir(base)) base = std::getenv("TMPDIR");
    if (!IsWritableDir(base)) base = "/tmp";
    std::string pattern = absl::StrCat(base, "/saelab-fuzz-XXXXXX");
    if (mkdtemp(pattern.data()) == nullptr) {
      Fail(absl::StrCat("cannot create a scratch folder ", pattern, ": ", std::strerror(errno)));
    }
    auto* made = new std::string(pattern);
    // libFuzzer ends with exit() (time limit, -runs), so atexit cleans up;
    // a crash leaves the folder, which holds the crashing files.
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(*dir, ignored);
    });
    return made;
  }();
  return *dir;
}

}  // namespace

void Fail(absl::string_view what) {
  std::fprintf(stderr, "fuzz check failed: %.*s\n", static_cast<int>(what.size()), what.data());
  std::fflush(stderr);
  std::abort();
}

void Report(const absl::Status& status, absl::string_view call) {
  static const bool verbose = std::getenv("SAELAB_FUZZ_VERBOSE") != nullptr;
  if (!verbose) return;
  std::fprintf(stderr, "  %.*s: %s\n", static_cast<int>(call.size()), call.data(),
               status.ToString().substr(0, 300).c_str());
}

void CheckErrorNames(const absl::Status& status, absl::string_view name, absl::string_view call) {
  Report(status, call);
  if (status.ok() || absl::StrContains(status.message(), name)) return;
  Fail(absl::StrCat(call, " returned an error that does not name ", name, ": ",
                    status.ToString()));
}

std::string ScratchPath(absl::string_view name) { return absl::StrCat(ScratchDir(), "/", name); }

void MakeDirOrDie(const std::string& path) {
  std::error_code error;
  std::filesystem::create_directories(path, error);
  if (error) Fail(absl::StrCat("cannot create ", path, ": ", error.message()));
}

void WriteFileOrDie(const std::string& path, absl::string_view bytes) {
  std::FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr) Fail(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  const bool written = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), file) == bytes.size();
  if (std::fclose(file) != 0 || !written) {
    Fail(absl::StrCat("cannot write ", path, ": ", std::strerror(errno)));
  }
}

void RemoveFile(const std::string& path) { std::remove(path.c_str()); }

std::vector<absl::string_view> SplitParts(absl::string_view input, int n) {
  std::vector<absl::string_view> parts;
  for (int i = 0; i + 1 < n; ++i) {
    uint32_t length = 0;
    if (input.size() >= 4) {
      for (int b = 3; b >= 0; --b) length = (length << 8) | static_cast<uint8_t>(input[b]);
      input.remove_prefix(4);
    } else {
      input = absl::string_view();
    }
    const size_t take = std::min<size_t>(length, input.size());
    parts.push_back(input.substr(0, take));
    input.remove_prefix(take);
  }
  parts.push_back(input);
  return parts;
}

std::string JoinParts(const std::vector<std::string>& parts) {
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i + 1 < parts.size()) {
      const uint32_t length = static_cast<uint32_t>(parts[i].size());
      for (int b = 0; b < 4; ++b) out.push_back(static_cast<char>((length >> (8 * b)) & 0xff));
    }
    out += parts[i];
  }
  return out;
}

void ResealForFuzzing(std::string* bytes) {
  // Offsets from harness/sealed_file.h's layout comment.
  constexpr size_t kPayloadSha = 24, kHeaderSha = 448, kShaSize = 64;
  if (bytes->size() < kSealedHeaderSize) return;
  const std::string payload_sha =
      Sha256Hex(absl::string_view(*bytes).substr(kSealedHeaderSize));
  bytes->replace(kPayloadSha, kShaSize, payload_sha);
  const std::string header_sha = Sha256Hex(absl::string_view(*bytes).substr(0, kHeaderSha));
  bytes->replace(kHeaderSha, kShaSize, header_sha);
}

}  // namespace fuzz
}  // namespace saelab
