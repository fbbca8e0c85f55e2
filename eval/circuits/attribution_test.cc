#include "eval/circuits/attribution.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <cmath>
#include <memory>
#include <vector>

#include "eval/internal/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr int64_t kVocab = 11, kWidth = 6, kSeq = 5, kPairs = 7, kLatents = 10;

// Random pairs: BOS (token 0) first, the patch prompt differs in its last
// token, distinct answers.
ContrastivePairs RandomPairs(int64_t vocab, int64_t seq, uint64_t seed) {
  torch::manual_seed(seed);
  ContrastivePairs pairs;
  pairs.clean = torch::randint(1, vocab, {kPairs, seq}, torch::kInt64);
  pairs.clean.select(1, 0).fill_(0);
  pairs.patch = pairs.clean.clone();
  pairs.patch.select(1, seq - 1).copy_((pairs.clean.select(1, seq - 1) % (vocab - 1)) + 1);
  pairs.clean_answer = torch::randint(0, vocab / 2, {kPairs}, torch::kInt64);
  pairs.patch_answer = torch::randint(vocab / 2, vocab, {kPairs}, torch::kInt64);
  return pairs;
}

// A model linear in every activation: h = E[tokens] -> hook "a" -> h A ->
// hook "b" -> logits h U. With the error terms kept, m is linear in the
// activation at either site, so attribution patching is exact there.
struct LinearModel {
  torch::Tensor embedding, mixing, unembedding;
  LinearModel() {
    torch::manual_seed(11);
    embedding = torch::randn({kVocab, kWidth});
    mixing = torch::randn({kWidth, kWidth}) / std::sqrt(kWidth);
    unembedding = torch::randn({kWidth, kVocab});
  }
  HookedForward Forward() const {
    return [this](const torch::Tensor& tokens, const HookSet& hooks) -> absl::StatusOr<torch::Tensor> {
      const auto apply = [&](const char* name, torch::Tensor x) {
        auto it = hooks.hooks.find(name);
        return it == hooks.hooks.end() ? x : it->second(x);
      };
      torch::Tensor h = apply("a", embedding.index({tokens}));
      h = apply("b", torch::matmul(h, mixing));
      return torch::matmul(h, unembedding);
    };
  }
};

// Every latent of `sae` fires on every input (a large encoder bias), so the
// SAE's latents and error term are linear in its input.
void MakeLinear(Sae& sae) {
  torch::NoGradGuard no_grad;
  sae.b_enc.fill_(100.0);
}

std::vector<NodeId> AllNodes(const CircuitAnalysis& analysis) {
  std::vector<NodeId> nodes;
  for (int s = 0; s < static_cast<int>(analysis.sites().size()); ++s) {
    nodes.push_back({s, NodeId::kErrorNode});
    for (int64_t i = 0; i < analysis.sites()[s].sae->n_latents(); ++i) nodes.push_back({s, i});
  }
  return nodes;
}

class LinearModelTest : public ::testing::Test {
 protected:
  LinearModelTest()
      : sae_a_(RandomReluSae(kWidth, kLatents, 1)),
        sae_b_(RandomReluSae(kWidth, kLatents, 2)),
        pairs_(RandomPairs(kVocab, kSeq, 5)) {}
  absl::StatusOr<CircuitAnalysis> Analyze() {
    return CircuitAnalysis::Create(model_.Forward(), {{"a", sae_a_.get()}, {"b", sae_b_.get()}},
                                   pairs_);
  }
  LinearModel model_;
  std::unique_ptr<Sae> sae_a_, sae_b_;
  ContrastivePairs pairs_;
};

// Where m is linear in a site's activation, attribution patching and
// integrated gradients equal exact activation patching, node by node.
TEST_F(LinearModelTest, EstimatesEqualActivationPatching) {
  absl::StatusOr<CircuitAnalysis> analysis = Analyze();
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  absl::StatusOr<NodeEffects> atp = analysis->AttributionPatching();
  ASSERT_TRUE(atp.ok()) << atp.status();
  absl::StatusOr<NodeEffects> ig = analysis->IntegratedGradients(3);
  ASSERT_TRUE(ig.ok()) << ig.status();
  int nonzero = 0;
  for (const NodeId& node : AllNodes(*analysis)) {
    absl::StatusOr<double> exact = analysis->ExactEffect(node);
    ASSERT_TRUE(exact.ok()) << exact.status();
    const double tolerance = 1e-4 * (1 + std::abs(*exact));
    EXPECT_NEAR(atp->Of(node), *exact, tolerance) << node.site << " " << node.latent;
    EXPECT_NEAR(ig->Of(node), *exact, tolerance) << node.site << " " << node.latent;
    nonzero += std::abs(*exact) > 1e-3;
  }
  EXPECT_GT(nonzero, kLatents);  // the comparison is not between zeros
}

