// Data-parallel training (sae/trainer.h) on ranks that are threads of this
// process, each with its own Gloo communicator over one in-memory store:
// the same collectives as separate processes, without a launcher.
#include <cmath>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <torch/types.h>
#include <torch/utils.h>

#include "sae/internal/test_source.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/internal/thread_ranks.h"
#include "harness/distributed.h"
#include "harness/file_io.h"
#include "sae/checkpoint.h"
#include "sae/batch_topk.h"
#include "sae/kernels/batch_topk_train_step.h"
#include "sae/kernels/topk_train_step.h"
#include "sae/topk.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;
using ::testing::TempDir;

// Runs body(comm) on `world` threads, one rank each.
void OnRanks(int world, const std::function<void(Communicator&)>& body,
             absl::Duration timeout = absl::Seconds(60)) {
  RunOnThreadRanks(world, timeout, body);
}

// max |a - b| / max |b| over every named tensor.
double RelativeDifference(Sae& a, Sae& b) {
  double worst = 0;
  for (const auto& [name, tensor] : a.NamedTensors()) {
    const torch::Tensor other = b.NamedTensors().at(name);
    const double scale = std::max(other.abs().max().item<double>(), 1e-30);
    worst = std::max(worst, (tensor - other).abs().max().item<double>() / scale);
  }
  return worst;
}

// ---- The loss: mean of the shards' gradients == the batch's gradient. ----

struct Problem {
  torch::Tensor x, W_enc, b_enc, W_dec, b_dec, dead;
};

// d 16, n 64, batch 128; half the latents dead, so AuxK is on.
Problem MakeProblem() {
  torch::manual_seed(3);
  Problem p;
  p.x = torch::randn({128, 16}) * torch::rand({128, 1}) * 3;  // rows of unequal norms
  p.W_dec = torch::randn({64, 16});
  p.W_dec = p.W_dec / p.W_dec.norm(2, {1}, true);
  p.W_enc = p.W_dec.t().contiguous();
  p.b_enc = torch::randn({64}) * 0.1;
  p.b_dec = torch::randn({16}) * 0.1;
  p.dead = torch::arange(64) % 2 == 0;
  return p;
}

TopKTrainStepOptions StepOptions() {
  TopKTrainStepOptions options;
  options.k = 3;
  options.k_aux = 8;
  options.auxk_coefficient = 1.0 / 32;
  options.multi_topk_factor = 4;
  return options;
}

// The four gradients of TopKLoss (autograd) on rows [begin, begin + rows).
std::vector<torch::Tensor> AutogradGradients(const Problem& p, int64_t begin, int64_t rows,
                                             const ShardMean& shard_mean) {
  std::vector<torch::Tensor> params = {p.W_enc.clone().requires_grad_(),
                                       p.b_enc.clone().requires_grad_(),
                                       p.W_dec.clone().requires_grad_(),
                                       p.b_dec.clone().requires_grad_()};
  LossInputs inputs{p.x.narrow(0, begin, rows), params[0], params[1], params[2], params[3]};
  inputs.dead_mask = p.dead;
  inputs.shard_mean = shard_mean;
  TopKLossOptions options;
  static_cast<TopKTrainStepOptions&>(options) = StepOptions();
  TopKLoss(inputs, options).loss.backward();
  return {params[0].grad(), params[1].grad(), params[2].grad(), params[3].grad()};
}

// The same from the sparse step kernel.
std::vector<torch::Tensor> KernelGradients(const Problem& p, int64_t begin, int64_t rows,
                                           const ShardMean& shard_mean) {
  std::vector<torch::Tensor> grads = {torch::empty_like(p.W_enc), torch::empty_like(p.b_enc),
                                      torch::empty_like(p.W_dec), torch::empty_like(p.b_dec)};
  TopKTrainStepOptions options = StepOptions();
  options.shard_mean = shard_mean;
  TopKTrainStepWorkspace workspace;
  TopKTrainStep(p.x.narrow(0, begin, rows).contiguous(), {p.W_enc, p.b_enc, p.W_dec, p.b_dec},
                p.dead, options, {grads[0], grads[1], grads[2], grads[3]}, &workspace);
  return grads;
}

