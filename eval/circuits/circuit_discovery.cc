#include "eval/circuits/circuit_discovery.h"

#include <torch/types.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "eval/circuits/contrastive_pairs.h"
#include "eval/dashboard.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

struct RankedNode {
  NodeId node;
  double effect;
};

// Every node with a nonzero effect, by |effect| descending (ties: site,
// then latent, error term first), so that a circuit of size n is a prefix.
std::vector<RankedNode> RankNodes(const NodeEffects& effects) {
  std::vector<RankedNode> ranked;
  for (int s = 0; s < static_cast<int>(effects.latent.size()); ++s) {
    if (effects.error[s] != 0) ranked.push_back({{s, NodeId::kErrorNode}, effects.error[s]});
    const torch::Tensor latent = effects.latent[s].contiguous();
    const double* values = latent.data_ptr<double>();
    for (int64_t i = 0; i < latent.size(0); ++i) {
      if (values[i] != 0) ranked.push_back({{s, i}, values[i]});
    }
  }
  std::stable_sort(ranked.begin(), ranked.end(), [](const RankedNode& a, const RankedNode& b) {
    return std::abs(a.effect) > std::abs(b.effect);
  });
  return ranked;
}

std::vector<NodeId> Prefix(const std::vector<RankedNode>& ranked, int64_t size) {
  std::vector<NodeId> nodes;
  for (int64_t i = 0; i < size && i < static_cast<int64_t>(ranked.size()); ++i) {
    nodes.push_back(ranked[i].node);
  }
  return nodes;
}

double Correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const torch::Tensor x = torch::tensor(a, torch::kFloat64);
  const torch::Tensor y = torch::tensor(b, torch::kFloat64);
  const torch::Tensor dx = x - x.mean(), dy = y - y.mean();
  const double denominator = std::sqrt((dx * dx).sum().item<double>() * (dy * dy).sum().item<double>());
  return denominator > 0 ? (dx * dy).sum().item<double>() / denominator : 0;
}

double SignAgreement(const std::vector<double>& estimate, const std::vector<double>& exact) {
  int64_t agree = 0, counted = 0;
  for (size_t i = 0; i < exact.size(); ++i) {
    if (exact[i] == 0) continue;
    ++counted;
    agree += (estimate[i] > 0) == (exact[i] > 0);
  }
  return counted ? static_cast<double>(agree) / counted : 0;
}

absl::StatusOr<PatchingAgreement> CheckAgainstPatching(CircuitAnalysis& analysis,
                                                       const std::vector<NodeId>& nodes,
                                                       const NodeEffects& atp,
                                                       const NodeEffects& ig) {
  std::vector<double> exact, atp_values, ig_values;
  double abs_sum = 0;
  for (const NodeId& node : nodes) {
    ASSIGN_OR_RETURN(double effect, analysis.ExactEffect(node));
    exact.push_back(effect);
    atp_values.push_back(atp.Of(node));
    ig_values.push_back(ig.Of(node));
    abs_sum += std::abs(effect);
  }
  PatchingAgreement agreement;
  agreement.set_nodes(static_cast<int64_t>(nodes.size()));
  agreement.set_atp_correlation(Correlation(atp_values, exact));
  agreement.set_atp_sign_agreement(SignAgreement(atp_values, exact));
  agreement.set_ig_correlation(Correlation(ig_values, exact));
  agreement.set_ig_sign_agreement(SignAgreement(ig_values, exact));
  agreement.set_mean_abs_exact(nodes.empty() ? 0 : abs_sum / nodes.size());
  return agreement;
}

std::vector<int64_t> CurveSizes(const CircuitEvalConfig& config, int64_t nonzero) {
  std::vector<int64_t> sizes(config.circuit_sizes().begin(), config.circuit_sizes().end());
  if (sizes.empty()) {
    // Half-octave steps: 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, ...
    for (double n = 1; n < nonzero; n *= std::sqrt(2.0)) sizes.push_back(std::llround(n));
    sizes.push_back(nonzero);
  }
  for (int64_t& size : sizes) size = std::min(size, nonzero);
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}

}  // namespace

absl::StatusOr<std::vector<CircuitTaskConfig>> CircuitTasks(const CircuitEvalConfig& config) {
  std::vector<CircuitTaskConfig> tasks(config.tasks().begin(), config.tasks().end());
  if (tasks.empty()) {
    for (const std::string& name : BuiltinCircuitTaskNames()) {
      ASSIGN_OR_RETURN(CircuitTaskConfig task, BuiltinCircuitTask(name));
      tasks.push_back(std::move(task));
    }
  }
  return tasks;
}

