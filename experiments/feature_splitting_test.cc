#include "experiments/feature_splitting.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/text/bpe_tokenizer.h"
#include "gtest/gtest.h"
#include "sae/factory.h"

namespace saelab {
namespace {

constexpr int64_t kD = 8;
constexpr int64_t kContexts = 6, kLength = 9;  // BOS + 8 rows each

// Byte tokens only, so each token id decodes to one known character.
BpeTokenizer ByteTokenizer() {
  std::vector<std::string> tokens;
  for (uint8_t byte : Gpt2ByteTokenOrder()) tokens.push_back(std::string(1, static_cast<char>(byte)));
  tokens.push_back(std::string(BpeTokenizer::kEndOfText));
  return *BpeTokenizer::FromTokens(tokens, {});
}

torch::Tensor Unit(std::vector<double> v) {
  torch::Tensor t = torch::tensor(v, torch::kFloat32);
  return t / t.norm();
}

torch::Tensor Basis(int i, double extra = 0, int j = 0) {
  std::vector<double> v(kD, 0.0);
  v[i] = 1;
  v[j] += extra;
  return Unit(v);
}

// A ReLU SAE f = ReLU(x D^T + b) with decoder rows `rows` (tied encoder).
std::unique_ptr<Sae> HandSae(const std::string& name, const std::vector<torch::Tensor>& rows,
                             std::vector<float> bias = {}) {
  SaeConfig config;
  config.set_name(name);
  config.set_n_latents(static_cast<int64_t>(rows.size()));
  config.mutable_relu_l1();
  EXPECT_TRUE(ResolveSaeConfig(kD, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, kD, 1);
  torch::NoGradGuard no_grad;
  const torch::Tensor w = torch::stack(rows);
  sae->W_dec.copy_(w);
  sae->W_enc.copy_(w.t());
  if (!bias.empty()) sae->b_enc.copy_(torch::tensor(bias));
  return sae;
}

// Large latents 0, 1 lean off small latent 0 (cosine 1/sqrt(1.09)); 3, 4, 5
// off small latent 2 (1/sqrt(1.04)); 2 equals small latent 1 (a family of
// one); 6 matches nothing; 7 never fires.
TEST(FeatureSplittingTest, FamiliesCosinesCorrelationsAndContextsAgainstDirectComputation) {
  std::vector<SplittingSae> saes;
  SaeResult small_result, large_result;
  small_result.set_name("n4");
  large_result.set_name("n8");
  saes.push_back({HandSae("n8",
                          {Basis(0, 0.3, 4), Basis(0, -0.3, 4), Basis(1), Basis(2, 0.2, 5),
                           Basis(2, -0.2, 5), Basis(2, 0.2, 6), Basis(7), Basis(3)},
                          {0, 0, 0, 0, 0, 0, 0, -100}),
                  &large_result});
  saes.push_back({HandSae("n4", {Basis(0), Basis(1), Basis(2), Basis(3)}), &small_result});
  torch::manual_seed(5);
  const torch::Tensor rows = torch::randn({kContexts * (kLength - 1), kD});
  // Token (c, p) is the byte 'a' + (9c + p) % 26.
  const torch::Tensor contexts =
      (torch::arange(kContexts * kLength).remainder(26) + 'a').reshape({kContexts, kLength});
  const torch::Tensor ids = torch::tensor(std::vector<int64_t>(Gpt2ByteTokenOrder().begin(),
                                                               Gpt2ByteTokenOrder().end()));
  std::vector<int64_t> byte_to_id(256);
  for (int i = 0; i < 256; ++i) byte_to_id[Gpt2ByteTokenOrder()[i]] = i;
  torch::Tensor token_ids = contexts.clone();
  for (int64_t i = 0; i < token_ids.numel(); ++i) {
    token_ids.view(-1)[i] = byte_to_id[contexts.view(-1)[i].item<int64_t>()];
  }
  FeatureSplittingConfig config;
  config.set_top_contexts(2);
  config.set_window_before(2);
  config.set_window_after(1);
  FeatureSplittingResult out;
  ASSERT_TRUE(AnalyzeFeatureSplitting(config, saes, rows, token_ids, ByteTokenizer(), 3, &out).ok());

  ASSERT_EQ(out.pairs_size(), 1);
  const DictionaryPair& pair = out.pairs(0);
  EXPECT_EQ(pair.small(), "n4");
  EXPECT_EQ(pair.large(), "n8");
  const double a = 1 / std::sqrt(1.09), b = 1 / std::sqrt(1.04);
  EXPECT_NEAR(pair.mean_max_cosine(), (2 * a + 1 + 3 * b + 0) / 7, 1e-6);
  EXPECT_NEAR(pair.fraction_matched(), 6.0 / 7, 1e-12);
  EXPECT_EQ(pair.split_families(), 2);
  EXPECT_DOUBLE_EQ(pair.mean_family_size(), 2.5);
  ASSERT_EQ(pair.families_size(), 2);
  EXPECT_EQ(pair.families(0).parent().latent(), 2);  // the family of three first
  ASSERT_EQ(pair.families(0).children_size(), 3);
  EXPECT_EQ(pair.families(1).parent().latent(), 0);
  ASSERT_EQ(pair.families(1).children_size(), 2);

  // Pearson correlation of small latent 0 with large latent 1, by hand.
  const torch::Tensor fs = torch::relu(rows.select(1, 0)).to(torch::kFloat64);
  const torch::Tensor fl = torch::relu(rows.mv(Basis(0, -0.3, 4))).to(torch::kFloat64);
  const double corr = ((fs - fs.mean()) * (fl - fl.mean())).mean().item<double>() /
                      (fs.std(/*unbiased=*/false) * fl.std(/*unbiased=*/false)).item<double>();
  const FamilyMember& child = pair.families(1).children(1);
  EXPECT_EQ(child.latent(), 1);
  EXPECT_NEAR(child.correlation(), corr, 1e-6);
  EXPECT_NEAR(child.cosine(), a, 1e-6);
  EXPECT_NEAR(child.density(), (fl > 0).to(torch::kFloat64).mean().item<double>(), 1e-12);

  // The parent's top context: the row where x_0 is largest, its token marked.
  const int64_t row = rows.select(1, 0).argmax().item<int64_t>();
  const int64_t c = row / (kLength - 1), p = row % (kLength - 1) + 1;
  auto ch = [&](int64_t pos) { return std::string(1, static_cast<char>(contexts[c][pos].item<int64_t>())); };
  std::string expected;
  for (int64_t q = std::max<int64_t>(1, p - 2); q < p; ++q) expected += ch(q);
  expected += "[[" + ch(p) + "]]";
  if (p + 1 < kLength) expected += ch(p + 1);
  const FamilyMember& parent = pair.families(1).parent();
  ASSERT_GE(parent.top_contexts_size(), 1);
  EXPECT_EQ(parent.top_contexts(0), expected);
  EXPECT_FLOAT_EQ(parent.top_activations(0), rows[row][0].item<float>());

  // The map: the 4 small and 7 live large latents, the first family marked.
  const DecoderMap& map = out.map();
  ASSERT_EQ(map.x_size(), 11);
  ASSERT_EQ(map.y_size(), 11);
  int marked = 0;
  for (int i = 0; i < map.latent_size(); ++i) {
    const bool in_first = (map.sae_index(i) == 0 && map.latent(i) == 2) ||
                          (map.sae_index(i) == 1 && map.latent(i) >= 3 && map.latent(i) <= 5);
    EXPECT_EQ(map.family(i), in_first ? 0 : (map.sae_index(i) == 0 && map.latent(i) == 0) ||
                                                    (map.sae_index(i) == 1 && map.latent(i) <= 1)
                                                ? 1
                                                : -1);
    marked += in_first;
  }
  EXPECT_EQ(marked, 4);
  // The larger SAE carries the pair's metrics.
  EXPECT_EQ(large_result.metrics().at("split_families"), 2);
  // Chance level: the mean over 7 random unit vectors in R^8 of their
  // largest coordinate along e0..e3 (about 0.45 in expectation).
  const double chance = large_result.metrics().at("split_random_mean_max_cosine");
  EXPECT_GT(chance, 0.25);
  EXPECT_LT(chance, 0.7);
}

TEST(FeatureSplittingTest, OneDictionarySizeIsRefused) {
  std::vector<SplittingSae> saes;
  SaeResult r1, r2;
  saes.push_back({HandSae("a", {Basis(0), Basis(1)}), &r1});
  saes.push_back({HandSae("b", {Basis(2), Basis(3)}), &r2});
  FeatureSplittingResult out;
  absl::Status status = AnalyzeFeatureSplitting({}, saes, torch::randn({16, kD}),
                                                torch::zeros({2, 9}, torch::kInt64),
                                                ByteTokenizer(), 0, &out);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
