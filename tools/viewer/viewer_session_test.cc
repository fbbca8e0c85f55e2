#include "tools/viewer/viewer_session.h"

#include <torch/types.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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
    absl::StatusOr<PromptView> view = session_->View(kPrompt, LatentEdits({{0, latent, edit}}));
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

// Ablating a head at hook_z is what the model gives with that head zeroed
// (after BOS) by a hook written here.
TEST_F(ViewerSessionTest, AblatingAHeadGivesTheModelWithThatHeadZeroed) {
  ViewEdits edits;
  edits.heads.push_back({/*layer=*/1, /*head=*/2, /*scale=*/0});
  absl::StatusOr<PromptView> view = session_->View(kPrompt, edits);
  ASSERT_TRUE(view.ok()) << view.status();
  HookSet zero_head;
  zero_head.hooks["blocks.1.attn.hook_z"] = [](const torch::Tensor& z) {
    torch::Tensor out = z.clone();
    out.select(2, 2).slice(1, 1).zero_();
    return out;
  };
  const torch::Tensor logits = LastLogits(zero_head), clean = LastLogits({});
  double moved = 0;
  for (const NextToken& next : view->next_tokens) {
    EXPECT_NEAR(next.logit, logits[next.id].item<double>(), 1e-4);
    moved = std::max(moved, std::abs(next.logit - clean[next.id].item<double>()));
  }
  EXPECT_GT(moved, 1e-3);
}

// Patching a latent from a second prompt sets it, position by position, to
// its value there (past that prompt's end, the value at its last token).
TEST_F(ViewerSessionTest, PatchingALatentFromASecondPromptTakesItsValuesByPosition) {
  const std::string source = "In the beginning God";
  absl::StatusOr<PromptView> source_view = session_->View(source, {});
  ASSERT_TRUE(source_view.ok());
  const int64_t latent = source_view->top_latents[0].back()[0].latent;
  PromptEdit patch{0, latent, LatentEdit::Zero()};
  patch.patch_from = source;
  absl::StatusOr<PromptView> view = session_->View(kPrompt, LatentEdits({patch}));
  ASSERT_TRUE(view.ok()) << view.status();
  // By hand: the source's code at the hook, then a splice that writes it.
  torch::NoGradGuard no_grad;
  std::vector<int64_t> source_ids = {*tokenizer_->eos_id()};
  for (int32_t id : tokenizer_->Encode(source)) source_ids.push_back(id);
  ASSERT_LT(source_ids.size(), ids_.size());
  Sae& sae = *session_->saes()[0].sae;
  absl::StatusOr<torch::Tensor> source_activation = model_->RunToHook(
      torch::tensor(source_ids, torch::kInt64).unsqueeze(0), HookLocation{1, HookPoint::kResidPost});
  ASSERT_TRUE(source_activation.ok());
  const torch::Tensor source_f = sae.Encode((*source_activation)[0]);
  std::vector<float> wanted;  // positions 1.. of the prompt
  for (size_t p = 1; p < ids_.size(); ++p) {
    wanted.push_back(source_f[std::min(p, source_ids.size() - 1)][latent].item<float>());
  }
  absl::StatusOr<HookSet> splice = SpliceAt(*model_, "blocks.1.hook_resid_post", sae,
                                            [&](const torch::Tensor& x) {
                                              torch::Tensor f = sae.Encode(x), edited = f.clone();
                                              edited.select(1, latent).copy_(torch::tensor(wanted));
                                              return x + (sae.Decode(edited) - sae.Decode(f));
                                            });
  ASSERT_TRUE(splice.ok());
  const torch::Tensor logits = LastLogits(*splice), clean = LastLogits({});
  double moved = 0;
  for (const NextToken& next : view->next_tokens) {
    EXPECT_NEAR(next.logit, logits[next.id].item<double>(), 1e-4);
    moved = std::max(moved, std::abs(next.logit - clean[next.id].item<double>()));
  }
  EXPECT_GT(moved, 1e-4);
}

