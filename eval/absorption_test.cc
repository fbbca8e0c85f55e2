#include "eval/absorption.h"

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/match.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

AbsorptionEvalConfig Config() { return AbsorptionEvalConfig(); }

// SAEBench's per-word rule on hand values (thresholds: cosine 0.1 for the
// fraction, 0.025 for full absorption, projection share 0.4, 3 absorbers).
TEST(AbsorptionTest, WordAbsorptionMatchesHandValues) {
  // Latents: 0 main, 1 and 2 candidate absorbers, 3 misaligned.
  const torch::Tensor cos = torch::tensor({0.9, 0.5, 0.05, -0.3}, torch::kFloat64);
  // The main latent carries the whole projection: nothing absorbed.
  WordVerdict v = WordAbsorption(torch::tensor({2.0, 0.0, 0.0, 0.0}, torch::kFloat64),
                                 torch::tensor({2.0, 0.0, 0.0, 0.0}, torch::kFloat64), cos, 2.0,
                                 {0}, Config());
  EXPECT_EQ(v.absorption_fraction, 0.0);
  EXPECT_FALSE(v.full_absorption);
  // Main silent, latent 1 carries 1.8 of 2.0 (share 0.9 >= 0.4): full.
  v = WordAbsorption(torch::tensor({0.0, 3.6, 0.0, 0.0}, torch::kFloat64),
                     torch::tensor({0.0, 1.8, 0.0, 0.0}, torch::kFloat64), cos, 2.0, {0}, Config());
  EXPECT_EQ(v.absorption_fraction, 1.0);
  EXPECT_TRUE(v.full_absorption);
  // Main 1.0; absorbers 0.6 (aligned) and 0.5 (cos 0.05 < 0.1, excluded):
  // share 0.3 < 0.4, so no absorption.
  v = WordAbsorption(torch::tensor({1.0, 1.2, 10.0, 0.0}, torch::kFloat64),
                     torch::tensor({1.0, 0.6, 0.5, 0.0}, torch::kFloat64), cos, 2.0, {0}, Config());
  EXPECT_EQ(v.absorption_fraction, 0.0);
  EXPECT_FALSE(v.full_absorption);
  // Main 0.5, absorber 1.0 (share 0.5): absorbed = min(1.0, 2.0 - 0.5) = 1.0,
  // fraction 1.0 / (1.0 + 0.5); the main latent fired, so not full.
  v = WordAbsorption(torch::tensor({0.5, 2.0, 0.0, 0.0}, torch::kFloat64),
                     torch::tensor({0.5, 1.0, 0.0, 0.0}, torch::kFloat64), cos, 2.0, {0}, Config());
  EXPECT_NEAR(v.absorption_fraction, 2.0 / 3.0, 1e-12);
  EXPECT_FALSE(v.full_absorption);
  // Main silent but the top projector is misaligned (cos -0.3): the fraction
  // counts the aligned absorber, full absorption does not.
  v = WordAbsorption(torch::tensor({0.0, 1.0, 0.0, 5.0}, torch::kFloat64),
                     torch::tensor({0.0, 1.0, 0.0, 1.5}, torch::kFloat64), cos, 2.0, {0}, Config());
  EXPECT_EQ(v.absorption_fraction, 1.0);
  EXPECT_FALSE(v.full_absorption);
}