using GradientFunction = std::function<std::vector<torch::Tensor>(
    const Problem&, int64_t, int64_t, const ShardMean&)>;

// max over the four gradients of |mean of the 2 shards' - batch's| / max |batch's|.
double ShardedGradientError(const GradientFunction& gradients, bool with_shard_mean) {
  const Problem p = MakeProblem();
  const std::vector<torch::Tensor> whole = gradients(p, 0, 128, nullptr);
  std::vector<std::vector<torch::Tensor>> shards(2);
  OnRanks(2, [&](Communicator& comm) {
    ShardMean mean = [&comm](double value) { return *comm.AllReduceSum(value) / 2; };
    shards[comm.rank()] =
        gradients(p, 64 * comm.rank(), 64, with_shard_mean ? mean : ShardMean());
  });
  double worst = 0;
  for (int i = 0; i < 4; ++i) {
    const torch::Tensor mean = (shards[0][i] + shards[1][i]) / 2;
    worst = std::max(worst, (mean - whole[i]).abs().max().item<double>() /
                                whole[i].abs().max().item<double>());
  }
  return worst;
}

TEST(ShardMeanTest, TopKLossShardGradientsAverageToTheBatchGradient) {
  EXPECT_LT(ShardedGradientError(AutogradGradients, true), 1e-5);
  // Each shard normalising by its own sum ||x||^2 is visibly wrong (the
  // rows' norms differ), so the check above sees the difference.
  EXPECT_GT(ShardedGradientError(AutogradGradients, false), 1e-2);
}

TEST(ShardMeanTest, TopKSparseStepShardGradientsAverageToTheBatchGradient) {
  EXPECT_LT(ShardedGradientError(KernelGradients, true), 1e-5);
  EXPECT_GT(ShardedGradientError(KernelGradients, false), 1e-2);
}

// ---- BatchTopK: one selection over the global batch. ----

// Every shard's tensor in rank order, as the trainer's ShardGather does.
ShardGather GatherOver(Communicator& comm) {
  ShardGather gather;
  gather.rank = comm.rank();
  gather.count = comm.world_size();
  gather.gather = [&comm](const torch::Tensor& local) { return *comm.AllGatherRagged(local); };
  return gather;
}

// z [128, 64] whose second half of rows (rank 1's shard) is three times as
// large: most of the batch's top k * 128 lies there, so a per-shard
// selection would keep other entries.
torch::Tensor UnevenPreActivations() {
  torch::manual_seed(11);
  torch::Tensor z = torch::randn({128, 64});
  z.narrow(0, 64, 64).mul_(3);
  return z;
}

TEST(GlobalBatchTopKTest, TwoShardsKeepTheEntriesOneProcessKeepsOverTheWholeBatch) {
  const torch::Tensor z = UnevenPreActivations();
  const torch::Tensor whole = BatchTopKActivations(z, 3);
  std::vector<torch::Tensor> shards(2);
  OnRanks(2, [&](Communicator& comm) {
    shards[comm.rank()] =
        BatchTopKActivations(z.narrow(0, 64 * comm.rank(), 64), 3, GatherOver(comm));
  });
  // The same values of z, so the same entries, bit for bit.
  EXPECT_TRUE(torch::equal(torch::cat(shards, 0), whole));
  // What makes this a test of the global selection: the shards keep
  // unequal numbers of entries (each would keep 3 * 64 on its own).
  const int64_t kept0 = (shards[0] > 0).sum().item<int64_t>();
  const int64_t kept1 = (shards[1] > 0).sum().item<int64_t>();
  EXPECT_EQ(kept0 + kept1, 3 * 128);
  EXPECT_LT(kept0, 3 * 64 / 2);
}