// Attribution: the metric is the logit View shows; a node's effect summed
// over positions is the derivative of the metric under scaling that node,
// which central finite differences of Attribute's own metric (with a Scale
// edit or a head scale) measure independently of the gradient.
TEST_F(ViewerSessionTest, AttributionEffectsAreTheMetricsDerivativesUnderScaling) {
  absl::StatusOr<PromptView> view = session_->View(kPrompt, {});
  ASSERT_TRUE(view.ok());
  const int32_t target = view->next_tokens[0].id, contrast = view->next_tokens[1].id;
  AttributionTarget request{target, contrast, /*top_nodes=*/100000};
  absl::StatusOr<PromptAttribution> attribution = session_->Attribute(kPrompt, {}, request);
  ASSERT_TRUE(attribution.ok()) << attribution.status();
  EXPECT_NEAR(attribution->metric, view->next_tokens[0].logit - view->next_tokens[1].logit, 1e-4);
  EXPECT_EQ(attribution->token_texts, view->token_texts);
  ASSERT_FALSE(attribution->nodes.empty());
  for (size_t j = 1; j < attribution->nodes.size(); ++j) {
    EXPECT_GE(std::abs(attribution->nodes[j - 1].effect), std::abs(attribution->nodes[j].effect));
  }
  // The strongest latent and the strongest head, summed over positions.
  const AttributedNode* latent = nullptr;
  const AttributedNode* head = nullptr;
  for (const AttributedNode& node : attribution->nodes) {
    if (node.kind == AttributedNode::Kind::kLatent && latent == nullptr) latent = &node;
    if (node.kind == AttributedNode::Kind::kHead && head == nullptr) head = &node;
  }
  ASSERT_NE(latent, nullptr);
  ASSERT_NE(head, nullptr);
  double latent_sum = 0, head_sum = 0;
  for (const AttributedNode& node : attribution->nodes) {
    if (node.kind == AttributedNode::Kind::kLatent && node.site == latent->site &&
        node.latent == latent->latent) {
      latent_sum += node.effect;
      EXPECT_EQ(view->top_latents[node.site][node.position].empty(), false);
    }
    if (node.kind == AttributedNode::Kind::kHead && node.layer == head->layer &&
        node.head == head->head) {
      head_sum += node.effect;
    }
  }
  constexpr double kStep = 0.02;
  auto metric_with = [&](const ViewEdits& edits) {
    absl::StatusOr<PromptAttribution> a = session_->Attribute(kPrompt, edits, {target, contrast, 0});
    EXPECT_TRUE(a.ok()) << a.status();
    return a->metric;
  };
  // Scaling a node by (1 + s) moves the metric by -s * (its summed effect).
  const double latent_slope =
      (metric_with(LatentEdits({{latent->site, latent->latent, LatentEdit::Scale(1 + kStep)}})) -
       metric_with(LatentEdits({{latent->site, latent->latent, LatentEdit::Scale(1 - kStep)}}))) /
      (2 * kStep);
  EXPECT_NEAR(-latent_slope, latent_sum, 0.02 * std::abs(latent_sum) + 2e-3)
      << "site " << latent->site << " latent " << latent->latent;
  ViewEdits up, down;
  up.heads.push_back({head->layer, head->head, 1 + kStep});
  down.heads.push_back({head->layer, head->head, 1 - kStep});
  const double head_slope = (metric_with(up) - metric_with(down)) / (2 * kStep);
  EXPECT_NEAR(-head_slope, head_sum, 0.02 * std::abs(head_sum) + 2e-3)
      << "head " << head->layer << "." << head->head;
  EXPECT_GT(std::abs(latent_sum) + std::abs(head_sum), 1e-2);
}

// A latent's card scans the dashboard contexts: its top activation is the
// largest the SAE gives it over those contexts.
TEST_F(ViewerSessionTest, LatentCardShowsTheLatentsTopActivationOverTheContexts) {
  std::vector<int64_t> context = ids_;
  torch::Tensor contexts = torch::tensor(context, torch::kInt64).unsqueeze(0).repeat({2, 1});
  ViewerSession session = *session_;
  session.SetDashboardContexts(contexts);
  absl::StatusOr<PromptView> view = session.View(kPrompt, {});
  ASSERT_TRUE(view.ok());
  const LatentActivation best = view->top_latents[0].back()[0];
  absl::StatusOr<std::string> page = session.LatentCardHtml(0, best.latent);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_THAT(*page, ::testing::HasSubstr(absl::StrCat("\"id\":", best.latent)));
  EXPECT_THAT(*page, ::testing::HasSubstr(absl::StrCat("a latent ", best.latent)));
}

TEST_F(ViewerSessionTest, BadRequestsAreErrors) {
  EXPECT_THAT(session_->View(kPrompt, LatentEdits({{2, 0, LatentEdit::Zero()}})).status().message(),
              ::testing::HasSubstr("no SAE number 2"));
  EXPECT_EQ(session_->View(kPrompt, LatentEdits({{0, 256, LatentEdit::Zero()}})).status().code(),
            absl::StatusCode::kInvalidArgument);
  ViewEdits bad_head;
  bad_head.heads.push_back({/*layer=*/0, /*head=*/model_->config().n_head, 0});
  EXPECT_THAT(session_->View(kPrompt, bad_head).status().message(), ::testing::HasSubstr("no head 0."));
  PromptEdit empty_patch{0, 1, LatentEdit::Zero(), ""};
  empty_patch.patch_from = " ";
  absl::Status patch_status = session_->View(kPrompt, LatentEdits({empty_patch})).status();
  EXPECT_TRUE(patch_status.ok() || absl::StrContains(patch_status.message(), "patch from"))
      << patch_status;
  EXPECT_THAT(session_->Attribute(kPrompt, {}, {/*token=*/-1}).status().message(),
              ::testing::HasSubstr("outside the vocabulary"));
  EXPECT_EQ(session_->LatentCardHtml(0, 3).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(session_->LatentCardHtml(5, 3).status().message(), ::testing::HasSubstr("no SAE number 5"));
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
