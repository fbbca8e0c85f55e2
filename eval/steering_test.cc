#include "eval/steering.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/match.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr char kModelDir[] = "data/models/saelab-ref-lm";
constexpr char kLastHook[] = "blocks.3.hook_resid_post";

// A ReLU SAE on the reference model's last residual stream whose latent 0
// never fires by itself (encoder 0) and decodes to `direction`; latent 1
// has a zero decoder row.
std::unique_ptr<Sae> HandSae(const torch::Tensor& direction) {
  std::unique_ptr<Sae> sae = PlantableReluSae(direction.numel(), 2, 1);
  torch::NoGradGuard no_grad;
  sae->W_enc.zero_();
  sae->W_dec.zero_();
  sae->W_dec[0].copy_(direction);
  return sae;
}

SteeringEvalConfig SmallConfig() {
  SteeringEvalConfig config;
  config.add_clamp_multiples(0);
  config.add_clamp_multiples(60);
  config.set_samples_per_prompt(2);
  config.set_max_new_tokens(8);
  return config;
}

// Clamping a latent that decodes to the embedding of " unto" at the last
// residual stream (tied unembedding) makes the model say " unto"; clamping
// to its own value (0) changes nothing, bit for bit.
TEST(SteeringTest, ClampingSteersAndAZeroEditChangesNothing) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(kModelDir);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromDir(kModelDir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const std::optional<int32_t> unto = tokenizer->TokenId(" unto");
  ASSERT_TRUE(unto.has_value());
  const torch::Tensor direction = model->NamedTensors().at("wte.weight")[*unto].detach().clone();
  std::unique_ptr<Sae> sae = HandSae(direction / direction.norm());
  ConceptLatent latent;
  latent.latent = 0;
  latent.max_activation = 1.0;
  const absl::StatusOr<SteeringScores> scores =
      SteerLatent(*model, *tokenizer, kLastHook, *sae, latent, R"(\bunto\b)", SmallConfig(), 3);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->rows.size(), 2u);
  EXPECT_EQ(scores->unsteered.continuations, 10);
  // Multiple 0: the latent is 0 already, so the spliced forward is x exactly.
  EXPECT_EQ(scores->rows[0].concept_rate, scores->unsteered.concept_rate);
  EXPECT_EQ(scores->rows[0].fluency_loss, scores->unsteered.fluency_loss);
  EXPECT_EQ(scores->rows[0].example, scores->unsteered.example);
  EXPECT_LT(scores->unsteered.concept_rate, 0.5);
  EXPECT_EQ(scores->rows[1].concept_rate, 1.0);
  EXPECT_TRUE(absl::StrContains(scores->rows[1].example, " unto")) << scores->rows[1].example;
  // " unto unto ..." is not what the clean model expects.
  EXPECT_GT(scores->rows[1].fluency_loss, scores->unsteered.fluency_loss + 1.0);

  SaeResult result;
  SteeringScores named = *scores;
  named.concept = "unto";
  named.WriteTo(&result);
  EXPECT_EQ(result.steering().points_size(), 2);
  EXPECT_EQ(result.metrics().at("steering_concept_rate"), 1.0);
}

