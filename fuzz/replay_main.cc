// Replays fuzz inputs through a fuzz target without libFuzzer: a main() that
// calls LLVMFuzzerTestOneInput once per file. Linked into every
// <target>_replay_test (the committed corpus and crash inputs as a
// regression test, built with the default toolchain) and, outside
// --config=fuzz, into <target>_fuzzer itself.
//
//   bazel-bin/fuzz/npy_fuzzer --corpus=fuzz/corpus/npy --regressions=fuzz/crashes/npy
//   bazel-bin/fuzz/npy_fuzzer crash-1234abcd        # one file, or any folder
//
// --corpus=DIR must exist and hold at least one file (a seed corpus that
// went missing would otherwise pass silently); --regressions=DIR may be
// absent or empty (no crash found yet); plain arguments are files or
// folders, read recursively. A target reports a finding by crashing or
// aborting, which fails the test; inputs the parser merely rejects pass.
// Exit status: 0, or 2 for a usage error (a missing corpus).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/strip.h"
#include "absl/strings/string_view.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);
extern "C" __attribute__((weak)) int LLVMFuzzerInitialize(int* argc, char*** argv);

namespace {

namespace fs = std::filesystem;

// The regular files at `path` (itself, or everything under it), sorted so
// that runs are reproducible.
std::vector<fs::path> FilesUnder(const fs::path& path) {
  std::vector<fs::path> files;
  std::error_code error;
  if (fs::is_regular_file(path, error)) {
    files.push_back(path);
  } else if (fs::is_directory(path, error)) {
    for (const auto& entry : fs::recursive_directory_iterator(path, error)) {
      if (entry.is_regular_file(error)) files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// Runs every file at `path`; returns how many.
size_t Replay(const fs::path& path) {
  size_t count = 0;
  for (const fs::path& file : FilesUnder(path)) {
    std::ifstream in(file, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      std::fprintf(stderr, "replay: cannot read %s\n", file.c_str());
      continue;
    }
    std::fprintf(stderr, "replay: %s (%zu bytes)\n", file.c_str(), bytes.size());
    // A copy of exactly the input's size, so ASan sees reads past its end.
    std::vector<uint8_t> data(bytes.begin(), bytes.end());
    LLVMFuzzerTestOneInput(data.empty() ? nullptr : data.data(), data.size());
    ++count;
  }
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  if (LLVMFuzzerInitialize != nullptr) LLVMFuzzerInitialize(&argc, &argv);
  size_t total = 0;
  for (int i = 1; i < argc; ++i) {
    absl::string_view value = argv[i];
    size_t count = 0;
    if (absl::ConsumePrefix(&value, "--corpus=")) {
      count = Replay(fs::path(std::string(value)));
      if (count == 0) {
        std::fprintf(stderr, "replay: corpus %.*s is missing or empty\n",
                     static_cast<int>(value.size()), value.data());
        return 2;
      }
    } else if (absl::ConsumePrefix(&value, "--regressions=")) {
      count = Replay(fs::path(std::string(value)));
    } else {
      count = Replay(fs::path(std::string(value)));
      if (count == 0) {
        std::fprintf(stderr, "replay: no input files at %s\n", argv[i]);
        return 2;
      }
    }
    std::printf("replay: %zu inputs from %.*s, no crash\n", count, static_cast<int>(value.size()),
                value.data());
    total += count;
  }
  std::printf("replay: %zu inputs in all\n", total);
  return 0;
}
