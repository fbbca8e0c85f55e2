#include "harness/log.h"

#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

TEST(LogTest, MessageClearsTheLiveProgressLineAndRedrawsItAfter) {
  testing::internal::CaptureStderr();
  SetLiveLine(stderr, "train [##..] 50%");
  Log("resumed %s at step %d", "topk_k8", 7);
  SetLiveLine(stderr, "");
  LogLine("done");
  const std::string out = testing::internal::GetCapturedStderr();
  EXPECT_EQ(out,
            "\r\033[Ktrain [##..] 50%"                             // the live line is drawn
            "\r\033[Kresumed topk_k8 at step 7\ntrain [##..] 50%"  // cleared, message, redrawn
            "\r\033[K"                                             // cleared for good
            "done\n");                                             // no live line: plain
}

TEST(LogTest, LiveLineOnAnotherStreamIsNotTouched) {
  std::FILE* other = std::tmpfile();
  ASSERT_NE(other, nullptr);
  SetLiveLine(other, "bar");
  testing::internal::CaptureStderr();
  LogLine("message");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "message\n");
  SetLiveLine(other, "");
  std::fclose(other);
}

}  // namespace
}  // namespace saelab
