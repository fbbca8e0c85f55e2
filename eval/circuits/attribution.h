// Node and edge attribution over SAE latents and SAE error terms (Marks et
// al. 2024, "Sparse Feature Circuits"): with an SAE at each hooked site, the
// activation there is x = Decode(f) + e, so the model's computation runs
// through nodes: every latent f_i and the error term e of every site. For a
// metric m (the logit difference of a contrastive pair) the indirect effect
// of a node is how much m moves when that node takes its value on the
// patch prompt instead of the clean one.
//
//   std::vector<CircuitSite> sites = {{"blocks.0.hook_attn_out", &sae0}, ...};
//   ASSIGN_OR_RETURN(CircuitAnalysis analysis,
//                    CircuitAnalysis::Create(ForwardOf(model), sites, pairs));
//   ASSIGN_OR_RETURN(NodeEffects ig, analysis.IntegratedGradients(10));
//   ASSIGN_OR_RETURN(double exact, analysis.ExactEffect({/*site=*/2, /*latent=*/17}));
//   ASSIGN_OR_RETURN(double m_circuit, analysis.MetricWithNodes(keep));   // rest mean-ablated
//
// Estimates (effects are means over pairs, summed over positions):
//   attribution patching  IE ~ grad_node m(clean) . (node_patch - node_clean),
//                         one backward pass for every node;
//   integrated gradients  the gradient averaged over `steps` midpoints of the
//                         straight path from the clean to the patch activation
//                         of the node's site (the whole site moves, as in the
//                         paper), one backward pass per step and site;
//   exact                 activation patching: one forward pass with the node
//                         alone set to its patch value.
// The gradient at a site is the model's: with the error term kept, splicing
// the SAEs leaves every activation as it is, so the gradient of m with
// respect to a latent is Decode's vector-Jacobian product of the gradient
// at the site's activation (the paper's straight-through backward).
//
// BOS (position 0) is no node: every prompt starts with the same BOS, the
// SAEs never saw it in training, and it passes through unchanged, as in
// eval/splice.h.
#ifndef SAELAB_EVAL_CIRCUITS_ATTRIBUTION_H_
#define SAELAB_EVAL_CIRCUITS_ATTRIBUTION_H_

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "eval/circuits/contrastive_pairs.h"
#include "sae/sae.h"

namespace saelab {

// One hooked site of a circuit: a hook point and the SAE read there (not
// owned; it outlives the analysis).
struct CircuitSite {
  std::string hook;
  Sae* sae = nullptr;
};

// A forward pass with hooks: tokens [batch, seq] -> logits [batch, seq, vocab].
using HookedForward =
    std::function<absl::StatusOr<torch::Tensor>(const torch::Tensor& tokens, const HookSet& hooks)>;

// model.Forward as a HookedForward (the model must outlive it).
HookedForward ForwardOf(const Gpt2Model& model);

// The metric of every pair from what the forward returned: [pairs].
// The default is LogitDifference (contrastive_pairs.h).
using CircuitMetric =
    std::function<torch::Tensor(const torch::Tensor& output, const ContrastivePairs& pairs)>;

// A node: latent `latent` of site `site`, or the site's error term when
// latent is kErrorNode.
struct NodeId {
  static constexpr int64_t kErrorNode = -1;
  int site = 0;
  int64_t latent = kErrorNode;
  bool is_error() const { return latent == kErrorNode; }
  bool operator==(const NodeId& other) const {
    return site == other.site && latent == other.latent;
  }
};

// Effects of every node, means over pairs of the sum over positions.
struct NodeEffects {
  // Per site: [n_latents] float64.
  std::vector<torch::Tensor> latent;
  // Per site: the error term's effect.
  std::vector<double> error;
  double Of(const NodeId& node) const;
};

// Which nodes a circuit keeps: per site, [n_latents] bool and the error term.
struct NodeMask {
  std::vector<torch::Tensor> latent;
  std::vector<bool> error;
};

// The effect of the upstream node on m through the downstream one, along
// direct paths only (through no other site): grad_down m . d down / d up .
// (up_patch - up_clean), mean over pairs.
struct EdgeEffect {
  NodeId upstream, downstream;
  double effect = 0;
};

class CircuitAnalysis {
 public:
  // Runs the clean and the patch prompts once, keeping each site's
  // activation, latents and error term. InvalidArgument for no sites, a
  // null SAE, two sites at one hook, an SAE whose d_in differs from the
  // site's width, a hook the forward never reaches, or pairs shorter than
  // two tokens; the forward's errors as they come.
  static absl::StatusOr<CircuitAnalysis> Create(HookedForward forward,
                                                std::vector<CircuitSite> sites,
                                                const ContrastivePairs& pairs,
                                                CircuitMetric metric = {});

