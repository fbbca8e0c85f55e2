#include "sae/trainer.h"

#include <ATen/Parallel.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <torch/utils.h>

#include "sae/internal/test_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/safetensors.h"
#include "harness/train_state.h"
#include "sae/batch_topk.h"
#include "sae/checkpoint.h"
#include "absl/strings/str_cat.h"
#include "data/activations/synthetic_features.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::TempDir;

std::unique_ptr<SyntheticFeatureSource> Source() { return SmallSyntheticSource(); }

SaeConfig TopKConfigForTest() {
  SaeConfig config;
  config.set_name("topk_test");
  config.set_n_latents(64);
  config.mutable_topk()->set_k(3);
  TrainerConfig* trainer = config.mutable_trainer();
  trainer->set_batch_size(128);
  trainer->set_total_tokens(128 * 60);
  trainer->set_checkpoint_every_steps(10);
  trainer->set_dead_after_tokens(128 * 5);  // AuxK engages within the run
  trainer->set_init_sample_tokens(512);
  trainer->set_log_every_steps(1000);
  return config;
}

SaeConfig ReluL1ConfigForTest() {
  SaeConfig config = TopKConfigForTest();
  config.set_name("relu_test");
  config.mutable_relu_l1()->set_l1_coefficient(1.0);
  return config;
}

void ExpectSameTensors(Sae& a, Sae& b) {
  auto ta = a.NamedTensors();
  auto tb = b.NamedTensors();
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, tensor] : ta) {
    EXPECT_TRUE(torch::equal(tensor, tb.at(name))) << name;
  }
}

// The synthetic source with one value replaced in the batch of one step.
class PoisonedSource : public ActivationSource {
 public:
  PoisonedSource(int64_t step, float value) : step_(step), value_(value), inner_(Source()) {}
  int64_t d_in() const override { return inner_->d_in(); }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override {
    absl::StatusOr<torch::Tensor> batch = inner_->TrainBatch(step, batch_size);
    if (batch.ok() && step == step_) (*batch)[7][2] = value_;
    return batch;
  }
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override {
    return inner_->InitSample(tokens);
  }

 private:
  int64_t step_;
  float value_;
  std::unique_ptr<SyntheticFeatureSource> inner_;
};

TEST(TrainerTest, NonFiniteActivationsOrLossStopTrainingWithAClearError) {
  const std::string dir = TempDir() + "/poisoned";
  TrainOptions options;
  options.dir = dir;
  PoisonedSource nan(/*step=*/23, std::nanf(""));
  absl::StatusOr<TrainResult> result = TrainSae(TopKConfigForTest(), nan, 1, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(result.status().message(),
            "activation source returned a non-finite value (nan) in the batch of step 23 at row "
            "7, column 2; the activations must be finite");
  // A finite but huge value overflows the loss: stopped before the update,
  // and the checkpoint of step 20 is what the directory holds.
  PoisonedSource huge(/*step=*/25, 3e38f);
  result = TrainSae(TopKConfigForTest(), huge, 1, options);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(result.status().message().find("SAE 'topk_test': the training loss is nan at step 25"),
            std::string::npos)
      << result.status();
  // Resuming with clean data finishes from the step-20 checkpoint exactly as
  // an uninterrupted run does.
  auto clean = Source();
  result = TrainSae(TopKConfigForTest(), *clean, 1, options);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->resumed);
  auto reference_source = Source();
  TrainOptions fresh;
  fresh.dir = TempDir() + "/unpoisoned";
  absl::StatusOr<TrainResult> reference = TrainSae(TopKConfigForTest(), *reference_source, 1, fresh);
  ASSERT_TRUE(reference.ok());
  ExpectSameTensors(*result->sae, *reference->sae);
}

TEST(TrainerTest, SameSeedGivesBitIdenticalSaes) {
  for (const SaeConfig& config : {TopKConfigForTest(), ReluL1ConfigForTest()}) {
    auto source = Source();
    auto a = TrainSae(config, *source, 5);
    auto b = TrainSae(config, *source, 5);
    auto c = TrainSae(config, *source, 6);
    ASSERT_TRUE(a.ok() && b.ok() && c.ok());
    ExpectSameTensors(*a->sae, *b->sae);
    EXPECT_FALSE(torch::equal(a->sae->W_dec, c->sae->W_dec));
  }
}

