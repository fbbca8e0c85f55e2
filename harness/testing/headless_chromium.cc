#include "harness/testing/headless_chromium.h"

#include <sys/wait.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {

bool ChromiumInstalled() { return PathExists(kChromium); }

int RunChromium(const std::string& url, const std::string& flags, const std::string& out,
                int budget_ms) {
  static int run = 0;
  const std::string tmp = testing::TempDir();
  // A fresh profile per run; HOME and the XDG dirs point into the test's
  // writable temporary directory (the sandbox's HOME may not be writable).
  const std::string profile = absl::StrCat(tmp, "/chromium-profile-", run++);
  const std::string command = absl::StrCat(
      "env HOME='", tmp, "' XDG_CONFIG_HOME='", tmp, "/xdg-config' XDG_CACHE_HOME='", tmp,
      "/xdg-cache' timeout 60 ", kChromium,
      " --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-quic"
      " --no-first-run --disable-background-networking --disable-component-update --disable-sync"
      " --user-data-dir='",
      profile, "' --enable-logging=stderr --v=0 --virtual-time-budget=", budget_ms, " ", flags,
      " '", url, "' >'", out, "' 2>'", out, ".stderr'");
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::vector<std::string> ConsoleLines(const std::string& stderr_text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < stderr_text.size()) {
    size_t end = stderr_text.find('\n', start);
    if (end == std::string::npos) end = stderr_text.size();
    const std::string line = stderr_text.substr(start, end - start);
    if (absl::StrContains(line, "CONSOLE") || absl::StrContains(line, "Uncaught")) {
      lines.push_back(line);
    }
    start = end + 1;
  }
  return lines;
}

}  // namespace saelab