TEST(GlobalBatchTopKTest, TheSparseSelectionOverTwoShardsIsTheWholeBatchsIncludingItsExtraRounds) {
  // x whose rank-1 rows are large and rank-0 rows small: with 8 candidates
  // per row to start, rank 1's rows saturate and are encoded again while
  // rank 0's are not, so rank 0 takes part in rounds of no use to it.
  const Problem p = MakeProblem();
  torch::Tensor x = p.x.clone();
  x.narrow(0, 0, 64).mul_(0.1);
  x.narrow(0, 64, 64).mul_(10);
  const TopKParameters params{p.W_enc, p.b_enc, p.W_dec, p.b_dec};
  BatchTopKTrainStepOptions options;
  options.k = 3;
  options.auxk_coefficient = 0;
  options.candidates_per_row = 8;
  auto dense_code = [](const BatchTopKSelection& s, int64_t rows) {
    return torch::zeros({rows, 64}).scatter_add(1, s.code.indices, torch::relu(s.code.values));
  };
  TopKEncodeWorkspace workspace;
  const BatchTopKSelection whole =
      SelectBatchTopK((x - p.b_dec).contiguous(), params, torch::Tensor(), options, &workspace);
  std::vector<BatchTopKSelection> shards(2);
  OnRanks(2, [&](Communicator& comm) {
    BatchTopKTrainStepOptions sharded = options;
    const ShardGather gather = GatherOver(comm);
    sharded.shard_gather = gather.gather;
    sharded.shard_rank = gather.rank;
    sharded.shard_count = gather.count;
    TopKEncodeWorkspace own;
    shards[comm.rank()] = SelectBatchTopK(
        (x.narrow(0, 64 * comm.rank(), 64) - p.b_dec).contiguous(), params, torch::Tensor(),
        sharded, &own);
  });
  const torch::Tensor f_whole = dense_code(whole, 128);
  const torch::Tensor f_shards =
      torch::cat({dense_code(shards[0], 64), dense_code(shards[1], 64)}, 0);
  // The same kept entries; values to the rounding of a GEMM over 64 rows
  // instead of 128.
  EXPECT_TRUE(torch::equal(f_shards > 0, f_whole > 0));
  EXPECT_TRUE(torch::allclose(f_shards, f_whole, 1e-5, 1e-6));
  EXPECT_GT(whole.candidate_rounds, 1);
  EXPECT_EQ(shards[0].candidate_rounds, shards[1].candidate_rounds);
  EXPECT_EQ(shards[0].reencoded_rows, 0);
  EXPECT_GT(shards[1].reencoded_rows, 0);
  // Every shard finds the one cut.
  EXPECT_EQ(shards[0].min_kept, shards[1].min_kept);
  EXPECT_NEAR(shards[0].min_kept, whole.min_kept, 1e-6);
}

// ---- The trainer. ----

std::unique_ptr<SyntheticFeatureSource> Source() { return SmallSyntheticSource(); }

SaeConfig TopKConfigForTest(int64_t steps) {
  SaeConfig config;
  config.set_name("topk_dp");
  config.set_n_latents(64);
  config.mutable_topk()->set_k(3);
  TrainerConfig* trainer = config.mutable_trainer();
  trainer->set_batch_size(128);
  trainer->set_total_tokens(128 * steps);
  trainer->set_checkpoint_every_steps(4);
  trainer->set_dead_after_tokens(128 * 3);  // AuxK engages within the run
  trainer->set_init_sample_tokens(512);
  trainer->set_log_every_steps(2);
  // Adam's update is invariant to the gradient's scale while eps is
  // negligible; an eps near |g| makes it see a wrong scale (a sum over
  // ranks instead of the mean) as well as a wrong direction.
  trainer->set_adam_eps(1e-3);
  return config;
}

SaeConfig ReluL1ConfigForTest(int64_t steps) {
  SaeConfig config = TopKConfigForTest(steps);
  config.set_name("relu_dp");
  config.mutable_relu_l1()->set_l1_coefficient(1.0);
  // Its recipe's lr (5e-5) barely moves the weights in 12 steps, and the
  // default clip would hide the gradient's scale.
  config.mutable_trainer()->set_lr(1e-2);
  config.mutable_trainer()->set_grad_clip_norm(0);
  return config;
}

