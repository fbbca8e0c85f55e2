#include "data/subject_model/hooks.h"

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(HooksTest, NamesAreTransformerLensNamesInForwardOrder) {
  EXPECT_THAT(ValidHookNames(2),
              ElementsAre("blocks.0.hook_resid_pre", "blocks.0.hook_attn_out",
                          "blocks.0.hook_resid_mid", "blocks.0.hook_mlp_in",
                          "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post",
                          "blocks.1.hook_resid_pre", "blocks.1.hook_attn_out",
                          "blocks.1.hook_resid_mid", "blocks.1.hook_mlp_in",
                          "blocks.1.hook_mlp_out", "blocks.1.hook_resid_post"));
}

TEST(HooksTest, EveryValidNameParsesBackToItsForwardIndex) {
  const std::vector<std::string> names = ValidHookNames(12);
  for (size_t i = 0; i < names.size(); ++i) {
    absl::StatusOr<HookLocation> location = ParseHookName(names[i], 12);
    ASSERT_TRUE(location.ok()) << location.status();
    EXPECT_EQ(location->index(), static_cast<int64_t>(i));
    EXPECT_EQ(HookName(location->layer, location->point), names[i]);
  }
}

TEST(HooksTest, UnknownNameIsAnErrorListingTheValidNames) {
  for (const char* name : {"blocks.0.hook_resid", "blocks.0.resid_pre", "hook_resid_pre",
                           "blocks.x.hook_resid_pre", "blocks.-1.hook_resid_pre",
                           "blocks.01.hook_resid_pre", "blocks.0.hook_resid_pre.x", ""}) {
    absl::StatusOr<HookLocation> location = ParseHookName(name, 4);
    ASSERT_FALSE(location.ok()) << name;
    EXPECT_EQ(location.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(location.status().message(),
                AllOf(HasSubstr(absl::StrCat("'", name, "'")),
                      HasSubstr("blocks.L.hook_resid_pre"), HasSubstr("blocks.L.hook_attn_out"),
                      HasSubstr("blocks.L.hook_resid_mid"), HasSubstr("blocks.L.hook_mlp_in"),
                      HasSubstr("blocks.L.hook_mlp_out"),
                      HasSubstr("blocks.L.hook_resid_post"), HasSubstr("L in 0..3")))
        << name;
  }
}

TEST(HooksTest, LayerPastTheModelIsAnErrorSayingSo) {
  absl::StatusOr<HookLocation> location = ParseHookName("blocks.4.hook_mlp_out", 4);
  ASSERT_FALSE(location.ok());
  EXPECT_THAT(location.status().message(),
              AllOf(HasSubstr("layer 4"), HasSubstr("4 blocks"), HasSubstr("L in 0..3")));
}

TEST(HooksTest, HeadOutputsNamesParseToTheirLayerAndNothingElseDoes) {
  for (int64_t layer : {0, 3, 11}) {
    absl::StatusOr<std::optional<int64_t>> parsed =
        ParseHeadOutputsHookName(HeadOutputsHookName(layer), 12);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(*parsed, layer);
  }
  EXPECT_EQ(HeadOutputsHookName(3), "blocks.3.attn.hook_z");
  for (const char* name : {"blocks.0.hook_resid_pre", "blocks.01.attn.hook_z", "blocks..attn.hook_z",
                           "blocks.0.attn.hook_q", "attn.hook_z", "blocks.0.attn.hook_z.x"}) {
    absl::StatusOr<std::optional<int64_t>> parsed = ParseHeadOutputsHookName(name, 12);
    ASSERT_TRUE(parsed.ok()) << name;
    EXPECT_FALSE(parsed->has_value()) << name;
  }
  absl::StatusOr<std::optional<int64_t>> past = ParseHeadOutputsHookName("blocks.4.attn.hook_z", 4);
  ASSERT_FALSE(past.ok());
  EXPECT_THAT(past.status().message(), AllOf(HasSubstr("layer 4"), HasSubstr("4 blocks")));
  // hook_z is no SAE hook point.
  EXPECT_FALSE(ParseHookName("blocks.0.attn.hook_z", 4).ok());
}

TEST(HooksTest, CheckedLocationsAreThoseOfTheModel) {
  for (const std::string& name : ValidHookNames(3)) {
    const HookLocation location = *ParseHookName(name, 3);
    EXPECT_TRUE(CheckHookLocation(location, 3).ok()) << name;
    EXPECT_EQ(HookName(location), name);
  }
  for (HookLocation outside : {HookLocation{3, HookPoint::kResidPre},
                               HookLocation{-1, HookPoint::kResidPost},
                               HookLocation{0, static_cast<HookPoint>(kHookPointsPerLayer)}}) {
    absl::Status status = CheckHookLocation(outside, 3);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), AllOf(HasSubstr("3 blocks"), HasSubstr("L in 0..2")));
  }
  EXPECT_THAT(CheckHookLocation(HookLocation{3, HookPoint::kMlpOut}, 3).message(),
              HasSubstr("blocks.3.hook_mlp_out"));
}

TEST(HooksTest, CaptureIntoStoresTheActivationAndReturnsItUnchanged) {
  torch::Tensor captured;
  HookFn hook = CaptureInto(&captured);
  torch::Tensor x = torch::randn({2, 3, 4});
  torch::Tensor y = hook(x);
  EXPECT_TRUE(y.is_same(x));
  EXPECT_TRUE(captured.is_same(x));
}

}  // namespace
}  // namespace saelab
