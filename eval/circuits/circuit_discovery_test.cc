#include "eval/circuits/circuit_discovery.h"

#include <torch/types.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "eval/internal/test_models.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

class CircuitDiscoveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    model_ = ReferenceModel();
    tokenizer_ = ReferenceTokenizer();
    for (const char* hook : {"blocks.1.hook_mlp_out", "blocks.3.hook_resid_post"}) {
      saes_.push_back(RandomReluSae(128, 64, saes_.size() + 1));
      sites_.push_back({hook, saes_.back().get()});
    }
    config_.set_ig_steps(4);
    config_.set_patching_check_nodes(24);
    config_.set_graph_nodes(6);
    task_ = *BuiltinCircuitTask("kjv_thou");
    task_.set_max_pairs(24);
  }
  std::optional<Gpt2Model> model_;
  std::optional<BpeTokenizer> tokenizer_;
  std::vector<std::unique_ptr<Sae>> saes_;
  std::vector<CircuitSite> sites_;
  CircuitEvalConfig config_;
  CircuitTaskConfig task_;
};

TEST_F(CircuitDiscoveryTest, CurveAndCircuitFollowTheRanking) {
  absl::StatusOr<CircuitResult> circuit =
      DiscoverCircuit(config_, task_, *model_, *tokenizer_, sites_, {"a", "b"}, 7);
  ASSERT_TRUE(circuit.ok()) << circuit.status();
  EXPECT_EQ(circuit->discovery_pairs(), 24);
  EXPECT_GT(circuit->evaluation_pairs(), 0);
  // Default sizes: half octaves, then every node with an effect.
  ASSERT_GE(circuit->curve_size(), 2);
  EXPECT_EQ(circuit->curve(0).size(), 1);
  EXPECT_EQ(circuit->curve(circuit->curve_size() - 1).size(), circuit->nonzero_nodes());
  // The reported circuit is the first size reaching the target.
  for (const CircuitCurvePoint& point : circuit->curve()) {
    if (point.size() < circuit->circuit_size()) EXPECT_LT(point.faithfulness(), 0.8);
    if (point.size() == circuit->circuit_size()) {
      EXPECT_EQ(point.faithfulness(), circuit->circuit_faithfulness());
    }
  }
  // Nodes come by |IG effect|, and carry both estimates and the exact one.
  ASSERT_GT(circuit->nodes_size(), 0);
  ASSERT_LE(circuit->nodes_size(), 6);
  for (int i = 0; i < circuit->nodes_size(); ++i) {
    const CircuitNode& node = circuit->nodes(i);
    EXPECT_EQ(node.effect(), node.ig_effect());
    if (i > 0) EXPECT_GE(std::abs(circuit->nodes(i - 1).effect()), std::abs(node.effect()));
  }
  // Edges only go up the model, between drawn nodes.
  for (const CircuitEdge& edge : circuit->edges()) {
    ASSERT_LT(edge.upstream(), circuit->nodes_size());
    ASSERT_LT(edge.downstream(), circuit->nodes_size());
    EXPECT_EQ(circuit->nodes(edge.upstream()).site(), "blocks.1.hook_mlp_out");
    EXPECT_EQ(circuit->nodes(edge.downstream()).site(), "blocks.3.hook_resid_post");
  }
  EXPECT_EQ(circuit->sampled_check().nodes(), 24);
  EXPECT_EQ(circuit->site_saes(1), "b");
}

TEST_F(CircuitDiscoveryTest, BadConfigsAreErrors) {
  CircuitEvalConfig config = config_;
  config.set_method("shap");
  EXPECT_THAT(DiscoverCircuit(config, task_, *model_, *tokenizer_, sites_, {}, 7).status().message(),
              ::testing::HasSubstr("\"shap\" is neither"));
  config = config_;
  config.add_circuit_sizes(0);
  EXPECT_EQ(DiscoverCircuit(config, task_, *model_, *tokenizer_, sites_, {}, 7).status().code(),
            absl::StatusCode::kInvalidArgument);
  config = config_;
  config.set_target_faithfulness(1.5);
  EXPECT_EQ(DiscoverCircuit(config, task_, *model_, *tokenizer_, sites_, {}, 7).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CircuitGraphTest, DrawsEveryNodeAndEscapesNames) {
  CircuitResult circuit;
  circuit.set_task("<task>");
  circuit.add_sites("blocks.0.hook_mlp_out");
  circuit.add_sites("blocks.1.hook_resid_post");
  const struct { const char* site; int64_t latent; double effect; } nodes[] = {
      {"blocks.0.hook_mlp_out", 3, 1.0},
      {"blocks.1.hook_resid_post", -1, -0.5},
      {"blocks.1.hook_resid_post", 9, 0.25}};
  for (const auto& n : nodes) {
    CircuitNode* node = circuit.add_nodes();
    node->set_site(n.site);
    node->set_latent(n.latent);
    node->set_effect(n.effect);
  }
  for (const auto& [up, down, effect] : {std::tuple{0, 1, 1.0}, std::tuple{0, 2, 0.001}}) {
    CircuitEdge* edge = circuit.add_edges();
    edge->set_upstream(up);
    edge->set_downstream(down);
    edge->set_effect(effect);
  }
  const std::string html = RenderCircuitGraph(circuit);
  EXPECT_THAT(html, ::testing::Not(::testing::HasSubstr("<task>")));
  EXPECT_THAT(html, ::testing::HasSubstr("&lt;task&gt;"));
  size_t circles = 0, lines = 0;
  for (size_t at = html.find("<circle"); at != std::string::npos; at = html.find("<circle", at + 1)) ++circles;
  for (size_t at = html.find("<title>edge"); at != std::string::npos; at = html.find("<title>edge", at + 1)) ++lines;
  EXPECT_EQ(circles, 3u);
  EXPECT_EQ(lines, 1u);  // the edge under 2% of the largest is left out
  EXPECT_THAT(html, ::testing::HasSubstr("class=\"error\""));
}

}  // namespace
}  // namespace saelab
