#include "tools/viewer/viewer_session.h"

#include <torch/torch.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tools/viewer/internal/test_session.h"

namespace saelab {
namespace {

constexpr char kPrompt[] = "And God said, Let there be light: and there was";

class ViewerSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    session_ = TestSession();
    model_ = Gpt2Model::LoadHfDirectory(kTestModelDir).value();
    tokenizer_ = BpeTokenizer::FromDir(kTestModelDir).value();
    std::vector<int64_t> ids = {*tokenizer_->eos_id()};
    for (int32_t id : tokenizer_->Encode(kPrompt)) ids.push_back(id);
    ids_ = ids;
    tokens_ = torch::tensor(ids, torch::kInt64).unsqueeze(0);
  }
  // The last position's logits, from the model directly.
  torch::Tensor LastLogits(const HookSet& hooks) {
    torch::NoGradGuard no_grad;
    absl::StatusOr<torch::Tensor> logits = model_->Forward(tokens_, hooks);
    EXPECT_TRUE(logits.ok());
    return (*logits)[0][tokens_.size(1) - 1];
  }
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
  std::optional<ViewerSession> session_;
  std::vector<int64_t> ids_;
  torch::Tensor tokens_;
};

// Without edits the view is the model's own: its next-token logits, each
// SAE's code of the hook's activation, its greedy continuation.
TEST_F(ViewerSessionTest, ViewWithoutEditsIsTheModels) {
  absl::StatusOr<PromptView> view = session_->View(kPrompt, {});
  ASSERT_TRUE(view.ok()) << view.status();
  ASSERT_EQ(view->tokens.size() + 1, ids_.size());
  EXPECT_EQ(absl::StrJoin(view->token_texts, ""), kPrompt);
  const torch::Tensor logits = LastLogits({});
  ASSERT_EQ(view->next_tokens.size(), 10u);
  const auto [expected_logits, expected_ids] = logits.topk(10);
  double probability_sum = 0;
  for (int j = 0; j < 10; ++j) {
    EXPECT_EQ(view->next_tokens[j].id, expected_ids[j].item<int64_t>());
    EXPECT_FLOAT_EQ(view->next_tokens[j].logit, expected_logits[j].item<float>());
    probability_sum += view->next_tokens[j].probability;
  }
  EXPECT_GT(probability_sum, 0.1);
  EXPECT_LT(probability_sum, 1.0);
  // Site 0's top latents, from the activation RunToHook gives.
  torch::NoGradGuard no_grad;
  absl::StatusOr<torch::Tensor> activation =
      model_->RunToHook(tokens_, HookLocation{1, HookPoint::kResidPost});
  ASSERT_TRUE(activation.ok());
  const torch::Tensor f = session_->saes()[0].sae->Encode((*activation)[0].slice(0, 1));
  for (int64_t t = 0; t < f.size(0); ++t) {
    ASSERT_EQ(view->top_latents[0][t].size(), 8u);  // TopK k 8: eight positive latents
    const int64_t best = f[t].argmax().item<int64_t>();
    EXPECT_EQ(view->top_latents[0][t][0].latent, best);
    EXPECT_FLOAT_EQ(view->top_latents[0][t][0].activation, f[t][best].item<float>());
  }
  GenerateOptions greedy;
  greedy.max_new_tokens = 16;
  greedy.temperature = 0;
  absl::StatusOr<GenerateResult> generated = model_->Generate(ids_, greedy);
  ASSERT_TRUE(generated.ok());
  EXPECT_EQ(std::vector<int64_t>(view->continuation.begin(), view->continuation.end()),
            generated->tokens);
}

// Ablating a latent changes the logits to what eval/splice's EditLatent
// gives, and away from the unedited ones.
TEST_F(ViewerSessionTest, AblatingALatentGivesTheSplicedModelsLogits) {
  absl::StatusOr<PromptView> unedited = session_->View(kPrompt, {});
  ASSERT_TRUE(unedited.ok());
  const int64_t latent = unedited->top_latents[0].back()[0].latent;  // last token's strongest
  for (const LatentEdit edit : {LatentEdit::Zero(), LatentEdit::Clamp(40.0)}) {
    absl::StatusOr<PromptView> view = session_->View(kPrompt, {{0, latent, edit}});
    ASSERT_TRUE(view.ok()) << view.status();
    Sae& sae = *session_->saes()[0].sae;
    absl::StatusOr<HookSet> splice =
        SpliceAt(*model_, "blocks.1.hook_resid_post", sae, EditLatent(sae, latent, edit));
    ASSERT_TRUE(splice.ok());
    const torch::Tensor logits = LastLogits(*splice);
    const torch::Tensor clean = LastLogits({});
    double moved = 0;
    for (const NextToken& next : view->next_tokens) {
      EXPECT_NEAR(next.logit, logits[next.id].item<double>(), 1e-4);
      moved = std::max(moved, std::abs(next.logit - clean[next.id].item<double>()));
    }
    EXPECT_GT(moved, 1e-3);
  }
}

TEST_F(ViewerSessionTest, BadRequestsAreErrors) {
  EXPECT_THAT(session_->View(kPrompt, {{2, 0, LatentEdit::Zero()}}).status().message(),
              ::testing::HasSubstr("no SAE number 2"));
  EXPECT_EQ(session_->View(kPrompt, {{0, 256, LatentEdit::Zero()}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(session_->View("", {}).status().message(), ::testing::HasSubstr("empty"));
  std::string long_prompt;
  for (int i = 0; i < 200; ++i) long_prompt += " and";
  EXPECT_THAT(session_->View(long_prompt, {}).status().message(), ::testing::HasSubstr("must fit"));
  std::vector<ViewerSae> twice;
  twice.push_back({"blocks.1.hook_resid_post", "a", RandomTopKSae(1)});
  twice.push_back({"blocks.1.hook_resid_post", "b", RandomTopKSae(2)});
  EXPECT_THAT(ViewerSession::Create(*model_, *tokenizer_, std::move(twice)).status().message(),
              ::testing::HasSubstr("two SAEs at blocks.1.hook_resid_post"));
  std::vector<ViewerSae> unknown;
  unknown.push_back({"blocks.9.hook_resid_post", "a", RandomTopKSae(1)});
  EXPECT_EQ(ViewerSession::Create(*model_, *tokenizer_, std::move(unknown)).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
