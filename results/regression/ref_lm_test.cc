// The committed reference subject model (data/models/saelab-ref-lm) is the
// one //experiments:train_subject_lm produces from its committed config:
// - the files hash to what the training run recorded;
// - retraining from the same config and seed learns the same vocabulary,
//   byte for byte, and the same losses for the first steps, bit for bit;
// - the model is far better than a unigram model on a strided sample of
//   the validation contexts, measured here, and close to the validation
//   loss it reports over all of them.
//
// Bitwise equality across machines needs the same sgemm kernel: BUILD pins
// OpenBLAS to its AVX2 kernel for this test, as experiments/main.cc does for
// the training binary.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/token_shard.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/lm_trainer.h"
#include "experiments/train_subject_lm.h"
#include "gtest/gtest.h"
#include "data/subject_model/subject_model_config.pb.h"
#include "experiments/experiment_config.pb.h"
#include "harness/file_io.h"
#include "harness/result.pb.h"
#include "harness/seed.h"
#include "harness/sha256.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

constexpr char kModelDir[] = "data/models/saelab-ref-lm";
constexpr int kRetrainSteps = 5;

std::string TempDir(const std::string& name) { return ::testing::TempDir() + name; }

class RefLmTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ASSERT_TRUE(ParseTextProtoFile(absl::StrCat(kModelDir, "/config.textproto"), &config_).ok());
    ASSERT_TRUE(config_.has_train_subject_lm());
    auto text = ReadFile(absl::StrCat(kModelDir, "/result.pb"));
    ASSERT_TRUE(text.ok()) << text.status();
    ASSERT_TRUE(result_.ParseFromString(*text));
  }

  static ExperimentConfig config_;
  static ExperimentResult result_;
};
ExperimentConfig RefLmTest::config_;
ExperimentResult RefLmTest::result_;

TEST_F(RefLmTest, FilesHashToWhatTrainingRecorded) {
  const LanguageModelResult& lm = result_.language_model();
  auto model_sha = Sha256File(absl::StrCat(kModelDir, "/model.safetensors"));
  ASSERT_TRUE(model_sha.ok()) << model_sha.status();
  EXPECT_EQ(*model_sha, lm.model_sha256());
  auto tokenizer = BpeTokenizer::FromDir(kModelDir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->Sha256(), lm.tokenizer_sha256());
  EXPECT_EQ(tokenizer->vocab_size(), lm.vocab_size());
  auto model = Gpt2Model::LoadHfDirectory(kModelDir);
  ASSERT_TRUE(model.ok()) << model.status();
  const SubjectModelShape& shape = config_.train_subject_lm().model();
  EXPECT_EQ(model->config().n_layer, shape.n_layer());
  EXPECT_EQ(model->config().n_embd, shape.n_embd());
  int64_t n_parameters = 0;
  for (const torch::Tensor& param : model->Parameters()) n_parameters += param.numel();
  EXPECT_EQ(n_parameters, lm.n_parameters());
}

TEST_F(RefLmTest, RetrainingReproducesVocabularyAndFirstLossesBitwise) {
  const std::string run_dir = TempDir("retrain");
  ASSERT_TRUE(MakeDirs(run_dir).ok());
  SeedTree seeds(config_.seed());
  ExperimentResult retrained;
  TrainSubjectLmOptions options;
  options.stop_after_steps = kRetrainSteps;
  absl::Status status = RunTrainSubjectLm(config_.train_subject_lm(), run_dir, &seeds, &retrained, options);
  ASSERT_TRUE(status.ok()) << status;

  for (const char* file : {"vocab.json", "merges.txt"}) {
    auto committed = ReadFile(absl::StrCat(kModelDir, "/", file));
    auto again = ReadFile(absl::StrCat(run_dir, "/model/", file));
    ASSERT_TRUE(committed.ok() && again.ok()) << file;
    EXPECT_TRUE(*committed == *again) << file << " differs from the committed one";
  }

  const auto& committed = result_.language_model().first_losses();
  const auto& again = retrained.language_model().first_losses();
  ASSERT_GE(committed.size(), kRetrainSteps);
  ASSERT_EQ(again.size(), kRetrainSteps);
  for (int i = 0; i < kRetrainSteps; ++i) {
    uint32_t a, b;
    std::memcpy(&a, &committed[i], sizeof(a));
    std::memcpy(&b, &again[i], sizeof(b));
    EXPECT_EQ(a, b) << "step " << i << ": committed loss " << committed[i] << ", retrained "
                    << again[i];
  }

  // The validation shard the retraining wrote: the committed model's loss
  // on its first contexts, beside a unigram model of the training shard.
  auto val = TokenShard::Open(run_dir + "/shards/val.tokshard");
  auto train = TokenShard::Open(run_dir + "/shards/train.tokshard");
  ASSERT_TRUE(val.ok() && train.ok());
  auto model = Gpt2Model::LoadHfDirectory(kModelDir);
  ASSERT_TRUE(model.ok());
  const int64_t length = config_.train_subject_lm().trainer().context_length();
  const int32_t eot = static_cast<int32_t>(model->config().eos_token_id);
  auto val_contexts = PackContexts(*val, length, eot, eot);
  auto train_contexts = PackContexts(*train, length, eot, eot);
  ASSERT_TRUE(val_contexts.ok() && train_contexts.ok());
  // Every k-th context, so each corpus is in the sample in proportion.
  const int64_t stride = std::max<int64_t>(1, val_contexts->size(0) / 512);
  torch::Tensor sample = val_contexts->slice(0, 0, val_contexts->size(0), stride);
  auto loss = LanguageModelLoss(*model, sample);
  ASSERT_TRUE(loss.ok()) << loss.status();
  const double unigram = UnigramLoss(*train_contexts, sample, model->config().vocab_size);
  EXPECT_LT(*loss, unigram - 1.0) << "model " << *loss << " vs unigram " << unigram;
  EXPECT_NEAR(*loss, result_.language_model().val_loss(), 0.1);
}

}  // namespace
}  // namespace saelab