  const std::vector<CircuitSite>& sites() const { return sites_; }
  const ContrastivePairs& pairs() const { return pairs_; }
  // m on the clean prompts, mean over pairs (the full model, "m(M)").
  double metric_clean() const { return metric_clean_; }
  // m on the clean prompts with every node mean-ablated ("m(empty)"):
  // MetricWithNodes of the empty mask.
  absl::StatusOr<double> MetricEmpty();

  // Attribution patching: one forward and one backward pass.
  absl::StatusOr<NodeEffects> AttributionPatching();
  // Integrated gradients with `steps` >= 1 midpoints per site.
  absl::StatusOr<NodeEffects> IntegratedGradients(int steps);
  // Exact activation patching of one node (all its positions at once).
  absl::StatusOr<double> ExactEffect(const NodeId& node);
  // Exact activation patching of a whole site (every latent and the error
  // term: the site's activation set to the patch prompt's).
  absl::StatusOr<double> ExactSiteEffect(int site);

  // m on the clean prompts, mean over pairs, with every node outside `keep`
  // set to its mean over the clean prompts at each position (mean
  // ablation), all sites at once, each site's latents computed from what
  // the edited upstream gives it. InvalidArgument for a mask of the wrong
  // shape.
  absl::StatusOr<double> MetricWithNodes(const NodeMask& keep);
  // Counts only positions [begin, end) (1 = the first after BOS) in every
  // later node effect (attribution patching, integrated gradients, edges),
  // e.g. the token that differs within each pair. InvalidArgument unless
  // 1 <= begin < end <= seq.
  absl::Status RestrictEffectsToPositions(int64_t begin, int64_t end);

  // [n_latents] bool: the latents of `site` that fire somewhere on the
  // clean prompts (after BOS).
  torch::Tensor ActiveLatents(int site) const;

  // A mask keeping nothing / exactly `nodes` / everything but `nodes`.
  NodeMask EmptyMask() const;
  NodeMask MaskOf(const std::vector<NodeId>& nodes, bool complement = false) const;

  // Attribution-patching edge effects between every pair of `nodes` at
  // different sites, upstream first (direct paths; zero where every path
  // passes through another site). InvalidArgument for a node outside the
  // sites.
  absl::StatusOr<std::vector<EdgeEffect>> EdgeEffects(const std::vector<NodeId>& nodes);

 private:
  // One site's values on one prompt set; rows are the positions after BOS.
  struct SiteValues {
    torch::Tensor activation;  // [pairs, seq, d] (BOS included)
    torch::Tensor latents;     // [pairs, seq - 1, n_latents]
    torch::Tensor error;       // [pairs, seq - 1, d]
  };
  CircuitAnalysis() = default;
  absl::Status CheckNode(const NodeId& node) const;
  // m summed over pairs for `tokens` under `hooks` (grad as the caller's mode).
  absl::StatusOr<torch::Tensor> MetricSum(const torch::Tensor& tokens, const HookSet& hooks) const;
  // The effects of every node of site s for the activation gradient
  // `gradient` [pairs, seq - 1, d] (summed over positions, mean over pairs).
  void EffectsAt(int s, const torch::Tensor& gradient, NodeEffects* effects) const;
  // Decode's vector-Jacobian product at site s: d (Decode(f) . gradient) / d f
  // at the clean latents, [pairs, seq - 1, n_latents].
  torch::Tensor LatentGradient(int s, const torch::Tensor& gradient) const;

  HookedForward forward_;
  CircuitMetric metric_;
  std::vector<CircuitSite> sites_;
  ContrastivePairs pairs_;
  std::vector<SiteValues> clean_, patch_;
  std::vector<torch::Tensor> mean_latents_;  // per site [seq - 1, n_latents]
  std::vector<torch::Tensor> mean_error_;    // per site [seq - 1, d]
  // [1, seq - 1, 1]: 1 at the positions node effects count, else 0.
  torch::Tensor counted_positions_;
  double metric_clean_ = 0;
  // Per site, the activation gradient of m on the clean prompts (filled by
  // AttributionPatching; what EdgeEffects weighs downstream nodes by).
  std::vector<torch::Tensor> clean_gradient_;
};

}  // namespace saelab

#endif  // SAELAB_EVAL_CIRCUITS_ATTRIBUTION_H_
