#include "experiments/subject_sae.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activations/subject_data.h"
#include "eval/circuits/circuit_discovery.h"
#include "eval/circuits/shift.h"
#include "experiments/analysis.h"
#include "experiments/feature_splitting.h"
#include "experiments/registry.h"
#include "experiments/sae_sweep.h"
#include "experiments/subject_evaluations.h"
#include "harness/distributed.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// What the circuit evaluation reads once every hook's SAEs are trained: the
// model and tokenizer, and the first sweep's seed-0 SAE at each hook.
struct CircuitInputs {
  std::optional<Gpt2Model> model;
  std::optional<BpeTokenizer> tokenizer;
  std::vector<std::string> hooks, sae_names;
  std::vector<std::unique_ptr<Sae>> saes;
};

// The sweeps at one hook: its own data (store), evaluations and SAEs.
// With `prefix_names`, SAE and series names start with "<hook>.".
// harvest_also: the other hooks, whose stores the first hook's harvest
// writes in the same pass over the model.
absl::Status RunAtHook(const SubjectSaeConfig& config, const std::string& hook,
                       bool prefix_names, const std::string& run_dir, SeedTree* seeds,
                       ExperimentResult* result, const std::vector<std::string>& harvest_also,
                       CircuitInputs* circuit_inputs) {
  SubjectActivationsConfig activations = config.activations();
  activations.set_hook_name(hook);
  // One training stream seed for every hook: the same shuffle of contexts.
  ASSIGN_OR_RETURN(SubjectData data,
                   OpenSubjectData(activations, seeds->Derive("data/train_stream"),
                                   result->mutable_provenance(), harvest_also));
  if (!result->has_activation_data()) *result->mutable_activation_data() = data.summary;
  const double train_rows = static_cast<double>(data.summary.train_rows());
  ASSIGN_OR_RETURN(std::unique_ptr<SubjectEvaluations> evaluations,
                   SubjectEvaluations::Create(config, data, run_dir, seeds, result));
  google::protobuf::RepeatedPtrField<SaeSweep> sweeps = config.sweeps();
  if (prefix_names) {
    for (SaeSweep& sweep : sweeps) {
      sweep.mutable_base()->set_name(absl::StrCat(hook, ".", sweep.base().name()));
    }
  }
  const std::string splitting_sweep =
      !config.has_feature_splitting() ? ""
      : config.feature_splitting().sweep().empty() ? sweeps[0].base().name()
                                                   : config.feature_splitting().sweep();
  std::vector<SplittingSae> splitting;
  const std::string circuit_sweep = config.sweeps(0).base().name();
  if (config.has_circuit_eval() && !circuit_inputs->model) {
    // The tasks are checked against the tokenizer before anything trains.
    RETURN_IF_ERROR(CheckCircuitTasks(config.circuit_eval(), data.tokenizer));
    circuit_inputs->model = data.model;
    circuit_inputs->tokenizer = data.tokenizer;
  }
  absl::Status evaluation_status;
  RETURN_IF_ERROR(RunSweeps(
      sweeps, *data.source, data.eval_rows, config.reconstruction_eval(), run_dir,
      {"nmse", "dead_fraction", "delta_loss"}, seeds, result, [&](TrainedSae& trained) {
        trained.result->set_hook_name(hook);
        if (prefix_names) {  // the sweep as configured, the hook beside it
          trained.result->set_sweep(trained.result->sweep().substr(hook.size() + 1));
        }
        auto& metrics = *trained.result->mutable_metrics();
        // Training tokens relative to one pass over the training rows.
        metrics["epochs"] = static_cast<double>(trained.result->train_tokens()) / train_rows;
        if (evaluation_status.ok()) evaluation_status = evaluations->Evaluate(trained);
        if (trained.result->sweep() == splitting_sweep && trained.result->seed_index() == 0) {
          splitting.push_back({std::move(trained.sae), trained.result});
        } else if (config.has_circuit_eval() && trained.result->sweep() == circuit_sweep &&
                   trained.result->seed_index() == 0 &&
                   (circuit_inputs->hooks.empty() || circuit_inputs->hooks.back() != hook)) {
          circuit_inputs->hooks.push_back(hook);
          circuit_inputs->sae_names.push_back(trained.result->name());
          circuit_inputs->saes.push_back(std::move(trained.sae));
        }
      },
      config.train_together()));
  RETURN_IF_ERROR(evaluation_status);
  if (config.has_feature_splitting()) {
    PhaseClock clock;
    RETURN_IF_ERROR(AnalyzeFeatureSplitting(config.feature_splitting(), splitting, data.eval_rows,
                                            data.val_contexts, data.tokenizer,
                                            seeds->Derive("feature_splitting"),
                                            result->mutable_feature_splitting()));
    SummarizeGroups(result);  // again, with the split_* metrics
    RecordPhase("feature_splitting", clock.Seconds(), result->mutable_provenance());
  }
  return evaluations->Finish();
}

