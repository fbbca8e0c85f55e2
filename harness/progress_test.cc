#include "harness/progress.h"

#include <cstdio>
#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

std::string ReadAll(std::FILE* f) {
  std::rewind(f);
  std::string text;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0) text.append(buffer, n);
  return text;
}

TEST(ProgressTest, HumanCountUsesSiSuffixes) {
  EXPECT_EQ(HumanCount(999), "999");
  EXPECT_EQ(HumanCount(12345), "12.3k");
  EXPECT_EQ(HumanCount(4.56e6), "4.56M");
}

TEST(ProgressTest, PlainModeRateLimitsLinesAndEndsWithAFinalLine) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  {
    Progress progress("train", 1000, "tokens", f, /*interactive=*/0, /*plain_interval_seconds=*/3600);
    for (int i = 0; i <= 1000; i += 10) progress.Update(i, "loss 0.5");
    progress.Finish("done");
  }
  std::string text = ReadAll(f);
  std::fclose(f);
  // One line on the first update (the interval has not started), one final.
  int lines = 0;
  for (char c : text) lines += c == '\n';
  EXPECT_EQ(lines, 2) << text;
  EXPECT_EQ(text.find('\r'), std::string::npos);
  EXPECT_NE(text.find("100.0%"), std::string::npos) << text;
  EXPECT_NE(text.find("done"), std::string::npos) << text;
}

TEST(ProgressTest, InteractiveModeRedrawsInPlaceWithABar) {
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  Progress progress("harvest", 100, "tokens", f, /*interactive=*/1);
  progress.Update(50);
  progress.Finish();
  std::string text = ReadAll(f);
  std::fclose(f);
  EXPECT_NE(text.find("\r"), std::string::npos);
  EXPECT_NE(text.find("[############............]"), std::string::npos) << text;
  EXPECT_NE(text.find("ETA"), std::string::npos);
}

}  // namespace
}  // namespace saelab