// A planted absorption: words of letter L have activation e_L (+ noise);
// latent L reads e_L. Four test words of letter 'a' instead carry e_a + e_w
// with a word-specific direction e_w that silences latent 0 (its encoder is
// e_a - 2 e_w) and fires a latent that decodes to (e_a + e_w) / sqrt 2.
TEST(AbsorptionTest, FindsPlantedAbsorption) {
  constexpr int64_t kLetters = 4, kAbsorbed = 4, kDim = kLetters + kAbsorbed;
  constexpr int64_t kLatents = kLetters + kAbsorbed;
  torch::manual_seed(5);
  FirstLetterData data;
  std::vector<int64_t> letters;
  std::vector<torch::Tensor> rows;
  std::vector<bool> test;
  for (int64_t i = 0; i < 200; ++i) {
    const int64_t letter = i % kLetters;
    torch::Tensor x = torch::zeros({kDim});
    x[letter] = 1.0;
    rows.push_back(x + 0.05 * torch::randn({kDim}).abs());
    letters.push_back(letter);
    test.push_back(i >= 140);
    data.words.push_back("w" + std::to_string(i));
  }
  for (int64_t j = 0; j < kAbsorbed; ++j) {  // absorbed 'a' words, test only
    torch::Tensor x = torch::zeros({kDim});
    x[0] = 1.0;
    x[kLetters + j] = 1.0;
    rows.push_back(x);
    letters.push_back(0);
    test.push_back(true);
    data.words.push_back("absorbed" + std::to_string(j));
  }
  data.rows = torch::stack(rows);
  data.letters = torch::tensor(letters, torch::kLong);
  data.is_test = torch::zeros({static_cast<int64_t>(test.size())}, torch::kBool);
  for (size_t i = 0; i < test.size(); ++i) data.is_test[i] = static_cast<bool>(test[i]);

  std::unique_ptr<Sae> sae = PlantableReluSae(kDim, kLatents, 1);
  {
    torch::NoGradGuard no_grad;
    sae->W_enc.zero_();
    sae->W_dec.zero_();
    for (int64_t l = 0; l < kLetters; ++l) {
      sae->W_enc[l][l] = 1.0;
      sae->W_dec[l][l] = 1.0;
    }
    for (int64_t j = 0; j < kAbsorbed; ++j) {
      sae->W_enc[kLetters + j][0] = -2.0;
      sae->W_enc[kLetters + j][kLetters + j] = 1.0;
      sae->W_dec[kLetters + j][0] = std::sqrt(0.5);
      sae->W_dec[kLetters + j][kLetters + j] = std::sqrt(0.5);
    }
  }
  AbsorptionEvalConfig eval = Config();
  eval.set_min_words_per_letter(5);
  const absl::StatusOr<AbsorptionScores> scores = EvaluateAbsorption(*sae, data, eval);
  ASSERT_TRUE(scores.ok()) << scores.status();
  ASSERT_EQ(scores->letters.size(), 4u);
  const LetterScores& a = scores->letters[0];
  EXPECT_EQ(a.letter, 'a');
  EXPECT_EQ(a.main_latents, std::vector<int64_t>({0}));
  // 15 clean test 'a' words and the 4 absorbed ones, if the probe sees them all.
  ASSERT_EQ(a.probe_true_positives, 19);
  EXPECT_NEAR(a.full_absorption_rate, 4.0 / 19.0, 1e-12);
  EXPECT_NEAR(a.absorption_fraction, 4.0 / 19.0, 1e-12);
  for (size_t l = 1; l < 4; ++l) {
    EXPECT_EQ(scores->letters[l].full_absorption_rate, 0.0);
    EXPECT_EQ(scores->letters[l].absorption_fraction, 0.0);
  }
  EXPECT_EQ(scores->letters_scored, 4);
  EXPECT_NEAR(scores->mean_full_absorption_rate, 4.0 / 19.0 / 4.0, 1e-12);
  // A letter needs min_true_positives recognised words to count.
  eval.set_min_true_positives(16);
  const absl::StatusOr<AbsorptionScores> strict = EvaluateAbsorption(*sae, data, eval);
  ASSERT_TRUE(strict.ok());
  EXPECT_EQ(strict->letters_scored, 1);  // only 'a' (19); b, c, d have 15 each
  EXPECT_NEAR(strict->mean_full_absorption_rate, 4.0 / 19.0, 1e-12);
  SaeResult result;
  scores->WriteTo(&result);
  EXPECT_EQ(result.absorption().letters_size(), 4);
  EXPECT_DOUBLE_EQ(result.metrics().at("full_absorption_rate"), scores->mean_full_absorption_rate);

  // The wrong width is a clear error.
  FirstLetterData wide = data;
  wide.rows = torch::zeros({data.rows.size(0), kDim + 2});
  const absl::StatusOr<AbsorptionScores> bad = EvaluateAbsorption(*sae, wide, eval);
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StrContains(bad.status().message(), "10 wide but the SAE's d_in is 8"))
      << bad.status();
}

}  // namespace
}  // namespace saelab
