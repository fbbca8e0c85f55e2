// train_subject_lm end to end on a small config: the run directory holds a
// loadable HF model that beats the unigram baseline (measured here on the
// validation contexts), the plot and the provenance; a run killed mid-way
// and resumed writes the same model bytes as an uninterrupted one.
#include <cstdlib>
#include <string>

#include <torch/types.h>

#include "data/text/bpe_tokenizer.h"
#include "data/text/token_shard.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/lm_trainer.h"
#include "experiments/runner.h"
#include "experiments/train_subject_lm.h"
#include "gtest/gtest.h"
#include "experiments/experiment_config.pb.h"
#include "harness/file_io.h"
#include "harness/result.pb.h"
#include "harness/seed.h"
#include "harness/sha256.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

constexpr char kConfig[] = "experiments/testdata/train_subject_lm_small.textproto";

using ::testing::TempDir;

TEST(TrainSubjectLmTest, WritesALoadableModelThatBeatsUnigram) {
  RunnerOptions options;
  options.config_path = kConfig;
  options.run_dir = TempDir() + "/run";
  auto outcome = RunExperiment(options);
  ASSERT_TRUE(outcome.ok()) << outcome.status();
  const LanguageModelResult& lm = outcome->result.language_model();
  EXPECT_EQ(outcome->result.experiment(), "train_subject_lm");
  EXPECT_EQ(lm.steps(), 300);
  EXPECT_EQ(lm.first_losses_size(), 5);
  EXPECT_NEAR(lm.uniform_val_loss(), std::log(static_cast<double>(lm.vocab_size())), 1e-12);
  EXPECT_LT(lm.val_loss(), lm.unigram_val_loss() - 0.5);
  for (const char* file : {"config.textproto", "result.pb", "train_subject_lm.png", "model/config.json",
                           "model/model.safetensors", "model/vocab.json", "model/merges.txt"}) {
    EXPECT_TRUE(PathExists(outcome->run_dir + "/" + file)) << file;
  }

  const std::string model_dir = outcome->run_dir + "/model";
  auto model = Gpt2Model::LoadHfDirectory(model_dir);
  ASSERT_TRUE(model.ok()) << model.status();
  auto tokenizer = BpeTokenizer::FromDir(model_dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), model->config().vocab_size);
  EXPECT_EQ(tokenizer->Sha256(), lm.tokenizer_sha256());
  auto model_sha = Sha256File(model_dir + "/model.safetensors");
  ASSERT_TRUE(model_sha.ok());
  EXPECT_EQ(*model_sha, lm.model_sha256());

  // The reported loss, recomputed from the saved model and the cached shard.
  auto val = TokenShard::Open(outcome->run_dir + "/shards/val.tokshard");
  ASSERT_TRUE(val.ok()) << val.status();
  const int32_t eot = static_cast<int32_t>(model->config().eos_token_id);
  auto contexts = PackContexts(*val, 32, eot, eot);
  ASSERT_TRUE(contexts.ok());
  auto loss = LanguageModelLoss(*model, *contexts);
  ASSERT_TRUE(loss.ok());
  EXPECT_NEAR(*loss, lm.val_loss(), 1e-6 * lm.val_loss());

  const Provenance& provenance = outcome->result.provenance();
  EXPECT_GE(provenance.inputs_size(), 5);  // corpus, tokenizer, two shards, model
}

TEST(TrainSubjectLmTest, KilledAndResumedRunWritesTheSameModel) {
  ExperimentConfig config;
  ASSERT_TRUE(ParseTextProtoFile(kConfig, &config).ok());
  FillDefaults(&config);
  auto train = [&](const std::string& dir, int64_t stop_after) -> absl::StatusOr<ExperimentResult> {
    SeedTree seeds(config.seed());
    ExperimentResult result;
    TrainSubjectLmOptions options;
    options.stop_after_steps = stop_after;
    absl::Status status = RunTrainSubjectLm(config.train_subject_lm(), dir, &seeds, &result, options);
    if (!status.ok()) return status;
    return result;
  };
  const std::string straight = TempDir() + "/straight";
  const std::string killed = TempDir() + "/killed";
  ASSERT_TRUE(MakeDirs(straight).ok() && MakeDirs(killed).ok());
  ASSERT_TRUE(train(straight, -1).ok());
  auto partial = train(killed, 127);  // between checkpoints at 100 and 150
  ASSERT_TRUE(partial.ok()) << partial.status();
  EXPECT_FALSE(PathExists(killed + "/model/model.safetensors"));
  auto resumed = train(killed, -1);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  auto a = ReadFile(straight + "/model/model.safetensors");
  auto b = ReadFile(killed + "/model/model.safetensors");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(*a == *b) << "a resumed run wrote different model bytes";
}

}  // namespace
}  // namespace saelab
