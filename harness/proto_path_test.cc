#include "harness/proto_path.h"

#include <gtest/gtest.h>

#include "harness/result.pb.h"

namespace saelab {
namespace {

// Provenance and MetricStats cover int32, int64, uint64, bool, double and
// string fields, and a nested message (a repeated one, which is refused).
TEST(ProtoPathTest, SetsAndReadsEachNumericType) {
  Provenance p;
  ASSERT_TRUE(SetNumericField(&p, "cpu_cores", 16).ok());
  ASSERT_TRUE(SetNumericField(&p, "root_seed", 12345678901).ok());
  ASSERT_TRUE(SetNumericField(&p, "git_dirty", 1).ok());
  EXPECT_EQ(p.cpu_cores(), 16);
  EXPECT_EQ(p.root_seed(), 12345678901u);
  EXPECT_TRUE(p.git_dirty());
  EXPECT_EQ(*GetNumericField(p, "cpu_cores"), 16.0);
  EXPECT_EQ(*GetNumericField(p, "git_dirty"), 1.0);

  PowerLawFit fit;
  ASSERT_TRUE(SetNumericField(&fit, "alpha.ci95_low", 0.25).ok());
  ASSERT_TRUE(SetNumericField(&fit, "alpha.n", 7).ok());
  EXPECT_TRUE(fit.has_alpha());
  EXPECT_EQ(fit.alpha().ci95_low(), 0.25);
  EXPECT_EQ(fit.alpha().n(), 7);
  // Unset: the default, through an unset parent.
  EXPECT_EQ(*GetNumericField(fit, "c.mean"), 0.0);
}

TEST(ProtoPathTest, RefusesWhatDoesNotFit) {
  Provenance p;
  absl::Status unknown = SetNumericField(&p, "cpu_corez", 1);
  EXPECT_EQ(unknown.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(unknown.message().find("cpu_corez"), std::string::npos);
  EXPECT_NE(unknown.message().find("cpu_cores"), std::string::npos);  // listed
  EXPECT_FALSE(SetNumericField(&p, "cpu_cores", 2.5).ok());
  EXPECT_FALSE(SetNumericField(&p, "cpu_cores", 3e10).ok());
  EXPECT_FALSE(SetNumericField(&p, "root_seed", -1).ok());
  EXPECT_FALSE(SetNumericField(&p, "git_dirty", 2).ok());
  EXPECT_FALSE(SetNumericField(&p, "git_commit", 1).ok());  // a string
  EXPECT_FALSE(SetNumericField(&p, "seeds.seed", 1).ok());  // repeated
  EXPECT_FALSE(SetNumericField(&p, "cpu_cores.x", 1).ok());  // not a message
  MetricStats stats;
  EXPECT_FALSE(SetNumericField(&stats, "mean", std::nan("")).ok());
  EXPECT_FALSE(p.has_cpu_cores());  // nothing was written by a refusal
}

}  // namespace
}  // namespace saelab
