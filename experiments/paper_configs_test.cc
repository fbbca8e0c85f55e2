// Every *_paper config (GPT-2 small shapes, for a GPU and the user's GPT-2
// weights) loads and starts on CPU: run through the real runner, with
// --model_dir pointing at a stand-in of GPT-2 small's shape (random weights,
// d 768, 12 heads, 9 blocks so that layer 8 exists, the reference model's
// tokenizer), each cut to its first sweep point, first hook and two
// training steps, and its evaluations to a few examples. The SAE keeps the
// paper's shape: n 32768 over d 768.
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <utility>

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "eval/circuits/contrastive_pairs.h"
#include "eval/eval_config.pb.h"
#include "experiments/experiment_config.pb.h"
#include "experiments/runner.h"
#include "harness/file_io.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

class PaperConfigsTest : public ::testing::TestWithParam<const char*> {
 protected:
  static void SetUpTestSuite() {
    const std::string dir = StandInDir();
    if (PathExists(dir + "/config.json")) return;
    Gpt2Config shape;
    shape.n_layer = 9;
    shape.n_head = 12;
    shape.n_embd = 768;
    shape.n_positions = 128;
    shape.vocab_size = 4096;  // the reference model's tokenizer
    shape.bos_token_id = shape.eos_token_id = 4095;
    absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(shape, 1);
    ASSERT_TRUE(model.ok()) << model.status();
    ASSERT_TRUE(model->SaveHfDirectory(dir).ok());
    for (const char* file : {"vocab.json", "merges.txt"}) {
      std::filesystem::copy_file(absl::StrCat("data/models/saelab-ref-lm/", file),
                                 absl::StrCat(dir, "/", file));
    }
  }

  // Probe-style data cut to a few contexts of one task ("" keeps the tasks).
  static void ShrinkProbeData(ProbeEvalConfig* data, const std::string& task) {
    if (!task.empty()) {
      data->clear_tasks();
      data->add_tasks(task);
    }
    data->set_train_examples_per_class(8);
    data->set_test_examples_per_class(8);
    data->set_max_contexts_per_split(4);
    data->set_contexts_per_document(1);
    data->clear_sparse_k();
    data->add_sparse_k(1);
    data->set_random_directions(1);
  }

  static std::string StandInDir() {
    return absl::StrCat(std::getenv("TEST_TMPDIR"), "/gpt2_small_shape");
  }
};

