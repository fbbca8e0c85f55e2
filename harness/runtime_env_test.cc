#include "harness/runtime_env.h"

#include <cstdlib>
#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

// Tests do not pin the runtime themselves; .bazelrc's --test_env gives them
// its malloc settings (plus huge pages). This fails when the two drift.
TEST(RuntimeEnvTest, TestsRunWithThePinnedMallocSettings) {
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  ASSERT_NE(tunables, nullptr) << "run under `bazel test`, which sets it from .bazelrc";
  const std::string value = tunables;
  EXPECT_EQ(value.rfind(kPinnedMallocTunables, 0), 0u)
      << "GLIBC_TUNABLES=" << value << " does not start with " << kPinnedMallocTunables;
}

}  // namespace
}  // namespace saelab