// Mean ablation against the same computation written out without hooks.
TEST_F(LinearModelTest, MeanAblationMatchesHandComputation) {
  absl::StatusOr<CircuitAnalysis> analysis = Analyze();
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  const std::vector<NodeId> keep = {{0, 1}, {0, 4}, {0, NodeId::kErrorNode}, {1, 2}, {1, 7}};
  absl::StatusOr<double> metric = analysis->MetricWithNodes(analysis->MaskOf(keep));
  ASSERT_TRUE(metric.ok()) << metric.status();

  torch::NoGradGuard no_grad;
  using torch::indexing::Slice;
  // Per site: clean activations after BOS, their latents, error, means.
  const auto site = [](Sae& sae, const torch::Tensor& activation, const std::vector<int64_t>& kept,
                       bool keep_error, const torch::Tensor& mean_f, const torch::Tensor& mean_e) {
    torch::Tensor rows = activation.index({Slice(), Slice(1)}).reshape({-1, kWidth});
    torch::Tensor f = sae.Encode(rows);
    torch::Tensor e = rows - sae.Decode(f);
    torch::Tensor f_new = mean_f.repeat({kPairs, 1});
    for (int64_t i : kept) f_new.select(1, i).copy_(f.select(1, i));
    torch::Tensor e_new = keep_error ? e : mean_e.repeat({kPairs, 1});
    torch::Tensor out = activation.clone();
    out.index_put_({Slice(), Slice(1)}, (sae.Decode(f_new) + e_new).reshape({kPairs, kSeq - 1, kWidth}));
    return out;
  };
  const auto means = [&](Sae& sae, const torch::Tensor& activation) {
    torch::Tensor rows = activation.index({Slice(), Slice(1)});
    torch::Tensor f = sae.Encode(rows.reshape({-1, kWidth}));
    torch::Tensor e = rows.reshape({-1, kWidth}) - sae.Decode(f);
    return std::make_pair(f.reshape({kPairs, kSeq - 1, -1}).mean(0),
                          e.reshape({kPairs, kSeq - 1, -1}).mean(0));
  };
  const torch::Tensor a_clean = model_.embedding.index({pairs_.clean});
  const torch::Tensor b_clean = torch::matmul(a_clean, model_.mixing);
  auto [fa, ea] = means(*sae_a_, a_clean);
  auto [fb, eb] = means(*sae_b_, b_clean);
  const torch::Tensor a = site(*sae_a_, a_clean, {1, 4}, true, fa, ea);
  const torch::Tensor b = site(*sae_b_, torch::matmul(a, model_.mixing), {2, 7}, false, fb, eb);
  const torch::Tensor logits = torch::matmul(b, model_.unembedding);
  const double expected = LogitDifference(logits, pairs_).mean().item<double>();
  EXPECT_NEAR(*metric, expected, 1e-4 * (1 + std::abs(expected)));

  // Keeping every node is the clean model; keeping none is m(empty).
  absl::StatusOr<double> full = analysis->MetricWithNodes(analysis->MaskOf({}, /*complement=*/true));
  ASSERT_TRUE(full.ok());
  EXPECT_NEAR(*full, analysis->metric_clean(), 1e-4 * (1 + std::abs(*full)));
  absl::StatusOr<double> empty = analysis->MetricEmpty();
  ASSERT_TRUE(empty.ok());
  EXPECT_GT(std::abs(*empty - analysis->metric_clean()), 1e-2);
}