TEST_P(PaperConfigsTest, StartsOnAStandInOfGpt2SmallsShape) {
  const std::string name = GetParam();
  ExperimentConfig config;
  ASSERT_TRUE(
      ParseTextProtoFile(absl::StrCat("experiments/", name, "_paper.textproto"), &config).ok());
  ASSERT_TRUE(config.has_subject_sae());
  SubjectSaeConfig& s = *config.mutable_subject_sae();
  // The paper's shape, as the config states it.
  EXPECT_EQ(s.activations().hook_name(), "blocks.8.hook_resid_post");
  EXPECT_EQ(s.activations().context_length(), 64);
  const SaeSweep& first = s.sweeps(0);
  const int64_t n_latents = first.base().n_latents();
  EXPECT_GE(n_latents, 8192);
  if (s.hooks_size() > 1) s.mutable_hooks()->DeleteSubrange(1, s.hooks_size() - 1);
  s.mutable_sweeps()->DeleteSubrange(1, s.sweeps_size() - 1);
  SaeSweep& sweep = *s.mutable_sweeps(0);
  if (sweep.sparsity_size() > 1) sweep.mutable_sparsity()->Truncate(1);
  sweep.clear_target_l0();
  sweep.set_seeds(1);
  sweep.clear_grid();
  TrainerConfig& trainer = *sweep.mutable_base()->mutable_trainer();
  trainer.set_batch_size(128);
  trainer.set_total_tokens(256);
  trainer.set_init_sample_tokens(256);
  trainer.set_checkpoint_every_steps(0);
  SubjectActivationsConfig& activations = *s.mutable_activations();
  activations.set_train_contexts(8);
  activations.set_eval_contexts(4);
  activations.set_contexts_per_chunk(4);
  activations.set_shuffle_buffer_chunks(2);
  activations.set_cache_dir(absl::StrCat(std::getenv("TEST_TMPDIR"), "/cache"));
  // One small corpus: tokenizing all four would dominate the test.
  activations.mutable_data()->clear_corpora();
  activations.mutable_data()->add_corpora("kjv");
  s.mutable_downstream_eval()->set_eval_contexts(2);
  // The evaluations the config asks for run too, each cut to a handful of
  // examples: the config's evaluation settings must be accepted at this shape.
  const bool probes = s.has_probe_eval(), ablation = s.has_ablation_eval(),
             steering = s.has_steering_eval(),
             classification = s.has_classification_eval(), dashboard = s.has_dashboard();
  if (probes) ShrinkProbeData(s.mutable_probe_eval(), "capitalized_token");
  // Absorption reads every word token of the vocabulary and fits per-letter
  // probes over all 32768 latents, about 150 s here whatever its settings:
  // its config is parsed and checked above, its code is tested in
  // eval/absorption_test and on the reference model in subject_sae_evals_test.
  s.clear_absorption_eval();
  if (ablation) {
    s.mutable_ablation_eval()->set_latents(2);
    s.mutable_ablation_eval()->set_eval_contexts(2);
    s.mutable_ablation_eval()->set_max_positions(2);
  }
  if (steering) {
    SteeringEvalConfig& steer = *s.mutable_steering_eval();
    steer.clear_prompts();
    steer.add_prompts("The");
    steer.clear_clamp_multiples();
    steer.add_clamp_multiples(0);
    steer.add_clamp_multiples(2);
    steer.set_samples_per_prompt(1);
    steer.set_max_new_tokens(2);
    steer.set_finder_contexts(4);
  }
  if (classification) {
    ShrinkProbeData(s.mutable_classification_eval()->mutable_data(), "");
    s.mutable_classification_eval()->clear_tasks();
    s.mutable_classification_eval()->add_tasks("fortunes_language");
  }
  if (dashboard) {
    s.mutable_dashboard()->set_first_latents(4);
    s.mutable_dashboard()->set_top_contexts(2);
  }
  const bool circuits = s.has_circuit_eval();
  if (circuits) {
    CircuitEvalConfig& circuit = *s.mutable_circuit_eval();
    absl::StatusOr<CircuitTaskConfig> task = BuiltinCircuitTask("kjv_thou");
    ASSERT_TRUE(task.ok());
    task->set_max_pairs(4);
    circuit.clear_tasks();
    *circuit.add_tasks() = *task;
    circuit.set_ig_steps(1);
    circuit.set_patching_check_nodes(2);
    circuit.set_graph_nodes(2);
    circuit.clear_circuit_sizes();
    circuit.add_circuit_sizes(1);
    if (circuit.has_shift()) {
      ShiftEvalConfig& shift = *circuit.mutable_shift();
      shift.set_train_examples_per_class(4);
      shift.set_test_examples_per_class(4);
      shift.set_cue_pairs(4);
      shift.set_ablate_latents(2);
      shift.set_random_draws(1);
    }
  }
  s.clear_feature_splitting();  // needs two dictionary sizes
  s.clear_fits();  // one point cannot be fitted
  config.clear_claims();
  const std::string path = absl::StrCat(std::getenv("TEST_TMPDIR"), "/", name, ".textproto");
  ASSERT_TRUE(WriteTextProtoFile(path, config).ok());

  RunnerOptions options;
  options.config_path = path;
  options.run_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/run_", name);
  options.plot = false;
  options.model_dir = StandInDir();
  absl::StatusOr<RunnerOutcome> outcome = RunExperiment(options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const ExperimentResult& result = outcome->result;
  EXPECT_EQ(result.activation_data().d_in(), 768);
  ASSERT_EQ(result.saes_size(), 1);
  EXPECT_EQ(result.saes(0).hyperparameters().at("n_latents"), n_latents);
  EXPECT_EQ(result.saes(0).train_tokens(), 256);
  // The SAE ran end to end: metrics measured, the spliced model evaluated.
  EXPECT_GT(result.saes(0).metrics().at("nmse"), 0);
  EXPECT_TRUE(result.saes(0).metrics().count("delta_loss"));
  const auto& metrics = result.saes(0).metrics();
  // Each evaluation the config asks for wrote its headline metric.
  const std::pair<bool, const char*> evaluations[] = {
      {probes, "probe_loss"},
      {ablation, "ablation_sparsity"},
      {steering, "unsteered_concept_rate"},
      {classification, "classification_latent_accuracy"},
  };
  for (const auto& [asked, metric] : evaluations) {
    EXPECT_EQ(metrics.count(metric), asked ? 1 : 0) << metric;
  }
  EXPECT_EQ(PathExists(absl::StrCat(options.run_dir, "/dashboards/index.html")), dashboard);
  EXPECT_EQ(result.circuits_size(), circuits ? 1 : 0);
  EXPECT_EQ(result.has_shift(), circuits);
}

INSTANTIATE_TEST_SUITE_P(Paper, PaperConfigsTest,
                         ::testing::Values("frontier", "l1_vs_topk", "downstream_loss", "scaling",
                                           "layers", "dead_latents", "feature_splitting",
                                           "probes_ablation", "absorption", "steering",
                                           "classification", "dashboards", "circuits"));

TEST(PaperConfigsModelDirTest, ModelDirIsRefusedForAnExperimentWithoutASubjectModel) {
  RunnerOptions options;
  options.config_path = "experiments/synthetic_recovery.textproto";
  options.model_dir = "/nonexistent";
  options.run_dir = absl::StrCat(std::getenv("TEST_TMPDIR"), "/refused");
  absl::StatusOr<RunnerOutcome> outcome = RunExperiment(options);
  ASSERT_FALSE(outcome.ok());
  EXPECT_NE(outcome.status().message().find("--model_dir"), std::string::npos);
}

}  // namespace
}  // namespace saelab