// JumpReLU training to a target L0: the term squares the batch's mean L0,
// and the pre-activation loss reaches latents silent on the whole batch.
SaeConfig JumpReluTargetConfigForTest(int64_t steps) {
  SaeConfig config = ReluL1ConfigForTest(steps);
  config.set_name("jumprelu_target_dp");
  config.mutable_jumprelu()->mutable_target()->set_l0(3);
  return config;
}

// BatchTopK on the sparse step, and Matryoshka BatchTopK through autograd.
SaeConfig BatchTopKConfigForTest(int64_t steps) {
  SaeConfig config = TopKConfigForTest(steps);
  config.set_name("batch_topk_dp");
  config.mutable_batch_topk()->set_k(3);
  return config;
}

SaeConfig MatryoshkaConfigForTest(int64_t steps) {
  SaeConfig config = TopKConfigForTest(steps);
  config.set_name("matryoshka_dp");
  MatryoshkaBatchTopKConfig* matryoshka = config.mutable_matryoshka_batch_topk();
  matryoshka->mutable_batch_topk()->set_k(3);
  matryoshka->add_prefix_widths(16);
  return config;
}

// Trains `config` on 2 thread ranks; returns both results (dirs[r] is
// rank r's TrainOptions.dir).
std::vector<TrainResult> TrainOnTwoRanks(const SaeConfig& config,
                                         const std::vector<std::string>& dirs,
                                         int64_t stop_after_steps = -1) {
  std::vector<TrainResult> results(2);
  OnRanks(2, [&](Communicator& comm) {
    auto source = Source();
    TrainOptions options;
    options.dir = dirs[comm.rank()];
    options.communicator = &comm;
    options.stop_after_steps = stop_after_steps;
    absl::StatusOr<TrainResult> trained = TrainSae(config, *source, 7, options);
    ASSERT_TRUE(trained.ok()) << trained.status();
    results[comm.rank()] = std::move(*trained);
  });
  return results;
}

TEST(DataParallelTrainerTest, TwoRanksTrainTheSaeOneProcessTrainsOnTheSameGlobalBatches) {
  // Measured: 1.3e-7 (TopK), 5.9e-7 (ReLU-L1) and 4.6e-7 (JumpReLU to a
  // target) relative, float rounding of the split sums through 12 Adam
  // steps. Summing the ranks' gradients instead of averaging them gives
  // 0.15 and 0.13; JumpReLU's target term and silent latents both per
  // shard 0.32, its silent latents alone per shard 0.34.
  // BatchTopK and Matryoshka select over the global batch: their
  // thresholds (buffers, compared below with the weights) are the same on
  // both ranks.
  for (const SaeConfig& config : {TopKConfigForTest(12), ReluL1ConfigForTest(12),
                                  JumpReluTargetConfigForTest(12), BatchTopKConfigForTest(12),
                                  MatryoshkaConfigForTest(12)}) {
    auto source = Source();
    absl::StatusOr<TrainResult> single = TrainSae(config, *source, 7);
    ASSERT_TRUE(single.ok()) << single.status();
    std::vector<TrainResult> ranks = TrainOnTwoRanks(config, {"", ""});
    EXPECT_LT(RelativeDifference(*ranks[0].sae, *single->sae), 1e-4) << config.name();
    // Every rank applies the same averaged update: the same bits.
    for (const auto& [name, tensor] : ranks[0].sae->NamedTensors()) {
      EXPECT_TRUE(torch::equal(tensor, ranks[1].sae->NamedTensors().at(name))) << name;
    }
    // The loss is the whole batch's: the mean of the shards'.
    EXPECT_NEAR(ranks[0].last_terms.at("loss"), single->last_terms.at("loss"),
                1e-4 * single->last_terms.at("loss"));
    ASSERT_EQ(ranks[0].curve.size(), single->curve.size());
    EXPECT_EQ(ranks[0].curve.back().dead_fraction, single->curve.back().dead_fraction);
  }
}

