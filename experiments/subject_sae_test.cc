// subject_sae end to end on the committed reference model: the reported
// metrics equal a recomputation from the saved SAE and activations taken
// straight from the model; a second run reuses the activation store and
// reproduces the SAE bit for bit; streaming from the model (no store)
// trains too.
#include <dirent.h>
#include <sys/stat.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <string>
#include <utility>
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

// The small config with the cache under TEST_TMPDIR (and use_store as
// given), written to a file the runner can read.
std::string WriteConfig(const std::string& name, bool use_store) {
  ExperimentConfig config;
  EXPECT_TRUE(ParseTextProtoFile("experiments/testdata/subject_sae_small.textproto", &config).ok());
  config.mutable_subject_sae()->mutable_activations()->set_cache_dir(TempDir() + "/cache");
  config.mutable_subject_sae()->mutable_activations()->set_use_store(use_store);
  const std::string path = absl::StrCat(TempDir(), "/", name, ".textproto");
  EXPECT_TRUE(WriteTextProtoFile(path, config).ok());
  return path;
}

absl::StatusOr<RunnerOutcome> RunSmall(const std::string& config_path, const std::string& run_dir) {
  RunnerOptions options;
  options.config_path = config_path;
  options.run_dir = run_dir;
  options.plot = false;
  return RunExperiment(options);
}

using experiments_testing::FilesEndingWith;

class SubjectSaeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto outcome = RunSmall(WriteConfig("store", true), TempDir() + "/run_store");
    ASSERT_TRUE(outcome.ok()) << outcome.status();
    first_ = new RunnerOutcome(*outcome);
  }
  static RunnerOutcome* first_;
};
RunnerOutcome* SubjectSaeTest::first_ = nullptr;

TEST_F(SubjectSaeTest, ReportedMetricsMatchARecomputationFromTheModel) {
  ASSERT_NE(first_, nullptr);
  const ExperimentResult& result = first_->result;
  const ActivationDataResult& data = result.activation_data();
  EXPECT_EQ(data.hook_name(), "blocks.1.hook_resid_post");
  EXPECT_EQ(data.train_rows(), 256 * 31);  // BOS dropped
  EXPECT_EQ(data.eval_rows(), 32 * 31);
  ASSERT_EQ(result.saes_size(), 1);
  const SaeResult& sae_result = result.saes(0);
  EXPECT_LT(sae_result.metrics().at("nmse"), 0.5);

  // Eval activations computed here: the validation shard the run cached,
  // packed the same way, run through the model to the hook.
  auto model = Gpt2Model::LoadHfDirectory("data/models/saelab-ref-lm");
  ASSERT_TRUE(model.ok()) << model.status();
  auto contexts =
      experiments_testing::CachedValidationContexts(TempDir() + "/cache", *model, 32, 32);
  ASSERT_TRUE(contexts.ok()) << contexts.status();
  torch::NoGradGuard no_grad;
  auto cache = model->RunWithCache(*contexts, {"blocks.1.hook_resid_post"});
  ASSERT_TRUE(cache.ok()) << cache.status();
  torch::Tensor x =
      cache->at("blocks.1.hook_resid_post").slice(1, 1).reshape({-1, 128}).to(torch::kFloat64);

  auto sae = LoadSae(first_->run_dir + "/" + sae_result.checkpoint());
  ASSERT_TRUE(sae.ok()) << sae.status();
  torch::Tensor x32 = x.to(torch::kFloat32);
  torch::Tensor f = (*sae)->Encode(x32);
  torch::Tensor x_hat = (*sae)->Decode(f).to(torch::kFloat64);
  const double nmse = ((x - x_hat).pow(2).sum() / x.pow(2).sum()).item<double>();
  const double l0 = (f != 0).sum().item<double>() / x.size(0);
  EXPECT_NEAR(sae_result.metrics().at("nmse"), nmse, 1e-5 * nmse);
  EXPECT_DOUBLE_EQ(sae_result.metrics().at("l0"), l0);

  // The downstream losses, recomputed here on the same 32 validation
  // contexts: the clean model, and a hook written here (not eval/splice)
  // that replaces every non-BOS position with the SAE's reconstruction;
  // next-token losses at positions 1..L-2.
  auto next_token_loss = [&](const torch::Tensor& logits) {
    torch::Tensor lp = torch::log_softmax(logits.slice(1, 1, 31).to(torch::kFloat64), -1);
    return -lp.gather(-1, contexts->slice(1, 2, 32).unsqueeze(-1)).mean().item<double>();
  };
  HookSet splice;
  Sae& trained = **sae;
  splice.hooks["blocks.1.hook_resid_post"] = [&](const torch::Tensor& a) {
    torch::Tensor rows = a.slice(1, 1).reshape({-1, 128});
    return torch::cat({a.slice(1, 0, 1), trained.Reconstruct(rows).reshape({a.size(0), -1, 128})},
                      1);
  };
  const double ce_clean = next_token_loss(*model->Forward(*contexts));
  const double ce_spliced = next_token_loss(*model->Forward(*contexts, splice));
  EXPECT_NEAR(sae_result.metrics().at("ce_clean"), ce_clean, 1e-6);
  EXPECT_NEAR(sae_result.metrics().at("ce_spliced"), ce_spliced, 1e-6);
  EXPECT_NEAR(sae_result.metrics().at("delta_loss"), ce_spliced - ce_clean, 1e-6);
  EXPECT_EQ(sae_result.metrics().at("downstream_tokens"), 32 * 30);
}

