// LM trainer: the loss against log-softmax computed independently in
// float64, the unigram baseline against a hand count, the schedule's
// shape, learning on a predictable sequence, same-seed bitwise
// determinism and kill-and-resume bitwise equality.
#include "data/subject_model/lm_trainer.h"

#include <cmath>
#include <cstdlib>
#include <map>
#include <string>

#include <torch/types.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_model.h"
#include "gtest/gtest.h"
#include "data/subject_model/subject_model_config.pb.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

Gpt2Config TinyConfig() {
  Gpt2Config config;
  config.n_layer = 2;
  config.n_head = 2;
  config.n_embd = 16;
  config.n_positions = 16;
  config.vocab_size = 11;
  return config;
}

LmTrainerConfig SmallTrainer() {
  LmTrainerConfig config;
  FillDefaults(&config);
  config.set_batch_contexts(8);
  config.set_context_length(12);
  config.set_steps(60);
  config.set_warmup_steps(5);
  config.set_lr(1e-2);
  config.set_eval_every_steps(20);
  config.set_checkpoint_every_steps(5);
  config.set_record_first_losses(10);
  return config;
}

// Contexts of a predictable stream: BOS (10), then the cycle 0..9 from a
// random phase, so the next token is determined by the previous one.
torch::Tensor CycleContexts(int64_t n, int64_t length, uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  torch::Tensor phase = torch::randint(10, {n, 1}, generator, torch::kLong);
  torch::Tensor tokens = (phase + torch::arange(length - 1, torch::kLong)).remainder(10);
  return torch::cat({torch::full({n, 1}, 10, torch::kLong), tokens}, 1);
}

std::string TempDir(const std::string& name) { return ::testing::TempDir() + name; }

TEST(LmTrainerTest, LossIsNextTokenCrossEntropyInFloat64) {
  auto model = Gpt2Model::RandomInit(TinyConfig(), 3);
  ASSERT_TRUE(model.ok()) << model.status();
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  torch::Tensor contexts = torch::randint(11, {5, 9}, generator, torch::kLong);
  auto loss = LanguageModelLoss(*model, contexts, /*batch_contexts=*/2);
  ASSERT_TRUE(loss.ok()) << loss.status();

  torch::NoGradGuard no_grad;
  torch::Tensor logits = model->Forward(contexts).value().to(torch::kFloat64);
  double total = 0;
  int64_t count = 0;
  for (int64_t b = 0; b < 5; ++b) {
    for (int64_t t = 0; t + 1 < 9; ++t) {
      torch::Tensor row = logits[b][t];
      const double max = row.max().item<double>();
      const double log_z = max + std::log((row - max).exp().sum().item<double>());
      total += log_z - row[contexts[b][t + 1].item<int64_t>()].item<double>();
      ++count;
    }
  }
  EXPECT_NEAR(*loss, total / count, 1e-5);
}

TEST(LmTrainerTest, UnigramLossMatchesHandCount) {
  // Positions 1.. of the train contexts: tokens 1, 1, 2 and 0, 1, 1.
  torch::Tensor train = torch::tensor({3, 1, 1, 2, 3, 0, 1, 1}, torch::kLong).reshape({2, 4});
  torch::Tensor val = torch::tensor({3, 1, 2}, torch::kLong).reshape({1, 3});
  // Counts + 1 over vocab 4: token0 2, token1 5, token2 2, token3 1; total 10.
  const double expected = -(std::log(5.0 / 10) + std::log(2.0 / 10)) / 2;
  EXPECT_NEAR(UnigramLoss(train, val, 4), expected, 1e-12);
}

TEST(LmTrainerTest, ScheduleWarmsUpThenDecaysToTheFloor) {
  LmTrainerConfig config = SmallTrainer();
  EXPECT_DOUBLE_EQ(LmLearningRateAt(config, 0), config.lr() / 5);
  EXPECT_DOUBLE_EQ(LmLearningRateAt(config, 4), config.lr());
  EXPECT_DOUBLE_EQ(LmLearningRateAt(config, 5), config.lr());
  EXPECT_NEAR(LmLearningRateAt(config, config.steps() - 1), config.min_lr_fraction() * config.lr(), 1e-15);
  for (int64_t step = 5; step + 1 < config.steps(); ++step) {
    EXPECT_GE(LmLearningRateAt(config, step), LmLearningRateAt(config, step + 1));
  }
}

