// Headless Chromium for tests that render a page (Debian's chromium, which
// ./bazelw installs): a fresh profile per run, HOME and the XDG folders in
// the test's temporary directory, no network but what the page asks for.
//
//   if (!ChromiumInstalled()) GTEST_SKIP() << "no chromium";
//   ASSERT_EQ(RunChromium("file://" + page, "--dump-dom", dom_path), 0);
//   EXPECT_THAT(ConsoleLines(ReadFile(dom_path + ".stderr")), IsEmpty());
#ifndef SAELAB_HARNESS_TESTING_HEADLESS_CHROMIUM_H_
#define SAELAB_HARNESS_TESTING_HEADLESS_CHROMIUM_H_

#include <string>
#include <vector>

namespace saelab {

inline constexpr char kChromium[] = "/usr/bin/chromium";

bool ChromiumInstalled();

// Runs headless Chromium on `url` with `flags` (e.g. "--dump-dom") and a
// virtual time budget of `budget_ms`; stdout goes to `out`, stderr to
// `out`.stderr. Returns the exit status (-1 if it did not exit).
int RunChromium(const std::string& url, const std::string& flags, const std::string& out,
                int budget_ms = 2000);

// The lines of Chromium's stderr that report a console message or an
// uncaught exception of the page.
std::vector<std::string> ConsoleLines(const std::string& stderr_text);

}  // namespace saelab

#endif  // SAELAB_HARNESS_TESTING_HEADLESS_CHROMIUM_H_
