// Transcoders through subject_sae end to end on the committed reference
// model: a paired (MLP input, MLP output) store, a TopK transcoder and a
// skip transcoder; the reported metrics (of the MLP output) and the loss
// with the MLP replaced equal a recomputation from the saved transcoders and
// activations taken straight from the model, with a splice written here.
#include <torch/types.h>
#include <torch/utils.h>

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "experiments/experiment_config.pb.h"
#include "experiments/internal/subject_run_testing.h"
#include "experiments/runner.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/result.pb.h"
#include "harness/textproto.h"
#include "sae/checkpoint.h"
#include "sae/sae.h"

namespace saelab {
namespace {

using ::testing::TempDir;

constexpr char kIn[] = "blocks.1.hook_mlp_in";
constexpr char kOut[] = "blocks.1.hook_mlp_out";

absl::StatusOr<RunnerOutcome> RunSmall(const ExperimentConfig& config, const std::string& name) {
  const std::string path = absl::StrCat(TempDir(), "/", name, ".textproto");
  if (absl::Status written = WriteTextProtoFile(path, config); !written.ok()) return written;
  RunnerOptions options;
  options.config_path = path;
  options.run_dir = TempDir() + "/" + name;
  options.plot = false;
  return RunExperiment(options);
}

ExperimentConfig SmallConfig() {
  ExperimentConfig config;
  EXPECT_TRUE(
      ParseTextProtoFile("experiments/testdata/subject_transcoder_small.textproto", &config).ok());
  config.mutable_subject_sae()->mutable_activations()->set_cache_dir(TempDir() + "/cache");
  return config;
}

TEST(SubjectTranscoderTest, MetricsAndSplicedLossAreOfTheMlpOutputAndMatchARecomputation) {
  absl::StatusOr<RunnerOutcome> outcome = RunSmall(SmallConfig(), "run");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const ExperimentResult& result = outcome->result;
  EXPECT_EQ(result.activation_data().hook_name(), kIn);
  EXPECT_EQ(result.activation_data().target_hook_name(), kOut);
  EXPECT_EQ(result.activation_data().train_rows(), 256 * 31);
  ASSERT_EQ(result.saes_size(), 2);

  // The validation contexts as the run packed them, through the model.
  auto model = Gpt2Model::LoadHfDirectory("data/models/saelab-ref-lm");
  ASSERT_TRUE(model.ok()) << model.status();
  auto contexts =
      experiments_testing::CachedValidationContexts(TempDir() + "/cache", *model, 32, 32);
  ASSERT_TRUE(contexts.ok()) << contexts.status();
  torch::NoGradGuard no_grad;
  auto cache = model->RunWithCache(*contexts, {kIn, kOut});
  ASSERT_TRUE(cache.ok()) << cache.status();
  const torch::Tensor x = cache->at(kIn).slice(1, 1).reshape({-1, 128});
  const torch::Tensor y = cache->at(kOut).slice(1, 1).reshape({-1, 128}).to(torch::kFloat64);
  auto next_token_loss = [&](const torch::Tensor& logits) {
    torch::Tensor lp = torch::log_softmax(logits.slice(1, 1, 31).to(torch::kFloat64), -1);
    return -lp.gather(-1, contexts->slice(1, 2, 32).unsqueeze(-1)).mean().item<double>();
  };
  const double ce_clean = next_token_loss(*model->Forward(*contexts));

  double nmse_of[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const SaeResult& sae_result = result.saes(i);
    SCOPED_TRACE(sae_result.name());
    auto sae = LoadSae(outcome->run_dir + "/" + sae_result.checkpoint());
    ASSERT_TRUE(sae.ok()) << sae.status();
    ASSERT_TRUE((*sae)->is_transcoder());
    // nmse and l0 of the MLP output estimated from the MLP input.
    const torch::Tensor y_hat = (*sae)->Reconstruct(x).to(torch::kFloat64);
    const double nmse = ((y - y_hat).pow(2).sum() / y.pow(2).sum()).item<double>();
    EXPECT_NEAR(sae_result.metrics().at("nmse"), nmse, 1e-5 * nmse);
    EXPECT_DOUBLE_EQ(sae_result.metrics().at("l0"),
                     ((*sae)->Encode(x) != 0).sum().item<double>() / x.size(0));
    nmse_of[i] = nmse;
    // The MLP replaced, by a hook pair written here: record the MLP input,
    // overwrite the MLP output at every non-BOS position.
    torch::Tensor input;
    HookSet replace;
    Sae& transcoder = **sae;
    replace.hooks[kIn] = CaptureInto(&input);
    replace.hooks[kOut] = [&](const torch::Tensor& a) {
      torch::Tensor rows = input.slice(1, 1).reshape({-1, 128});
      return torch::cat(
          {a.slice(1, 0, 1), transcoder.Reconstruct(rows).reshape({a.size(0), -1, 128})}, 1);
    };
    const double ce_spliced = next_token_loss(*model->Forward(*contexts, replace));
    EXPECT_NEAR(sae_result.metrics().at("ce_clean"), ce_clean, 1e-6);
    EXPECT_NEAR(sae_result.metrics().at("ce_spliced"), ce_spliced, 1e-6);
    // Even after 64 steps the transcoder stands in for the MLP better than
    // no MLP output at all (measured: 0.21 plain, 0.44 with the skip).
    EXPECT_GT(sae_result.metrics().at("loss_recovered"), 0.1);
  }
  EXPECT_EQ(result.saes(0).name(), "transcoder");
  EXPECT_EQ(result.saes(1).name(), "skip_transcoder");
  // Paulo et al. (2025): the skip connection lowers the error at equal k.
  EXPECT_LT(nmse_of[1], nmse_of[0]);
}

TEST(SubjectTranscoderTest, EvaluationsThatReadLatentsAtOneHookAreRefused) {
  ExperimentConfig config = SmallConfig();
  config.mutable_subject_sae()->mutable_ablation_eval();
  absl::StatusOr<RunnerOutcome> outcome = RunSmall(config, "refused");
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(outcome.status().message(), "target_hook_name"))
      << outcome.status();
}

}  // namespace
}  // namespace saelab