// Sparse feature circuits over the SAEs at every hook, one per task; each
// task's graph goes to <run_dir>/circuits/<task>.html.
absl::Status RunCircuitEval(const CircuitEvalConfig& config, const CircuitInputs& inputs,
                            const std::string& run_dir, SeedTree* seeds,
                            ExperimentResult* result) {
  PhaseClock clock;
  // Sites in forward order (the graph's rows), whatever the hooks' order.
  std::vector<std::pair<int64_t, size_t>> order;
  for (size_t s = 0; s < inputs.hooks.size(); ++s) {
    ASSIGN_OR_RETURN(HookLocation location,
                     ParseHookName(inputs.hooks[s], inputs.model->config().n_layer));
    order.push_back({location.index(), s});
  }
  std::sort(order.begin(), order.end());
  std::vector<CircuitSite> sites;
  std::vector<std::string> sae_names;
  for (const auto& [index, s] : order) {
    sites.push_back({inputs.hooks[s], inputs.saes[s].get()});
    sae_names.push_back(inputs.sae_names[s]);
  }
  ASSIGN_OR_RETURN(std::vector<CircuitTaskConfig> tasks, CircuitTasks(config));
  for (const CircuitTaskConfig& task : tasks) {
    Log("circuit %s over %d sites", task.name().c_str(), static_cast<int>(sites.size()));
    ASSIGN_OR_RETURN(CircuitResult circuit,
                     DiscoverCircuit(config, task, *inputs.model, *inputs.tokenizer, sites,
                                     sae_names, seeds->Derive("circuits/" + task.name())));
    circuit.set_graph_html(absl::StrCat("circuits/", task.name(), ".html"));
    RETURN_IF_ERROR(WriteCircuitGraph(circuit, absl::StrCat(run_dir, "/", circuit.graph_html())));
    Log("circuit %s: %lld nodes reach faithfulness %.3f (without them %.3f); m %.3f, empty %.3f",
        task.name().c_str(), static_cast<long long>(circuit.circuit_size()),
        circuit.circuit_faithfulness(), circuit.circuit_complement_faithfulness(),
        circuit.metric_full(), circuit.metric_empty());
    *result->add_circuits() = std::move(circuit);
  }
  if (config.has_shift()) {
    Log("shift over %d sites", static_cast<int>(sites.size()));
    ASSIGN_OR_RETURN(*result->mutable_shift(),
                     RunShift(config.shift(), config.ig_steps(), *inputs.model, *inputs.tokenizer,
                              sites, seeds->Derive("circuits/shift")));
    const ShiftResult& shift = result->shift();
    Log("shift: probe accuracy %.3f (conflicting cue %.3f) -> %.3f (%.3f) with %d cue latents "
        "ablated, %.3f (%.3f) with random ones, %.3f (%.3f) retrained; oracle %.3f (%.3f)",
        shift.accuracy(), shift.conflicting_accuracy(), shift.ablated_accuracy(),
        shift.ablated_conflicting_accuracy(), shift.ablated_size(), shift.random_accuracy(),
        shift.random_conflicting_accuracy(), shift.retrained_accuracy(),
        shift.retrained_conflicting_accuracy(), shift.oracle_accuracy(),
        shift.oracle_conflicting_accuracy());
  }
  RecordPhase("circuits", clock.Seconds(), result->mutable_provenance());
  return absl::OkStatus();
}

}  // namespace

absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result) {
  if (config.has_feature_splitting() && !config.hooks().empty()) {
    return absl::InvalidArgumentError(
        "feature_splitting compares the dictionaries of one hook; leave `hooks` empty");
  }
  if (config.activations().has_target_hook_name() && !config.hooks().empty()) {
    return absl::InvalidArgumentError(
        "activations.target_hook_name pairs one input hook with one target; leave `hooks` empty");
  }
  if (config.sweeps().empty()) {
    return absl::InvalidArgumentError("subject_sae needs at least one sweep");
  }
  CircuitInputs circuit_inputs;
  if (config.hooks().empty()) {
    RETURN_IF_ERROR(RunAtHook(config, config.activations().hook_name(), false, run_dir, seeds,
                              result, {}, &circuit_inputs));
  } else {
    // Every hook's store from one pass over the model, at the first hook.
    const std::vector<std::string> hooks(config.hooks().begin(), config.hooks().end());
    for (size_t i = 0; i < hooks.size(); ++i) {
      Log("hook %s", hooks[i].c_str());
      RETURN_IF_ERROR(RunAtHook(config, hooks[i], true, run_dir, seeds, result,
                                i == 0 ? hooks : std::vector<std::string>{}, &circuit_inputs));
    }
  }
  // The circuit evaluation has no collectives, so data-parallel workers
  // (whose results are discarded) skip it rather than repeat rank 0's.
  Communicator* comm = ProcessCommunicator();
  if (config.has_circuit_eval() && (comm == nullptr || comm->rank() == 0)) {
    RETURN_IF_ERROR(RunCircuitEval(config.circuit_eval(), circuit_inputs, run_dir, seeds, result));
  }
  return FitPowerLaws(config.fits(), seeds->Derive("fits"), result);
}

SAELAB_REGISTER_EXPERIMENT(subject_sae, SubjectSaeConfig, RunSubjectSae,
                           "results/plot_subject_sae.py");

}  // namespace saelab
