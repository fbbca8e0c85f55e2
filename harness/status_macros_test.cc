#include "harness/status_macros.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

absl::Status FailIf(bool fail) {
  return fail ? absl::InvalidArgumentError("asked to fail") : absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(bool fail, int value) {
  if (fail) return absl::NotFoundError("no int");
  return std::make_unique<int>(value);
}

absl::Status Chain(bool fail_first, bool fail_second, int* out) {
  RETURN_IF_ERROR(FailIf(fail_first));
  ASSIGN_OR_RETURN(std::unique_ptr<int> value, MakeInt(fail_second, 7));
  *out = *value;
  return absl::OkStatus();
}

TEST(StatusMacrosTest, ReturnIfErrorPropagatesTheFirstError) {
  int out = 0;
  absl::Status status = Chain(true, false, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(out, 0);
}

TEST(StatusMacrosTest, AssignOrReturnPropagatesErrorAndMovesValues) {
  int out = 0;
  EXPECT_EQ(Chain(false, true, &out).code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(out, 0);
  // A move-only value arrives through the macro.
  EXPECT_TRUE(Chain(false, false, &out).ok());
  EXPECT_EQ(out, 7);
}

absl::StatusOr<int> TwoAssignsOnDifferentLines() {
  ASSIGN_OR_RETURN(auto a, MakeInt(false, 2));
  ASSIGN_OR_RETURN(auto b, MakeInt(false, 3));
  return *a + *b;
}

TEST(StatusMacrosTest, SeveralAssignsInOneScopeCompileAndWork) {
  absl::StatusOr<int> sum = TwoAssignsOnDifferentLines();
  ASSERT_TRUE(sum.ok());
  EXPECT_EQ(*sum, 5);
}

TEST(StatusMacrosTest, ValueOrDieReturnsTheValueOrAbortsWithTheStatus) {
  EXPECT_EQ(ValueOrDie(absl::StatusOr<int>(7)), 7);
  EXPECT_DEATH(ValueOrDie(absl::StatusOr<int>(absl::NotFoundError("no such model"))),
               "fatal: NOT_FOUND: no such model");
}

}  // namespace
}  // namespace saelab
