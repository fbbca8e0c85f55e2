// Circuit discovery (Marks et al. 2024): rank every node of a task by its
// effect on the task's val-split pairs, then measure, on its test-split
// pairs, how much of the model's behaviour the top nodes carry alone
// (faithfulness) and how much is left without them (completeness), at a
// range of circuit sizes; draw the smallest circuit that reaches the target
// faithfulness as a graph with its edges.
//
//   std::vector<CircuitSite> sites = {{"blocks.0.hook_attn_out", sae0}, ...};
//   ASSIGN_OR_RETURN(CircuitResult circuit,
//                    DiscoverCircuit(config, task, model, tokenizer, sites, seed));
//   RETURN_IF_ERROR(WriteCircuitGraph(circuit, run_dir + "/circuits/kjv_thou.html"));
//
// Faithfulness of a circuit C is (m(C) - m(empty)) / (m(M) - m(empty)),
// everything outside C mean-ablated (per position, over the test pairs'
// clean prompts); the complement's faithfulness, C ablated and the rest
// kept, is near 0 for a complete circuit.
#ifndef SAELAB_EVAL_CIRCUITS_CIRCUIT_DISCOVERY_H_
#define SAELAB_EVAL_CIRCUITS_CIRCUIT_DISCOVERY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/circuits/attribution.h"
#include "eval/eval_config.pb.h"
#include "harness/result.pb.h"

namespace saelab {

// The tasks of `config` (its own, or the built-in ones when it lists none).
absl::StatusOr<std::vector<CircuitTaskConfig>> CircuitTasks(const CircuitEvalConfig& config);

// Builds every task's pairs on both splits and drops them: what
// DiscoverCircuit would fail on first (a swap string that is not one token
// of this tokenizer, a task without pairs), found before any SAE is trained.
absl::Status CheckCircuitTasks(const CircuitEvalConfig& config, const BpeTokenizer& tokenizer,
                               const std::string& corpus_dir = "");

// One task's circuit over `sites` (in forward order), with `site_saes` the
// SAE names recorded beside them. `seed` draws the nodes checked against
// exact patching. Writes nothing. InvalidArgument for an unknown method,
// ig_steps < 1, target_faithfulness outside (0, 1], graph_nodes < 1, or a
// circuit size < 1; the pairs' and the analysis's errors as they come.
absl::StatusOr<CircuitResult> DiscoverCircuit(const CircuitEvalConfig& config,
                                              const CircuitTaskConfig& task,
                                              const Gpt2Model& model,
                                              const BpeTokenizer& tokenizer,
                                              const std::vector<CircuitSite>& sites,
                                              const std::vector<std::string>& site_saes,
                                              uint64_t seed, const std::string& corpus_dir = "");

// The circuit graph as a self-contained HTML page: one row per site (the
// embedding at the bottom, the logits above the top), a node per latent or
// error term (red: patching it lowers m; blue: raises it; area by |effect|), edges by
// sign and |effect|, and the faithfulness curve's numbers.
std::string RenderCircuitGraph(const CircuitResult& circuit);

// Writes RenderCircuitGraph(circuit) to `path` atomically, creating its folder.
absl::Status WriteCircuitGraph(const CircuitResult& circuit, const std::string& path);

}  // namespace saelab

#endif  // SAELAB_EVAL_CIRCUITS_CIRCUIT_DISCOVERY_H_