// BatchTopK's inference threshold is set after the last step from the
// run's last training batches under the final weights; the weights are the
// moving-average run's.
TEST(TrainerTest, BatchTopKCalibratesItsThresholdOnTheLastBatches) {
  SaeConfig config = TopKConfigForTest();
  config.set_name("batch_topk_test");
  config.mutable_batch_topk()->set_k(3);
  config.mutable_batch_topk()->set_threshold_calibration_batches(0);
  auto source = Source();
  auto tracked = TrainSae(config, *source, 5);
  config.mutable_batch_topk()->set_threshold_calibration_batches(4);
  auto calibrated = TrainSae(config, *source, 5);
  ASSERT_TRUE(tracked.ok() && calibrated.ok());
  EXPECT_TRUE(torch::equal(tracked->sae->W_dec, calibrated->sae->W_dec));
  auto& sae = static_cast<BatchTopKSae&>(*calibrated->sae);
  // Brute force: each batch's (3 * 128)-th largest ReLU(z), z in float64.
  const int64_t steps = 60, batch_size = 128;
  double sum = 0;
  for (int64_t step = steps - 4; step < steps; ++step) {
    const torch::Tensor x =
        source->TrainBatch(step, batch_size).value().to(torch::kFloat64) * sae.input_scale();
    const torch::Tensor z = torch::relu(torch::addmm(sae.b_enc.detach().to(torch::kFloat64),
                                                     x - sae.b_dec.detach().to(torch::kFloat64),
                                                     sae.W_enc.detach().to(torch::kFloat64)));
    sum += std::get<0>(z.flatten().topk(3 * batch_size)).min().item<double>();
  }
  EXPECT_NEAR(sae.threshold(), sum / 4, 1e-5 * sum / 4);
  EXPECT_GT(std::abs(sae.threshold() - static_cast<BatchTopKSae&>(*tracked->sae).threshold()),
            1e-3 * sum / 4);
}

TEST(TrainerTest, ACallersNoGradGuardDoesNotChangeTraining) {
  auto source = Source();
  auto free = TrainSae(TopKConfigForTest(), *source, 5);
  ASSERT_TRUE(free.ok()) << free.status();
  torch::NoGradGuard no_grad;
  auto guarded = TrainSae(TopKConfigForTest(), *source, 5);
  ASSERT_TRUE(guarded.ok()) << guarded.status();
  ExpectSameTensors(*free->sae, *guarded->sae);
  EXPECT_FALSE(torch::GradMode::is_enabled());  // the caller's mode is restored
}

TEST(TrainerTest, KillAndResumeGivesTheBitIdenticalFinalCheckpoint) {
  for (const SaeConfig& config : {TopKConfigForTest(), ReluL1ConfigForTest()}) {
    auto source = Source();
    std::string straight = TempDir() + "/straight_" + config.name();
    std::string killed = TempDir() + "/killed_" + config.name();
    ASSERT_TRUE(TrainSae(config, *source, 3, {straight}).ok());
    // "Kill" after 25 steps: checkpoints at steps 10 and 20 exist, 21-25 are lost.
    TrainOptions kill;
    kill.dir = killed;
    kill.stop_after_steps = 25;
    auto partial = TrainSae(config, *source, 3, kill);
    ASSERT_TRUE(partial.ok()) << partial.status();
    EXPECT_FALSE(partial->finished);
    EXPECT_FALSE(HasSavedSae(killed));
    // A second kill, right after resuming, loses nothing either.
    kill.stop_after_steps = 3;
    ASSERT_TRUE(TrainSae(config, *source, 3, kill).ok());
    auto resumed = TrainSae(config, *source, 3, {killed});
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_TRUE(resumed->resumed);
    EXPECT_TRUE(resumed->finished);
    EXPECT_EQ(*ReadFile(straight + "/sae.safetensors"), *ReadFile(killed + "/sae.safetensors"))
        << config.name();
    // The training state is gone once the final SAE exists.
    EXPECT_FALSE(PathExists(killed + "/train_state.safetensors"));
  }
}

