#include "eval/circuits/shift.h"

#include <torch/types.h>

#include <memory>
#include <set>
#include <vector>

#include "eval/internal/test_models.h"
#include "eval/linear_probe.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

class ShiftTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = ReferenceModel();
    tokenizer_ = ReferenceTokenizer();
    config_.set_context_tokens(16);
    config_.set_train_examples_per_class(24);
    config_.set_test_examples_per_class(12);
    config_.set_cue_pairs(8);
    config_.set_ablate_latents(4);
    config_.set_random_draws(2);
  }
  int64_t Id(const char* text) { return *tokenizer_->TokenId(text); }
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
  ShiftEvalConfig config_;
};

// The default cue is the pronouns' gender: each context holds only one
// gender's pronouns, the positive class's as written ("he") and the
// negative class's swapped ("she"), except the conflicting half of a
// balanced set.
TEST_F(ShiftTest, ContextsCarryTheirClassesCue) {
  const std::set<int64_t> male = {Id(" he"), Id(" him"), Id(" his"), Id(" He"), Id(" His")};
  const std::set<int64_t> female = {Id(" she"), Id(" her"), Id(" She"), Id(" Her")};
  for (const CueForms forms : {CueForms::kConfounded, CueForms::kBalanced}) {
    absl::StatusOr<ShiftContexts> data =
        BuildShiftContexts(config_, *tokenizer_, {Split::kTrain}, 24, forms, 3);
    ASSERT_TRUE(data.ok()) << data.status();
    ASSERT_EQ(data->tokens.size(0), 48);
    ASSERT_EQ(data->tokens.size(1), 17);
    int conflicting = 0;
    for (int64_t row = 0; row < 48; ++row) {
      int males = 0, females = 0;
      for (int64_t t = 1; t < 17; ++t) {
        const int64_t id = data->tokens[row][t].item<int64_t>();
        males += male.count(id);
        females += female.count(id);
      }
      const bool positive = data->labels[row].item<int64_t>() == 1;
      const bool flipped = data->conflicting[row].item<bool>();
      conflicting += flipped;
      EXPECT_EQ(positive, row % 2 == 0);
      const bool written_as_male = positive != flipped;
      EXPECT_EQ(males > 0, written_as_male) << row;
      EXPECT_EQ(females > 0, !written_as_male) << row;
    }
    EXPECT_EQ(conflicting, forms == CueForms::kBalanced ? 24 : 0);
  }
}

// The unedited probe's numbers, recomputed outside RunShift from the same
// contexts: the probe hook's activation averaged over the text, a logistic
// probe, its accuracy on the balanced test set.
TEST_F(ShiftTest, ProbeAccuracyMatchesAnIndependentRecomputation) {
  std::vector<std::unique_ptr<Sae>> saes;
  std::vector<CircuitSite> sites;
  for (const char* hook : {"blocks.0.hook_mlp_out", "blocks.1.hook_resid_post"}) {
    saes.push_back(RandomReluSae(128, 64, saes.size() + 1));
    sites.push_back({hook, saes.back().get()});
  }
  constexpr uint64_t kSeed = 11;
  absl::StatusOr<ShiftResult> result = RunShift(config_, 2, *model_, *tokenizer_, sites, kSeed);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->probe_hook(), "blocks.1.hook_resid_post");
  EXPECT_EQ(result->ablated_size(), 4);
  EXPECT_EQ(result->cue_pairs(), 8);

  torch::NoGradGuard no_grad;
  const auto features = [&](const torch::Tensor& tokens) {
    absl::StatusOr<torch::Tensor> x =
        model_->RunToHook(tokens, HookLocation{1, HookPoint::kResidPost});
    EXPECT_TRUE(x.ok());
    return x->slice(1, 1).mean(1);
  };
  absl::StatusOr<ShiftContexts> train = BuildShiftContexts(
      config_, *tokenizer_, {Split::kTrain}, 24, CueForms::kConfounded, kSeed);
  absl::StatusOr<ShiftContexts> test = BuildShiftContexts(
      config_, *tokenizer_, {Split::kVal, Split::kTest}, 12, CueForms::kBalanced, kSeed + 2);
  ASSERT_TRUE(train.ok() && test.ok());
  absl::StatusOr<LinearClassifier> probe =
      FitLogisticRegression(features(train->tokens), train->labels);
  ASSERT_TRUE(probe.ok());
  const torch::Tensor right =
      probe->Predict(features(test->tokens)).eq(test->labels).to(torch::kFloat64);
  EXPECT_DOUBLE_EQ(result->accuracy(), right.mean().item<double>());
  EXPECT_DOUBLE_EQ(result->conflicting_accuracy(),
                   right.index({test->conflicting}).mean().item<double>());
}

TEST_F(ShiftTest, BadSettingsAreErrors) {
  std::unique_ptr<Sae> sae = RandomReluSae(128, 64, 1);
  const std::vector<CircuitSite> sites = {{"blocks.0.hook_mlp_out", sae.get()}};
  ShiftEvalConfig config = config_;
  config.set_ablation("shuffle");
  EXPECT_THAT(RunShift(config, 2, *model_, *tokenizer_, sites, 1).status().message(),
              ::testing::HasSubstr("\"shuffle\" is neither"));
  config = config_;
  CueSwap* swap = config.add_cue_swaps();
  swap->set_from(" he");
  swap->set_to(" she she");
  EXPECT_THAT(BuildShiftContexts(config, *tokenizer_, {Split::kTrain}, 4, CueForms::kBalanced, 1)
                  .status()
                  .message(),
              ::testing::HasSubstr("not one token to one token"));
  config = config_;
  config.mutable_positive()->set_corpus("kjv");
  config.mutable_positive()->set_label_key("book");
  config.mutable_positive()->add_label_values("Ob");  // Obadiah: one short chapter
  const absl::Status status =
      BuildShiftContexts(config, *tokenizer_, {Split::kTest}, 500, CueForms::kBalanced, 1).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), ::testing::HasSubstr("kjv book=Ob"));
  config = config_;
  config.set_probe_hook("blocks.0.hook_attn_out");  // before every site
  EXPECT_EQ(RunShift(config, 2, *model_, *tokenizer_, sites, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