absl::Status CheckCircuitTasks(const CircuitEvalConfig& config, const BpeTokenizer& tokenizer,
                               const std::string& corpus_dir) {
  ASSIGN_OR_RETURN(std::vector<CircuitTaskConfig> tasks, CircuitTasks(config));
  for (const CircuitTaskConfig& task : tasks) {
    for (const Split split : {Split::kVal, Split::kTest}) {
      RETURN_IF_ERROR(BuildContrastivePairs(task, tokenizer, split, corpus_dir).status());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<CircuitResult> DiscoverCircuit(const CircuitEvalConfig& config,
                                              const CircuitTaskConfig& task,
                                              const Gpt2Model& model,
                                              const BpeTokenizer& tokenizer,
                                              const std::vector<CircuitSite>& sites,
                                              const std::vector<std::string>& site_saes,
                                              uint64_t seed, const std::string& corpus_dir) {
  if (config.method() != "ig" && config.method() != "atp") {
    return absl::InvalidArgumentError(absl::StrCat("circuit_eval.method \"", config.method(),
                                                   "\" is neither \"ig\" nor \"atp\""));
  }
  if (config.ig_steps() < 1 || config.graph_nodes() < 1 || config.patching_check_nodes() < 0 ||
      !(config.target_faithfulness() > 0 && config.target_faithfulness() <= 1)) {
    return absl::InvalidArgumentError(
        "circuit_eval needs ig_steps >= 1, graph_nodes >= 1, patching_check_nodes >= 0 and "
        "target_faithfulness in (0, 1]");
  }
  for (int64_t size : config.circuit_sizes()) {
    if (size < 1) return absl::InvalidArgumentError("circuit_eval.circuit_sizes must be >= 1");
  }
  PhaseClock clock;
  ASSIGN_OR_RETURN(ContrastivePairs discovery,
                   BuildContrastivePairs(task, tokenizer, Split::kVal, corpus_dir));
  ASSIGN_OR_RETURN(ContrastivePairs evaluation,
                   BuildContrastivePairs(task, tokenizer, Split::kTest, corpus_dir));
  CircuitResult result;
  result.set_task(task.name());
  result.set_corpus(task.corpus());
  result.set_method(config.method());
  result.set_ig_steps(config.ig_steps());
  result.set_discovery_pairs(discovery.size());
  result.set_evaluation_pairs(evaluation.size());
  ASSIGN_OR_RETURN(TaskAccuracy accuracy, MeasureTaskAccuracy(model, evaluation));
  result.set_clean_accuracy(accuracy.clean);
  result.set_patch_accuracy(accuracy.patch);
  result.set_clean_logit_difference(accuracy.clean_logit_difference);
  result.set_patch_logit_difference(accuracy.patch_logit_difference);
  for (size_t s = 0; s < sites.size(); ++s) {
    result.add_sites(sites[s].hook);
    result.add_site_saes(s < site_saes.size() ? site_saes[s] : "");
  }

  // Effects on the discovery pairs.
  ASSIGN_OR_RETURN(CircuitAnalysis found, CircuitAnalysis::Create(ForwardOf(model), sites, discovery));
  ASSIGN_OR_RETURN(NodeEffects atp, found.AttributionPatching());
  ASSIGN_OR_RETURN(NodeEffects ig, found.IntegratedGradients(config.ig_steps()));
  const NodeEffects& ranking = config.method() == "ig" ? ig : atp;
  const std::vector<RankedNode> ranked = RankNodes(ranking);
  result.set_nonzero_nodes(static_cast<int64_t>(ranked.size()));
  if (ranked.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "circuit task \"", task.name(), "\": no node has an effect (do the prompts differ?)"));
  }

  // Estimates against exact patching: a seeded sample, and the top nodes.
  {
    std::vector<NodeId> sample;
    for (const RankedNode& node : ranked) sample.push_back(node.node);
    std::mt19937_64 rng(seed);
    std::shuffle(sample.begin(), sample.end(), rng);
    const size_t checked = std::min<size_t>(config.patching_check_nodes(), sample.size());
    sample.resize(checked);
    ASSIGN_OR_RETURN(*result.mutable_sampled_check(),
                     CheckAgainstPatching(found, sample, atp, ig));
    ASSIGN_OR_RETURN(*result.mutable_top_check(),
                     CheckAgainstPatching(found, Prefix(ranked, checked), atp, ig));
  }

  // Faithfulness on the evaluation pairs.
  ASSIGN_OR_RETURN(CircuitAnalysis judged, CircuitAnalysis::Create(ForwardOf(model), sites, evaluation));
  const double full = judged.metric_clean();
  ASSIGN_OR_RETURN(const double empty, judged.MetricEmpty());
  result.set_metric_full(full);
  result.set_metric_empty(empty);
  result.set_target_faithfulness(config.target_faithfulness());
  const double span = full - empty;
  const CircuitCurvePoint* chosen = nullptr;
  for (int64_t size : CurveSizes(config, static_cast<int64_t>(ranked.size()))) {
    const std::vector<NodeId> circuit = Prefix(ranked, size);
    ASSIGN_OR_RETURN(double kept, judged.MetricWithNodes(judged.MaskOf(circuit)));
    ASSIGN_OR_RETURN(double rest, judged.MetricWithNodes(judged.MaskOf(circuit, /*complement=*/true)));
    CircuitCurvePoint* point = result.add_curve();
    point->set_size(size);
    point->set_faithfulness(span != 0 ? (kept - empty) / span : 0);
    point->set_complement_faithfulness(span != 0 ? (rest - empty) / span : 0);
  }
  for (const CircuitCurvePoint& point : result.curve()) {
    if (point.faithfulness() >= config.target_faithfulness()) {
      chosen = &point;
      break;
    }
  }
  if (chosen == nullptr) chosen = &result.curve(result.curve_size() - 1);
  result.set_circuit_size(chosen->size());
  result.set_circuit_faithfulness(chosen->faithfulness());
  result.set_circuit_complement_faithfulness(chosen->complement_faithfulness());

  // The drawn nodes, with exact effects, and their edges.
  const std::vector<NodeId> drawn =
      Prefix(ranked, std::min<int64_t>(chosen->size(), config.graph_nodes()));
  for (const NodeId& node : drawn) {
    CircuitNode* out = result.add_nodes();
    out->set_site(sites[node.site].hook);
    out->set_latent(node.latent);
    out->set_effect(ranking.Of(node));
    out->set_atp_effect(atp.Of(node));
    out->set_ig_effect(ig.Of(node));
    ASSIGN_OR_RETURN(double exact, found.ExactEffect(node));
    out->set_exact_effect(exact);
  }
  ASSIGN_OR_RETURN(std::vector<EdgeEffect> edges, found.EdgeEffects(drawn));
  for (const EdgeEffect& edge : edges) {
    const auto index = [&](const NodeId& node) {
      return static_cast<int>(std::find(drawn.begin(), drawn.end(), node) - drawn.begin());
    };
    CircuitEdge* out = result.add_edges();
    out->set_upstream(index(edge.upstream));
    out->set_downstream(index(edge.downstream));
    out->set_effect(edge.effect);
  }
  result.set_wall_seconds(clock.Seconds());
  return result;
}

std::string RenderCircuitGraph(const CircuitResult& circuit) {
  // Layout: sites bottom (first) to top (last), nodes of a site spread
  // evenly in their row by effect; drawn as inline SVG (no script).
  const int n_sites = circuit.sites_size();
  const double row_height = 90, width = 1100, left = 230, top = 60;
  const double height = top + row_height * std::max(n_sites, 1) + 40;
  std::vector<std::vector<int>> in_row(n_sites);
  std::vector<int> site_of(circuit.nodes_size(), 0);
  for (int i = 0; i < circuit.nodes_size(); ++i) {
    for (int s = 0; s < n_sites; ++s) {
      if (circuit.sites(s) == circuit.nodes(i).site()) site_of[i] = s;
    }
    in_row[site_of[i]].push_back(i);
  }
  std::vector<double> x(circuit.nodes_size()), y(circuit.nodes_size());
  double max_effect = 1e-12, max_edge = 1e-12;
  for (const CircuitNode& node : circuit.nodes()) max_effect = std::max(max_effect, std::abs(node.effect()));
  for (const CircuitEdge& edge : circuit.edges()) max_edge = std::max(max_edge, std::abs(edge.effect()));
  for (int s = 0; s < n_sites; ++s) {
    const double row_y = top + row_height * (n_sites - 1 - s) + row_height / 2;
    for (size_t k = 0; k < in_row[s].size(); ++k) {
      x[in_row[s][k]] = left + (width - left - 40) * (k + 0.5) / in_row[s].size();
      y[in_row[s][k]] = row_y;
    }
  }
  const auto colour = [](double effect) { return effect >= 0 ? "#2563eb" : "#dc2626"; };
  std::string svg;
  for (int s = 0; s < n_sites; ++s) {
    const double row_y = top + row_height * (n_sites - 1 - s) + row_height / 2;
    absl::StrAppendFormat(&svg,
                          "<text x=\"10\" y=\"%.1f\" class=\"site\">%s</text>"
                          "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"rule\"/>\n",
                          row_y + 4, HtmlEscape(circuit.sites(s)), left - 20, width - 20, row_y,
                          row_y);
  }
  for (const CircuitEdge& edge : circuit.edges()) {
    if (edge.upstream() < 0 || edge.upstream() >= circuit.nodes_size() || edge.downstream() < 0 ||
        edge.downstream() >= circuit.nodes_size() ||
        std::abs(edge.effect()) < 0.02 * max_edge) {
      continue;  // the faintest edges would only clutter the page
    }
    absl::StrAppendFormat(
        &svg,
        "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
        "stroke-width=\"%.2f\" stroke-opacity=\"0.55\"><title>edge %.4g</title></line>\n",
        x[edge.upstream()], y[edge.upstream()], x[edge.downstream()], y[edge.downstream()],
        colour(edge.effect()), 0.5 + 5.5 * std::abs(edge.effect()) / max_edge, edge.effect());
  }
  for (int i = 0; i < circuit.nodes_size(); ++i) {
    const CircuitNode& node = circuit.nodes(i);
    const std::string label = node.latent() < 0 ? "err" : absl::StrCat(node.latent());
    const double radius = 6 + 16 * std::sqrt(std::abs(node.effect()) / max_effect);
    absl::StrAppendFormat(
        &svg,
        "<g><circle cx=\"%.1f\" cy=\"%.1f\" r=\"%.1f\" fill=\"%s\" class=\"%s\"/>"
        "<text x=\"%.1f\" y=\"%.1f\" class=\"label\">%s</text>"
        "<title>%s %s\neffect %.4g (atp %.4g, ig %.4g, exact %.4g)</title></g>\n",
        x[i], y[i], radius, colour(node.effect()), node.latent() < 0 ? "error" : "latent", x[i],
        y[i] + radius + 12, label, HtmlEscape(node.site()),
        node.latent() < 0 ? "SAE error term" : absl::StrCat("latent ", node.latent()),
        node.effect(), node.atp_effect(), node.ig_effect(), node.exact_effect());
  }
  std::string curve;
  for (const CircuitCurvePoint& point : circuit.curve()) {
    absl::StrAppendFormat(&curve, "<tr><td>%d</td><td>%.3f</td><td>%.3f</td></tr>", point.size(),
                          point.faithfulness(), point.complement_faithfulness());
  }
  return absl::StrFormat(
      R"(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>circuit: %s</title>
<style>
body { font-family: sans-serif; margin: 20px; color: #111; }
.site { font-size: 12px; font-family: monospace; }
.label { font-size: 10px; text-anchor: middle; fill: #333; }
.rule { stroke: #ddd; }
circle.error { stroke: #111; stroke-width: 2; stroke-dasharray: 3 2; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; text-align: right; }
</style></head><body>
<h1>Circuit: %s</h1>
<p>%s pairs from the %s corpus (found on %d val pairs, measured on %d test pairs). The model
gets %.1f%% of clean and %.1f%% of patch prompts right. m = logit(answer) - logit(partner's
answer): %.3f for the whole model, %.3f with every node mean-ablated.</p>
<p>The circuit below is the top %d nodes by %s effect: faithfulness %.3f (target %.2f),
faithfulness of everything else %.3f. Drawn: its first %d nodes (red: patching the node lowers
m, so it carries the clean prompt's answer; blue: it raises m; area by |effect|; dashed rings
are SAE error terms) and the edges between them
(direct paths, attribution patching; hover for values).</p>
<svg width="%.0f" height="%.0f" xmlns="http://www.w3.org/2000/svg">
<text x="%.1f" y="24" class="site">logits (m)</text>
%s</svg>
<h2>Faithfulness by circuit size</h2>
<table><tr><th>nodes</th><th>faithfulness</th><th>without the circuit</th></tr>%s</table>
<p>Estimates against exact activation patching (%d sampled nodes): correlation %.3f (attribution
patching), %.3f (integrated gradients); sign agreement %.3f / %.3f.</p>
</body></html>
)",
      HtmlEscape(circuit.task()), HtmlEscape(circuit.task()), HtmlEscape(circuit.task()),
      HtmlEscape(circuit.corpus()), circuit.discovery_pairs(), circuit.evaluation_pairs(),
      100 * circuit.clean_accuracy(), 100 * circuit.patch_accuracy(), circuit.metric_full(),
      circuit.metric_empty(), circuit.circuit_size(), HtmlEscape(circuit.method()),
      circuit.circuit_faithfulness(), circuit.target_faithfulness(),
      circuit.circuit_complement_faithfulness(), circuit.nodes_size(), width, height,
      width / 2, svg, curve, circuit.sampled_check().nodes(),
      circuit.sampled_check().atp_correlation(), circuit.sampled_check().ig_correlation(),
      circuit.sampled_check().atp_sign_agreement(), circuit.sampled_check().ig_sign_agreement());
}

absl::Status WriteCircuitGraph(const CircuitResult& circuit, const std::string& path) {
  RETURN_IF_ERROR(MakeDirs(std::filesystem::path(path).parent_path().string()));
  return AtomicWriteFile(path, RenderCircuitGraph(circuit));
}

}  // namespace saelab