TEST(LmTrainerTest, LearnsAPredictableSequenceFarBelowUnigram) {
  auto model = Gpt2Model::RandomInit(TinyConfig(), 1);
  ASSERT_TRUE(model.ok());
  torch::Tensor train = CycleContexts(256, 12, 1);
  torch::Tensor val = CycleContexts(64, 12, 2);
  LmTrainerConfig config = SmallTrainer();
  config.set_steps(150);
  auto result = TrainLanguageModel(config, train, val, 7, {}, &*model);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->finished);
  const double unigram = UnigramLoss(train, val, 11);
  EXPECT_NEAR(unigram, std::log(10.0), 0.05);  // ten equally frequent tokens
  ASSERT_FALSE(result->val_curve.empty());
  EXPECT_EQ(result->val_curve.back().first, 150);
  EXPECT_LT(result->val_curve.back().second, 0.25 * unigram);
  EXPECT_EQ(result->first_losses.size(), 10u);
}

std::map<std::string, torch::Tensor> Weights(const Gpt2Model& model) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, tensor] : model.NamedTensors()) out[name] = tensor.clone();
  return out;
}

void ExpectBitwiseEqual(const std::map<std::string, torch::Tensor>& a,
                        const std::map<std::string, torch::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, tensor] : a) {
    EXPECT_TRUE(torch::equal(tensor, b.at(name))) << name;
  }
}

TEST(LmTrainerTest, SameSeedSameBitsAndKillResumeIsIdentical) {
  torch::Tensor train = CycleContexts(40, 12, 1);  // 60 steps x 8 = 12 epochs
  torch::Tensor val = CycleContexts(16, 12, 2);
  LmTrainerConfig config = SmallTrainer();

  auto straight = Gpt2Model::RandomInit(TinyConfig(), 1).value();
  LmTrainOptions options;
  options.dir = TempDir("straight");
  auto first = TrainLanguageModel(config, train, val, 9, options, &straight);
  ASSERT_TRUE(first.ok()) << first.status();

  auto again = Gpt2Model::RandomInit(TinyConfig(), 1).value();
  auto second = TrainLanguageModel(config, train, val, 9, {}, &again);
  ASSERT_TRUE(second.ok());
  ExpectBitwiseEqual(Weights(straight), Weights(again));
  ASSERT_EQ(first->first_losses, second->first_losses);

  // Killed twice (once between checkpoints), resumed each time.
  LmTrainOptions killed;
  killed.dir = TempDir("killed");
  for (int64_t stop : {3, 24}) {
    auto model = Gpt2Model::RandomInit(TinyConfig(), 1).value();
    killed.stop_after_steps = stop;
    auto partial = TrainLanguageModel(config, train, val, 9, killed, &model);
    ASSERT_TRUE(partial.ok()) << partial.status();
    EXPECT_FALSE(partial->finished);
  }
  auto resumed_model = Gpt2Model::RandomInit(TinyConfig(), 1).value();
  killed.stop_after_steps = -1;
  auto resumed = TrainLanguageModel(config, train, val, 9, killed, &resumed_model);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_TRUE(resumed->finished);
  ExpectBitwiseEqual(Weights(straight), Weights(resumed_model));
  EXPECT_EQ(resumed->first_losses, first->first_losses);
  EXPECT_EQ(resumed->val_curve, first->val_curve);

  // A different config refuses the checkpoint.
  LmTrainerConfig other = config;
  other.set_lr(2e-2);
  auto model = Gpt2Model::RandomInit(TinyConfig(), 1).value();
  auto refused = TrainLanguageModel(other, train, val, 9, killed, &model);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
}

TEST(LmTrainerTest, RefusesContextsThatDoNotFit) {
  auto model = Gpt2Model::RandomInit(TinyConfig(), 1).value();
  LmTrainerConfig config = SmallTrainer();
  torch::Tensor wrong_length = CycleContexts(8, 10, 1);
  auto status = TrainLanguageModel(config, wrong_length, wrong_length, 1, {}, &model).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("[N, 12]"), std::string::npos) << status;
  torch::Tensor bad_ids = CycleContexts(8, 12, 1) + 5;
  status = TrainLanguageModel(config, bad_ids, bad_ids, 1, {}, &model).status();
  EXPECT_NE(status.message().find("outside [0, 11)"), std::string::npos) << status;
}

}  // namespace
}  // namespace saelab