TEST(SteeringTest, BadInputsAreClearErrors) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(kModelDir);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromDir(kModelDir);
  ASSERT_TRUE(tokenizer.ok());
  std::unique_ptr<Sae> sae = HandSae(torch::ones({128}));
  ConceptLatent latent;
  latent.latent = 2;  // the SAE has latents 0 and 1
  absl::StatusOr<SteeringScores> scores =
      SteerLatent(*model, *tokenizer, kLastHook, *sae, latent, "x", SmallConfig(), 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(),
                                "latent 2 is out of range: the SAE has 2 latents"))
      << scores.status();
  latent.latent = 0;
  scores = SteerLatent(*model, *tokenizer, kLastHook, *sae, latent, "(unclosed", SmallConfig(), 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(), "is not a valid RE2")) << scores.status();
  scores = SteerLatent(*model, *tokenizer, "blocks.9.hook_resid_post", *sae, latent, "x",
                       SmallConfig(), 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_TRUE(absl::StrContains(scores.status().message(), "blocks.9.hook_resid_post"))
      << scores.status();
  std::unique_ptr<Sae> narrow = HandSae(torch::ones({64}));
  scores = SteerLatent(*model, *tokenizer, kLastHook, *narrow, latent, "x", SmallConfig(), 1);
  ASSERT_FALSE(scores.ok());
  EXPECT_EQ(scores.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(BuiltinConceptTexts("klingon", *tokenizer, 64, 4).ok());
}

// The finder on real texts: a latent that fires exactly on " unto" tokens
// (its encoder reads the token's own embedding at the model's input) is
// the scripture latent against modern English.
TEST(SteeringTest, FinderPicksTheLatentThatFiresOnScripture) {
  absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(kModelDir);
  ASSERT_TRUE(model.ok());
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromDir(kModelDir);
  ASSERT_TRUE(tokenizer.ok());
  absl::StatusOr<ConceptTexts> texts = BuiltinConceptTexts("scripture", *tokenizer, 32, 128);
  ASSERT_TRUE(texts.ok()) << texts.status();
  EXPECT_EQ(texts->concept_contexts.size(0), 128);
  EXPECT_EQ(texts->contrast_contexts.size(0), 128);
  // hook_resid_pre of block 0 is wte[token] + wpe[position]; latent 1 reads
  // it along wte[" unto"] with a threshold between the largest score of any
  // other token and the smallest of " unto" in these contexts, so it fires
  // exactly on " unto".
  const std::optional<int32_t> unto = tokenizer->TokenId(" unto");
  ASSERT_TRUE(unto.has_value());
  const torch::Tensor e = model->NamedTensors().at("wte.weight")[*unto].detach();
  constexpr char kHook[] = "blocks.0.hook_resid_pre";
  const torch::Tensor both = torch::cat({texts->concept_contexts, texts->contrast_contexts});
  auto cache = model->RunWithCache(both, {kHook});
  ASSERT_TRUE(cache.ok());
  const torch::Tensor score = torch::matmul(cache->at(kHook).slice(1, 1), e);  // [N, L - 1]
  const torch::Tensor is_unto = both.slice(1, 1) == *unto;
  const double lowest_unto = score.index({is_unto}).min().item<double>();
  const double highest_other = score.index({is_unto.logical_not()}).max().item<double>();
  ASSERT_LT(highest_other, lowest_unto) << "wte[unto] does not separate the token here";
  std::unique_ptr<Sae> sae = PlantableReluSae(128, 3, 1);
  {
    torch::NoGradGuard no_grad;
    sae->W_enc.zero_();
    // Latent 0: fires on every token (a dense latent); latent 2: never.
    sae->b_enc[0] = 1.0;
    sae->W_enc.select(1, 1).copy_(e);
    sae->b_enc[1] = -0.5 * (lowest_unto + highest_other);
    sae->b_enc[2] = -1.0;
  }
  const absl::StatusOr<ConceptLatent> found =
      FindConceptLatent(*model, "blocks.0.hook_resid_pre", *sae, *texts);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->latent, 1);
  // Its firing rates are the shares of " unto" tokens, counted here.
  const double concept_share =
      (texts->concept_contexts.slice(1, 1) == *unto).to(torch::kFloat64).mean().item<double>();
  const double contrast_share =
      (texts->contrast_contexts.slice(1, 1) == *unto).to(torch::kFloat64).mean().item<double>();
  EXPECT_GT(concept_share, 2 * contrast_share);
  EXPECT_NEAR(found->concept_rate, concept_share, 1e-12);
  EXPECT_NEAR(found->contrast_rate, contrast_share, 1e-12);
}

}  // namespace
}  // namespace saelab