TEST_F(SubjectSaeTest, SecondRunReusesTheStoreAndReproducesTheSae) {
  ASSERT_NE(first_, nullptr);
  const std::string store_dir = first_->result.activation_data().store_dir();
  std::vector<std::string> chunks = FilesEndingWith(store_dir, ".bin");
  ASSERT_EQ(chunks.size(), 4u);  // 256 contexts / 64 per chunk
  struct stat before;
  ASSERT_EQ(stat(chunks[0].c_str(), &before), 0);

  auto second = RunSmall(WriteConfig("store_again", true), TempDir() + "/run_store_again");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->result.activation_data().store_dir(), store_dir);
  struct stat after;
  ASSERT_EQ(stat(chunks[0].c_str(), &after), 0);
  EXPECT_EQ(before.st_mtim.tv_sec, after.st_mtim.tv_sec);
  EXPECT_EQ(before.st_mtim.tv_nsec, after.st_mtim.tv_nsec);

  const std::string name = first_->result.saes(0).checkpoint();
  auto a = ReadFile(first_->run_dir + "/" + name + "/sae.safetensors");
  auto b = ReadFile(second->run_dir + "/" + name + "/sae.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b) << "same config and seed gave different SAE bytes";
}

TEST_F(SubjectSaeTest, StreamingFromTheModelTrainsWithoutAStore) {
  auto outcome = RunSmall(WriteConfig("streaming", false), TempDir() + "/run_streaming");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  EXPECT_TRUE(outcome->result.activation_data().store_dir().empty());
  ASSERT_EQ(outcome->result.saes_size(), 1);
  // The same recipe on the same tokens' activations, read from the model
  // rather than from the store (so in another order), reconstructs about
  // as well as the store run: 0.2048 against 0.2041 when written. Wrong
  // activations (another hook, another scaling) or fewer of them would
  // not. (Its L0 is TopK's k either way, which says nothing.)
  ASSERT_NE(first_, nullptr);
  EXPECT_NEAR(outcome->result.saes(0).metrics().at("nmse"),
              first_->result.saes(0).metrics().at("nmse"), 0.01);
}

// With several hooks, the first hook's harvest writes every hook's store in
// one pass over the model: the second hook's store is complete before the
// first hook's SAE is trained.
TEST(SubjectSaeHooksTest, EveryHooksStoreIsHarvestedInTheFirstPass) {
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProtoFile("experiments/testdata/subject_sae_small.textproto", &config).ok());
  SubjectSaeConfig& subject = *config.mutable_subject_sae();
  subject.mutable_activations()->set_cache_dir(TempDir() + "/hooks_cache");
  subject.add_hooks("blocks.1.hook_resid_post");
  subject.add_hooks("blocks.0.hook_mlp_out");
  const std::string path = TempDir() + "/hooks.textproto";
  ASSERT_TRUE(WriteTextProtoFile(path, config).ok());
  auto outcome = RunSmall(path, TempDir() + "/run_hooks");
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  ASSERT_EQ(outcome->result.saes_size(), 2);
  EXPECT_EQ(outcome->result.saes(1).hook_name(), "blocks.0.hook_mlp_out");
  // Two stores, and the later hook's newest chunk predates the first SAE.
  std::vector<std::string> stores;
  if (DIR* d = opendir((TempDir() + "/hooks_cache/activations").c_str())) {
    while (dirent* entry = readdir(d)) {
      if (entry->d_name[0] != '.') stores.push_back(TempDir() + "/hooks_cache/activations/" + entry->d_name);
    }
    closedir(d);
  }
  ASSERT_EQ(stores.size(), 2u);
  struct stat first_sae;
  ASSERT_EQ(stat((outcome->run_dir + "/" + outcome->result.saes(0).checkpoint() + "/sae.safetensors")
                     .c_str(),
                 &first_sae),
            0);
  for (const std::string& store : stores) {
    for (const std::string& chunk : FilesEndingWith(store, ".bin")) {
      struct stat written;
      ASSERT_EQ(stat(chunk.c_str(), &written), 0);
      EXPECT_LT(std::make_pair(written.st_mtim.tv_sec, written.st_mtim.tv_nsec),
                std::make_pair(first_sae.st_mtim.tv_sec, first_sae.st_mtim.tv_nsec))
          << chunk;
    }
  }
}

}  // namespace
}  // namespace saelab