TEST(TrainerTest, KillBeforeTheFirstCheckpointRestartsFromScratchIdentically) {
  auto source = Source();
  SaeConfig config = TopKConfigForTest();
  std::string straight = TempDir() + "/early_straight";
  std::string killed = TempDir() + "/early_killed";
  ASSERT_TRUE(TrainSae(config, *source, 4, {straight}).ok());
  TrainOptions kill;
  kill.dir = killed;
  kill.stop_after_steps = 4;
  ASSERT_TRUE(TrainSae(config, *source, 4, kill).ok());
  auto resumed = TrainSae(config, *source, 4, {killed});
  ASSERT_TRUE(resumed.ok());
  EXPECT_FALSE(resumed->resumed);
  EXPECT_EQ(*ReadFile(straight + "/sae.safetensors"), *ReadFile(killed + "/sae.safetensors"));
}

TEST(TrainerTest, RerunLoadsTheFinishedSaeInsteadOfTraining) {
  auto source = Source();
  std::string dir = TempDir() + "/finished";
  auto first = TrainSae(TopKConfigForTest(), *source, 8, {dir});
  ASSERT_TRUE(first.ok());
  auto second = TrainSae(TopKConfigForTest(), *source, 8, {dir});
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->loaded_from_disk);
  ExpectSameTensors(*first->sae, *second->sae);
}

// A curve point at each progress line (every log_every_steps-th step) and
// the last step, the same whether the run was killed and resumed or loaded
// finished from disk.
TEST(TrainerTest, TrainingCurveSurvivesKillResumeAndReload) {
  auto source = Source();
  SaeConfig config = TopKConfigForTest();
  config.mutable_trainer()->set_log_every_steps(7);  // steps 0, 7, ..., 56 and 59
  std::string straight = TempDir() + "/curve_straight";
  std::string killed = TempDir() + "/curve_killed";
  auto a = TrainSae(config, *source, 9, {straight});
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->curve.size(), 10u);
  for (size_t i = 0; i + 1 < a->curve.size(); ++i) EXPECT_EQ(a->curve[i].tokens, 128 * (7 * i + 1));
  EXPECT_EQ(a->curve.back().tokens, 128 * 60);
  EXPECT_EQ(a->curve.back().loss, a->last_terms.at("loss"));
  TrainOptions kill;
  kill.dir = killed;
  kill.stop_after_steps = 33;  // checkpoint at 30: points 0..28 kept, 35 lost
  ASSERT_TRUE(TrainSae(config, *source, 9, kill).ok());
  auto resumed = TrainSae(config, *source, 9, {killed});
  auto loaded = TrainSae(config, *source, 9, {straight});
  ASSERT_TRUE(resumed.ok() && loaded.ok()) << resumed.status() << loaded.status();
  ASSERT_TRUE(resumed->resumed && loaded->loaded_from_disk);
  for (const TrainResult* other : {&*resumed, &*loaded}) {
    ASSERT_EQ(other->curve.size(), a->curve.size());
    for (size_t i = 0; i < a->curve.size(); ++i) {
      EXPECT_EQ(other->curve[i].tokens, a->curve[i].tokens);
      EXPECT_EQ(other->curve[i].loss, a->curve[i].loss);
      EXPECT_EQ(other->curve[i].dead_fraction, a->curve[i].dead_fraction);
    }
  }
}