// With site "a" the only way into site "b", the edges into a node of b from
// every node of a add up to that node's own effect, where b's SAE is linear.
TEST_F(LinearModelTest, EdgesIntoANodeAddUpToItsEffect) {
  MakeLinear(*sae_b_);
  absl::StatusOr<CircuitAnalysis> analysis = Analyze();
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  absl::StatusOr<NodeEffects> atp = analysis->AttributionPatching();
  ASSERT_TRUE(atp.ok());
  const std::vector<NodeId> nodes = AllNodes(*analysis);
  absl::StatusOr<std::vector<EdgeEffect>> edges = analysis->EdgeEffects(nodes);
  ASSERT_TRUE(edges.ok()) << edges.status();
  EXPECT_EQ(edges->size(), static_cast<size_t>((kLatents + 1) * (kLatents + 1)));
  for (const NodeId& down : nodes) {
    if (down.site != 1) continue;
    double sum = 0;
    for (const EdgeEffect& edge : *edges) {
      EXPECT_EQ(edge.upstream.site, 0);
      if (edge.downstream == down) sum += edge.effect;
    }
    EXPECT_NEAR(sum, atp->Of(down), 1e-4 * (1 + std::abs(sum))) << down.latent;
  }
}

TEST_F(LinearModelTest, BadSitesAndNodesAreErrors) {
  absl::StatusOr<CircuitAnalysis> missing =
      CircuitAnalysis::Create(model_.Forward(), {{"c", sae_a_.get()}}, pairs_);
  EXPECT_THAT(missing.status().message(), ::testing::HasSubstr("never reached circuit site c"));
  absl::StatusOr<CircuitAnalysis> twice = CircuitAnalysis::Create(
      model_.Forward(), {{"a", sae_a_.get()}, {"a", sae_b_.get()}}, pairs_);
  EXPECT_THAT(twice.status().message(), ::testing::HasSubstr("two circuit sites at a"));
  std::unique_ptr<Sae> narrow = RandomReluSae(kWidth - 1, kLatents, 3);
  absl::StatusOr<CircuitAnalysis> wide =
      CircuitAnalysis::Create(model_.Forward(), {{"a", narrow.get()}}, pairs_);
  EXPECT_THAT(wide.status().message(), ::testing::HasSubstr("is 6 wide, its SAE reads 5"));
  absl::StatusOr<CircuitAnalysis> analysis = Analyze();
  ASSERT_TRUE(analysis.ok());
  EXPECT_EQ(analysis->ExactEffect({2, 0}).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(analysis->ExactEffect({0, kLatents}).status().code(),
            absl::StatusCode::kInvalidArgument);
  NodeMask mask = analysis->EmptyMask();
  mask.latent[1] = torch::zeros({3}, torch::kBool);
  EXPECT_EQ(analysis->MetricWithNodes(mask).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(analysis->IntegratedGradients(0).status().code(), absl::StatusCode::kInvalidArgument);
}

// On a real (nonlinear) GPT-2, integrated gradients keeps its completeness
// axiom: a site's node effects add up to the exact effect of patching the
// whole site, up to the midpoint rule's error.
TEST(GptCircuitTest, IntegratedGradientsAddUpToTheSitePatch) {
  const Gpt2Model model = TinyGpt2(kVocab, 16, 16, 3);
  std::vector<std::unique_ptr<Sae>> saes;
  std::vector<CircuitSite> sites;
  for (const char* hook :
       {"blocks.0.hook_attn_out", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"}) {
    saes.push_back(RandomReluSae(16, 24, saes.size() + 7));
    sites.push_back({hook, saes.back().get()});
  }
  absl::StatusOr<CircuitAnalysis> analysis =
      CircuitAnalysis::Create(ForwardOf(model), sites, RandomPairs(kVocab, kSeq, 9));
  ASSERT_TRUE(analysis.ok()) << analysis.status();
  absl::StatusOr<NodeEffects> ig = analysis->IntegratedGradients(32);
  ASSERT_TRUE(ig.ok()) << ig.status();
  absl::StatusOr<NodeEffects> atp = analysis->AttributionPatching();
  ASSERT_TRUE(atp.ok()) << atp.status();
  for (int s = 0; s < 3; ++s) {
    absl::StatusOr<double> exact = analysis->ExactSiteEffect(s);
    ASSERT_TRUE(exact.ok());
    const double ig_sum = ig->latent[s].sum().item<double>() + ig->error[s];
    const double atp_sum = atp->latent[s].sum().item<double>() + atp->error[s];
    EXPECT_NEAR(ig_sum, *exact, 2e-3 * (1 + std::abs(*exact))) << sites[s].hook;
    // Attribution patching is first order only: it misses by more.
    EXPECT_GT(std::abs(atp_sum - *exact), std::abs(ig_sum - *exact)) << sites[s].hook;
  }
}

}  // namespace
}  // namespace saelab