TEST(DataParallelTrainerTest, OnlyRankZeroWritesAndACheckpointResumesOnAnotherNumberOfRanks) {
  const SaeConfig config = TopKConfigForTest(12);
  const std::string two = TempDir() + "/dp_two", other = TempDir() + "/dp_rank1";
  const std::string one = TempDir() + "/dp_one";
  // Killed after 6 steps on 2 ranks: rank 0 checkpointed at step 4.
  TrainOnTwoRanks(config, {two, other}, /*stop_after_steps=*/6);
  EXPECT_TRUE(PathExists(two + "/train_state.safetensors"));
  EXPECT_FALSE(PathExists(other));
  // Resumed on 1 rank, from step 4.
  auto source = Source();
  absl::StatusOr<TrainResult> resumed = TrainSae(config, *source, 7, {two});
  ASSERT_TRUE(resumed.ok()) << resumed.status();
  EXPECT_TRUE(resumed->resumed);
  EXPECT_TRUE(HasSavedSae(two));

  // The other way: killed on 1 rank, resumed on 2; rank 1 has no
  // directory of its own and starts from rank 0's state.
  TrainOptions kill;
  kill.dir = one;
  kill.stop_after_steps = 6;
  ASSERT_TRUE(TrainSae(config, *source, 7, kill).ok());
  std::vector<TrainResult> ranks = TrainOnTwoRanks(config, {one, ""});
  EXPECT_TRUE(ranks[0].resumed);
  EXPECT_TRUE(ranks[1].resumed);
  for (const auto& [name, tensor] : ranks[0].sae->NamedTensors()) {
    EXPECT_TRUE(torch::equal(tensor, ranks[1].sae->NamedTensors().at(name))) << name;
  }
  // Both equal the uninterrupted one-process run to float tolerance.
  absl::StatusOr<TrainResult> straight = TrainSae(config, *source, 7);
  ASSERT_TRUE(straight.ok());
  EXPECT_LT(RelativeDifference(*resumed->sae, *straight->sae), 1e-4);
  EXPECT_LT(RelativeDifference(*ranks[0].sae, *straight->sae), 1e-4);

  // A rerun finds the finished SAE on rank 0 and every rank takes it.
  std::vector<TrainResult> reloaded = TrainOnTwoRanks(config, {one, ""});
  EXPECT_TRUE(reloaded[1].loaded_from_disk);
  EXPECT_EQ(reloaded[1].curve.size(), ranks[0].curve.size());
  for (const auto& [name, tensor] : ranks[0].sae->NamedTensors()) {
    EXPECT_TRUE(torch::equal(tensor, reloaded[1].sae->NamedTensors().at(name))) << name;
  }
}

TEST(DataParallelTrainerTest, ABatchTheRanksDoNotSplitEvenlyIsRefused) {
  SaeConfig config = TopKConfigForTest(4);
  config.mutable_trainer()->set_batch_size(127);
  config.mutable_trainer()->set_total_tokens(127 * 4);
  OnRanks(2, [&](Communicator& comm) {
    auto source = Source();
    TrainOptions options;
    options.communicator = &comm;
    absl::StatusOr<TrainResult> trained = TrainSae(config, *source, 7, options);
    EXPECT_EQ(trained.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(trained.status().message()),
                HasSubstr("batch_size 127 does not split into 2 equal shards"));
  });
}

TEST(DataParallelTrainerTest, ARankThatDiesStopsTheOthersWithAnErrorNotAHang) {
  const SaeConfig config = TopKConfigForTest(40);
  absl::Status survivor;
  absl::Duration waited;
  OnRanks(
      2,
      [&](Communicator& comm) {
        auto source = Source();
        TrainOptions options;
        options.communicator = &comm;
        // Rank 1 "dies" after 3 steps: it returns and its connections close.
        if (comm.rank() == 1) options.stop_after_steps = 3;
        const absl::Time start = absl::Now();
        absl::StatusOr<TrainResult> trained = TrainSae(config, *source, 7, options);
        if (comm.rank() == 0) {
          survivor = trained.status();
          waited = absl::Now() - start;
        }
      },
      absl::Seconds(5));
  EXPECT_EQ(survivor.code(), absl::StatusCode::kUnavailable) << survivor;
  EXPECT_THAT(std::string(survivor.message()), HasSubstr("rank 0 of 2"));
  EXPECT_LT(waited, absl::Seconds(30));
}

}  // namespace
}  // namespace saelab