// The curve's dead fraction against the definition, recomputed here: with a
// learning rate of 1e-12 the weights stay put, so the trained SAE fires on
// each step's batch as the training one did; a latent is dead once it has
// not fired for dead_after_tokens (5 batches).
TEST(TrainerTest, TrainingCurveDeadFractionMatchesTheDefinition) {
  auto source = Source();
  SaeConfig config = TopKConfigForTest();
  // Batches of 8 tokens: 24 firings per step among 64 latents, so some go
  // unused for 5 steps.
  constexpr int64_t kBatch = 8;
  TrainerConfig* trainer = config.mutable_trainer();
  trainer->set_batch_size(kBatch);
  trainer->set_total_tokens(kBatch * 60);
  trainer->set_dead_after_tokens(kBatch * 5);
  trainer->set_lr(1e-12);
  trainer->set_log_every_steps(1);
  auto trained = TrainSae(config, *source, 2);
  ASSERT_TRUE(trained.ok()) << trained.status();
  ASSERT_EQ(trained->curve.size(), 60u);
  torch::NoGradGuard no_grad;
  torch::Tensor since = torch::zeros({64}, torch::kInt64);
  double most_dead = 0;
  for (int64_t step = 0; step < 60; ++step) {
    auto batch = source->TrainBatch(step, kBatch);
    ASSERT_TRUE(batch.ok());
    torch::Tensor fired = (trained->sae->Encode(*batch) != 0).any(0);
    since.add_(kBatch).masked_fill_(fired, 0);
    const double dead = (since >= kBatch * 5).to(torch::kFloat64).mean().item<double>();
    EXPECT_EQ(trained->curve[step].dead_fraction, dead) << "step " << step;
    most_dead = std::max(most_dead, dead);
  }
  EXPECT_GT(most_dead, 0.1);  
}

TEST(TrainerTest, ACheckpointOfAnotherConfigIsRefused) {
  auto source = Source();
  std::string dir = TempDir() + "/mismatch";
  TrainOptions kill;
  kill.dir = dir;
  kill.stop_after_steps = 15;
  ASSERT_TRUE(TrainSae(TopKConfigForTest(), *source, 1, kill).ok());
  SaeConfig other = TopKConfigForTest();
  other.mutable_topk()->set_k(4);
  auto refused = TrainSae(other, *source, 1, {dir});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(refused.status().message()).find("train_state.safetensors"), std::string::npos);
}

// Kills a run after `steps` steps (checkpoints every 10) in `dir`.
void TrainAndKill(const std::string& dir, int64_t steps) {
  auto source = Source();
  TrainOptions kill;
  kill.dir = dir;
  kill.stop_after_steps = steps;
  ASSERT_TRUE(TrainSae(TopKConfigForTest(), *source, 1, kill).ok());
}

std::string UninterruptedSae(const std::string& name) {
  auto source = Source();
  const std::string dir = TempDir() + "/" + name;
  EXPECT_TRUE(TrainSae(TopKConfigForTest(), *source, 1, {dir}).ok());
  return *ReadFile(dir + "/sae.safetensors");
}

TEST(TrainerTest, ACorruptedTrainStateIsAnErrorUntilRecoveryFallsBackToThePreviousCheckpoint) {
  const std::string dir = TempDir() + "/corrupted_state";
  TrainAndKill(dir, 25);  // checkpoints after steps 10 (previous) and 20 (latest)
  const std::string state = dir + "/train_state.safetensors";
  ASSERT_TRUE(PathExists(dir + "/train_state.previous.safetensors"));
  std::string bytes = *ReadFile(state);
  bytes[bytes.size() - 100] ^= 0x04;  // one bit of the data
  ASSERT_TRUE(AtomicWriteFile(state, bytes).ok());

  auto source = Source();
  auto refused = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr(state), HasSubstr("checksum"), HasSubstr("--recover_train_state")));

  SetRecoverCorruptTrainState(true);
  auto recovered = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  SetRecoverCorruptTrainState(false);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_TRUE(recovered->resumed);
  EXPECT_EQ(*ReadFile(dir + "/sae.safetensors"), UninterruptedSae("corrupted_reference"));
  EXPECT_EQ(*ReadFile(state + ".corrupt"), bytes);  // set aside, not deleted
}

TEST(TrainerTest, ATruncatedTrainStateWithoutAPreviousOneRecoversByStartingOver) {
  const std::string dir = TempDir() + "/truncated_state";
  TrainAndKill(dir, 15);  // one checkpoint, after step 10
  const std::string state = dir + "/train_state.safetensors";
  ASSERT_FALSE(PathExists(dir + "/train_state.previous.safetensors"));
  const std::string bytes = *ReadFile(state);
  ASSERT_TRUE(AtomicWriteFile(state, bytes.substr(0, bytes.size() / 2)).ok());
  auto source = Source();
  EXPECT_EQ(TrainSae(TopKConfigForTest(), *source, 1, {dir}).status().code(),
            absl::StatusCode::kDataLoss);
  SetRecoverCorruptTrainState(true);
  auto restarted = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  SetRecoverCorruptTrainState(false);
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  EXPECT_FALSE(restarted->resumed);
  EXPECT_EQ(*ReadFile(dir + "/sae.safetensors"), UninterruptedSae("truncated_reference"));
}

TEST(TrainerTest, AKillBetweenSettingThePreviousAsideAndWritingTheNewResumesFromThePrevious) {
  const std::string dir = TempDir() + "/between_writes";
  TrainAndKill(dir, 25);
  // What a kill inside SaveTrainState leaves: the previous, no latest.
  ASSERT_EQ(std::remove((dir + "/train_state.safetensors").c_str()), 0);
  auto source = Source();
  auto resumed = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_EQ(*ReadFile(dir + "/sae.safetensors"), UninterruptedSae("between_reference"));
  EXPECT_FALSE(PathExists(dir + "/train_state.previous.safetensors"));
}

TEST(TrainerTest, ATrainStateWhoseNextStepIsPastTheEndIsRefused) {
  const std::string dir = TempDir() + "/next_step_past_end";
  TrainAndKill(dir, 15);
  const std::string state = dir + "/train_state.safetensors";
  // Written with a valid checksum: only the value is wrong.
  SafetensorsContents contents = *ReadSafetensors(state);
  contents.tensors["loop.next_step"] = torch::tensor(int64_t{1000}, torch::kInt64);
  ASSERT_TRUE(WriteSafetensors(state, contents.tensors, contents.metadata).ok());
  auto source = Source();
  auto refused = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr(state), HasSubstr("loop.next_step is 1000, outside 0..60")));
  EXPECT_FALSE(HasSavedSae(dir));
}

// Every architecture trains to the same bits on 1 and 2 intra-op threads,
// through its sparse step and through the dense autograd path, with the
// gradient clip active: at these shapes (1024 x 64 batches, 512 x 64
// weights) ATen would split a whole-tensor sum between the threads.
TEST(TrainerTest, EveryArchitectureTrainsToTheSameBitsOnOneAndTwoThreads) {
  SyntheticDataConfig data;
  data.set_d(64);
  data.set_n_features(256);
  auto source = SyntheticFeatureSource::Create(data, 3);
  ASSERT_TRUE(source.ok());
  auto base = [](const char* name, double clip) {
    SaeConfig config;
    config.set_name(name);
    config.set_n_latents(512);
    TrainerConfig* trainer = config.mutable_trainer();
    trainer->set_batch_size(1024);
    trainer->set_total_tokens(1024 * 8);
    trainer->set_dead_after_tokens(1024 * 3);  // AuxK engages
    trainer->set_init_sample_tokens(2048);
    trainer->set_log_every_steps(1000);
    trainer->set_grad_clip_norm(clip);
    return config;
  };
  std::vector<SaeConfig> configs;
  for (double clip : {1.0, 1e-3}) {  // 1e-3: every step is clipped
    SaeConfig c = base("topk", clip);
    c.mutable_topk()->set_k(8);
    configs.push_back(c);
    c = base("batch_topk", clip);
    c.mutable_batch_topk()->set_k(8);
    configs.push_back(c);
    c = base("matryoshka", clip);
    c.mutable_matryoshka_batch_topk()->mutable_batch_topk()->set_k(8);
    configs.push_back(c);
    c = base("relu_l1_dense", clip);
    c.mutable_relu_l1()->set_sparse_step(false);
    configs.push_back(c);
    c = base("relu_l1", clip);
    c.mutable_relu_l1();
    configs.push_back(c);
    c = base("jumprelu_dense", clip);
    c.mutable_jumprelu()->set_sparse_step(false);
    configs.push_back(c);
    c = base("gated", clip);
    c.mutable_gated();
    configs.push_back(c);
  }
  const int threads = at::get_num_threads();
  for (const SaeConfig& config : configs) {
    at::set_num_threads(1);
    auto one = TrainSae(config, **source, 1);
    at::set_num_threads(2);
    auto two = TrainSae(config, **source, 1);
    at::set_num_threads(threads);
    ASSERT_TRUE(one.ok() && two.ok()) << config.name();
    SCOPED_TRACE(absl::StrCat(config.name(), " clip ", config.trainer().grad_clip_norm()));
    ExpectSameTensors(*one->sae, *two->sae);
  }
}

TEST(TrainerTest, ResumingUnderAnotherThreadCountIsRefusedNamingBoth) {
  const int threads = at::get_num_threads();
  const std::string dir = TempDir() + "/threads_changed";
  at::set_num_threads(1);
  TrainAndKill(dir, 15);
  at::set_num_threads(2);
  auto source = Source();
  auto refused = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  at::set_num_threads(1);
  auto resumed = TrainSae(TopKConfigForTest(), *source, 1, {dir});
  at::set_num_threads(threads);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(refused.status().message()),
              AllOf(HasSubstr("train_state.safetensors"), HasSubstr("torch_threads=1"),
                    HasSubstr("torch_threads=2")));
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed);
}

TEST(TrainerTest, TrainingReducesTheLossAndSetsTheInputScale) {
  auto source = Source();
  SaeConfig config = TopKConfigForTest();
  config.mutable_trainer()->set_total_tokens(128 * 300);
  TrainOptions first_step;
  first_step.stop_after_steps = 1;
  auto start = TrainSae(config, *source, 2, first_step);
  auto trained = TrainSae(config, *source, 2);
  ASSERT_TRUE(start.ok() && trained.ok());
  // Scaled inputs have E||x|| = sqrt(d) = 4 on the init sample.
  torch::Tensor sample = *source->InitSample(512);
  double mean_norm = (sample * trained->sae->input_scale()).norm(2, {1}).mean().item<double>();
  EXPECT_NEAR(mean_norm, 4.0, 1e-4);
  EXPECT_LT(trained->last_terms.at("nmse"), 0.5 * start->last_terms.at("nmse"));
}

TEST(TrainerTest, LearningRateDecaysLinearlyOverTheLastFifthToZero) {
  TrainerConfig trainer;
  trainer.set_lr(1.0);
  trainer.set_lr_decay_fraction(0.2);
  EXPECT_DOUBLE_EQ(LearningRateAt(trainer, 0, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(trainer, 80, 100), 1.0);
  EXPECT_DOUBLE_EQ(LearningRateAt(trainer, 90, 100), 0.5);
  EXPECT_DOUBLE_EQ(LearningRateAt(trainer, 99, 100), 0.05);
}

TEST(TrainerTest, InvalidConfigIsAnErrorNamingTheSae) {
  auto source = Source();
  SaeConfig config = TopKConfigForTest();
  config.mutable_topk()->set_k(1000);
  auto result = TrainSae(config, *source, 1);
  ASSERT_FALSE(result.ok());
  EXPECT_NE(std::string(result.status().message()).find("topk_test"), std::string::npos);
}

}  // namespace
}  // namespace saelab

namespace saelab {
namespace {

// The synthetic source, counting the batches read.
class CountingSource : public ActivationSource {
 public:
  CountingSource() : inner_(Source()) {}
  int64_t d_in() const override { return inner_->d_in(); }
  absl::StatusOr<torch::Tensor> TrainBatch(int64_t step, int64_t batch_size) override {
    ++batches_read;
    return inner_->TrainBatch(step, batch_size);
  }
  absl::StatusOr<torch::Tensor> InitSample(int64_t tokens) override {
    return inner_->InitSample(tokens);
  }
  int64_t batches_read = 0;

 private:
  std::unique_ptr<SyntheticFeatureSource> inner_;
};

// Four SAEs of different architectures, sizes and lengths for one stream.
std::vector<TrainJob> JointJobs(const std::string& dir) {
  SaeConfig topk = TopKConfigForTest();
  SaeConfig relu = ReluL1ConfigForTest();
  SaeConfig batch_topk = TopKConfigForTest();
  batch_topk.set_name("batch_topk_joint");
  batch_topk.mutable_batch_topk()->set_k(3);
  SaeConfig short_wide = TopKConfigForTest();
  short_wide.set_name("topk_short_wide");
  short_wide.set_n_latents(96);
  short_wide.mutable_trainer()->set_total_tokens(128 * 35);
  std::vector<TrainJob> jobs;
  uint64_t seed = 20;
  for (const SaeConfig& config : {topk, relu, batch_topk, short_wide}) {
    TrainJob job{config, seed++, {}};
    if (!dir.empty()) job.options.dir = dir + "/" + config.name();
    jobs.push_back(job);
  }
  return jobs;
}

TEST(TrainSaesTest, EachSaeIsBitIdenticalToTrainingItAloneAndEachBatchIsReadOnce) {
  CountingSource source;
  absl::StatusOr<std::vector<TrainResult>> joint = TrainSaes(JointJobs(""), source);
  ASSERT_TRUE(joint.ok()) << joint.status();
  // 60 steps for the longest job, plus BatchTopK's 8 calibration batches.
  EXPECT_EQ(source.batches_read, 60 + 8);
  const std::vector<TrainJob> jobs = JointJobs("");
  ASSERT_EQ(joint->size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(jobs[i].config.name());
    auto alone = TrainSae(jobs[i].config, source, jobs[i].seed);
    ASSERT_TRUE(alone.ok()) << alone.status();
    ExpectSameTensors(*(*joint)[i].sae, *alone->sae);
    EXPECT_EQ((*joint)[i].steps, alone->steps);
    ASSERT_EQ((*joint)[i].curve.size(), alone->curve.size());
    EXPECT_EQ((*joint)[i].curve.back().loss, alone->curve.back().loss);
  }
}

TEST(TrainSaesTest, KilledJointRunResumesEachSaeToTheBytesOfAnUninterruptedSoloRun) {
  const std::string straight = TempDir() + "/joint_straight", killed = TempDir() + "/joint_killed";
  auto source = Source();
  for (const TrainJob& job : JointJobs(straight)) {
    ASSERT_TRUE(TrainSae(job.config, *source, job.seed, job.options).ok());
  }
  // Kill the jobs at different steps (so they resume from different
  // checkpoints: 10, 20 and none), then finish them together.
  // (Checkpoints every 10 steps: TopKConfigForTest.)
  std::vector<TrainJob> jobs = JointJobs(killed);
  const int64_t kill_at[] = {25, 13, 7, 31};
  for (size_t i = 0; i < jobs.size(); ++i) {
    TrainOptions kill = jobs[i].options;
    kill.stop_after_steps = kill_at[i];
    ASSERT_TRUE(TrainSae(jobs[i].config, *source, jobs[i].seed, kill).ok());
  }
  absl::StatusOr<std::vector<TrainResult>> resumed = TrainSaes(jobs, *source);
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  std::vector<TrainJob> plain = JointJobs(straight);
  for (size_t i = 0; i < jobs.size(); ++i) {
    SCOPED_TRACE(jobs[i].config.name());
    EXPECT_EQ((*resumed)[i].resumed, kill_at[i] >= 10);
    EXPECT_TRUE((*resumed)[i].finished);
    EXPECT_EQ(*ReadFile(plain[i].options.dir + "/sae.safetensors"),
              *ReadFile(jobs[i].options.dir + "/sae.safetensors"));
  }
}

TEST(TrainSaesTest, DifferentBatchSizesAreRefusedNamingBothSaes) {
  auto source = Source();
  std::vector<TrainJob> jobs = JointJobs("");
  jobs[1].config.mutable_trainer()->set_batch_size(64);
  absl::StatusOr<std::vector<TrainResult>> joint = TrainSaes(jobs, *source);
  EXPECT_EQ(joint.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(joint.status().message(),
              AllOf(HasSubstr("relu_test"), HasSubstr("topk_test"), HasSubstr("batch_size 64")));
  EXPECT_EQ(TrainSaes({}, *source).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace saelab
