#include "sae/latent_sharding.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/internal/thread_ranks.h"
#include "sae/factory.h"
#include "sae/internal/test_source.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

void OnRanks(int world, const std::function<void(Communicator&)>& body,
             absl::Duration timeout = absl::Seconds(60)) {
  RunOnThreadRanks(world, timeout, body);
}

std::unique_ptr<Sae> FullSae(int64_t n, int64_t k) {
  SaeConfig config;
  config.set_name("topk");
  config.set_n_latents(n);
  config.mutable_topk()->set_k(k);
  std::unique_ptr<Sae> sae = std::move(*CreateSae(config, 16, 5));
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  sae->b_enc.copy_(torch::randn({n}) * 0.2);
  sae->b_dec.copy_(torch::randn({16}) * 0.2);
  return sae;
}

double RelativeError(const torch::Tensor& got, const torch::Tensor& want) {
  return (got - want).abs().max().item<double>() / std::max(want.abs().max().item<double>(), 1e-30);
}

struct Reference {
  torch::Tensor values, indices, x_hat, loss;
  std::vector<torch::Tensor> grads;  // W_enc, b_enc, W_dec, b_dec
};

// The unsharded SAE's code, reconstruction, loss and gradients.
Reference Unsharded(Sae& sae, int64_t k, const torch::Tensor& x) {
  Reference ref;
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor z = torch::addmm(sae.b_enc, x - sae.b_dec, sae.W_enc);
    auto [values, indices] = z.topk(k, 1);
    ref.values = torch::relu(values);
    ref.indices = indices;
    ref.x_hat = sae.ReconstructScaled(x);
  }
  std::vector<torch::Tensor> params = {
      sae.W_enc.detach().clone().requires_grad_(), sae.b_enc.detach().clone().requires_grad_(),
      sae.W_dec.detach().clone().requires_grad_(), sae.b_dec.detach().clone().requires_grad_()};
  TopKLossOptions options;
  options.k = k;
  options.auxk_coefficient = 0;
  ref.loss = TopKLoss({x, params[0], params[1], params[2], params[3]}, options).loss;
  ref.loss.backward();
  for (const torch::Tensor& p : params) ref.grads.push_back(p.grad());
  return ref;
}

void ExpectShardedEqualsUnsharded(int64_t n, int64_t k, int world) {
  std::unique_ptr<Sae> full = FullSae(n, k);
  torch::manual_seed(1);
  const torch::Tensor x = torch::randn({96, 16}) * 2;
  const Reference ref = Unsharded(*full, k, x);
  OnRanks(world, [&](Communicator& comm) {
    absl::StatusOr<LatentShardedTopK> sharded =
        LatentShardedTopK::FromFull(static_cast<TopKSae&>(*full), comm);
    ASSERT_TRUE(sharded.ok()) << sharded.status();
    const int64_t begin = sharded->begin(), size = sharded->end() - sharded->begin();
    EXPECT_EQ(sharded->W_enc.size(1), size);

    absl::StatusOr<LatentShardedTopK::Code> code = sharded->Encode(x);
    ASSERT_TRUE(code.ok()) << code.status();
    // The same latents; values to the rounding of a GEMM over a column
    // block instead of all columns (BLAS blocks the two differently).
    EXPECT_TRUE(torch::equal(code->indices, ref.indices)) << "rank " << comm.rank();
    EXPECT_LT(RelativeError(code->values, ref.values), 1e-6) << "rank " << comm.rank();

    absl::StatusOr<torch::Tensor> x_hat = sharded->Reconstruct(x);
    ASSERT_TRUE(x_hat.ok()) << x_hat.status();
    EXPECT_LT(RelativeError(x_hat->detach(), ref.x_hat), 1e-6);

    absl::StatusOr<torch::Tensor> loss = sharded->Loss(x);
    ASSERT_TRUE(loss.ok()) << loss.status();
    EXPECT_NEAR(loss->item<double>(), ref.loss.item<double>(), 1e-6 * ref.loss.item<double>());
    ASSERT_TRUE(sharded->Backward(*loss).ok());
    if (size > 0) {
      EXPECT_LT(RelativeError(sharded->W_enc.grad(), ref.grads[0].narrow(1, begin, size)), 1e-5);
      EXPECT_LT(RelativeError(sharded->b_enc.grad(), ref.grads[1].narrow(0, begin, size)), 1e-5);
      EXPECT_LT(RelativeError(sharded->W_dec.grad(), ref.grads[2].narrow(0, begin, size)), 1e-5);
    }
    // b_dec is every rank's: the same gradient everywhere, one process's.
    EXPECT_LT(RelativeError(sharded->b_dec.grad(), ref.grads[3]), 1e-5) << "rank " << comm.rank();
  });
}

TEST(LatentShardedTopKTest, TwoShardsEncodeDecodeAndDifferentiateAsTheWholeSae) {
  ExpectShardedEqualsUnsharded(/*n=*/64, /*k=*/4, /*world=*/2);
}

TEST(LatentShardedTopKTest, UnevenShardsAndShardsSmallerThanK) {
  ExpectShardedEqualsUnsharded(/*n=*/64, /*k=*/4, /*world=*/3);  // 22, 22, 20 latents
  ExpectShardedEqualsUnsharded(/*n=*/8, /*k=*/4, /*world=*/3);   // 3, 3, 2: fewer than k each
  ExpectShardedEqualsUnsharded(/*n=*/8, /*k=*/4, /*world=*/5);   // 2, 2, 2, 2, 0: one empty
}

TEST(LatentShardedTopKTest, ShardRangesCoverTheLatentsOnce) {
  using Range = std::pair<int64_t, int64_t>;
  EXPECT_EQ(LatentShardedTopK::ShardRange(64, 0, 3), Range(0, 22));
  EXPECT_EQ(LatentShardedTopK::ShardRange(64, 2, 3), Range(44, 64));
  EXPECT_EQ(LatentShardedTopK::ShardRange(8, 4, 5), Range(8, 8));
}

SaeConfig TrainConfig(int64_t n) {
  SaeConfig config;
  config.set_name("topk_sharded");
  config.set_n_latents(n);
  config.mutable_topk()->set_k(3);
  TrainerConfig* trainer = config.mutable_trainer();
  trainer->set_batch_size(128);
  trainer->set_total_tokens(128 * 16);
  trainer->set_dead_after_tokens(128);  // silent for one batch: AuxK engages
  trainer->set_init_sample_tokens(512);
  trainer->set_log_every_steps(1000);
  trainer->set_lr(3e-3);
  return config;
}

std::unique_ptr<SyntheticFeatureSource> Source() { return SmallSyntheticSource(); }

TEST(LatentShardedTopKTest, CreateGivesTheShardsOfCreateSaesBitsWithoutTheWhole) {
  for (const int64_t n : {64, 8200}) {  // 8200: a shard spans two blocks of random rows
    SaeConfig config = TrainConfig(n);
    ASSERT_TRUE(ResolveSaeConfig(16, &config).ok());
    std::unique_ptr<Sae> full = std::move(*CreateSae(config, 16, 21));
    OnRanks(3, [&](Communicator& comm) {
      absl::StatusOr<LatentShardedTopK> shard = LatentShardedTopK::Create(config, 16, 21, comm);
      ASSERT_TRUE(shard.ok()) << shard.status();
      const int64_t begin = shard->begin(), size = shard->end() - shard->begin();
      EXPECT_TRUE(torch::equal(shard->W_dec, full->W_dec.narrow(0, begin, size))) << n;
      EXPECT_TRUE(torch::equal(shard->W_enc, full->W_enc.narrow(1, begin, size))) << n;
    });
  }
}

TEST(LatentShardedTopKTest, TrainingOnShardsGivesTrainSaesSae) {
  const SaeConfig config = TrainConfig(64);
  auto source = Source();
  absl::StatusOr<TrainResult> whole = TrainSae(config, *source, 21);
  ASSERT_TRUE(whole.ok()) << whole.status();
  ASSERT_GT(whole->last_terms.at("dead_latents"), 0);  // AuxK was on
  for (const int world : {2, 3}) {
    OnRanks(world, [&](Communicator& comm) {
      auto rank_source = Source();
      absl::StatusOr<ShardedTrainResult> trained =
          TrainLatentShardedTopK(config, *rank_source, 21, comm);
      ASSERT_TRUE(trained.ok()) << trained.status();
      const LatentShardedTopK& shard = trained->shard;
      const int64_t begin = shard.begin(), size = shard.end() - shard.begin();
      EXPECT_EQ(trained->input_scale, whole->sae->input_scale());
      EXPECT_LT(RelativeError(shard.W_enc.detach(), whole->sae->W_enc.narrow(1, begin, size)), 1e-4)
          << world;
      EXPECT_LT(RelativeError(shard.b_enc.detach(), whole->sae->b_enc.narrow(0, begin, size)), 1e-4)
          << world;
      EXPECT_LT(RelativeError(shard.W_dec.detach(), whole->sae->W_dec.narrow(0, begin, size)), 1e-4)
          << world;
      EXPECT_LT(RelativeError(shard.b_dec.detach(), whole->sae->b_dec), 1e-4) << world;
      EXPECT_NEAR(trained->last_loss, whole->last_terms.at("loss"),
                  1e-4 * whole->last_terms.at("loss"));
      // Assembled on rank 0: the whole SAE, each shard in its place.
      absl::StatusOr<std::unique_ptr<Sae>> gathered = GatherOnRankZero(*trained, 16, comm);
      ASSERT_TRUE(gathered.ok()) << gathered.status();
      if (comm.rank() != 0) {
        EXPECT_EQ(*gathered, nullptr);
        return;
      }
      Sae& sae = **gathered;
      EXPECT_EQ(sae.input_scale(), whole->sae->input_scale());
      for (const auto& [name, tensor] : whole->sae->NamedTensors()) {
        EXPECT_LT(RelativeError(sae.NamedTensors().at(name), tensor), 1e-4) << name;
      }
      EXPECT_TRUE(torch::equal(sae.W_dec.narrow(0, begin, size), shard.W_dec.detach()));
    });
  }
}

// A sharded training of `config` with its checkpoints in `dir`,
// stopped before step `stop` (-1: none).
absl::StatusOr<ShardedTrainResult> TrainShards(const SaeConfig& config, const std::string& dir,
                                               int64_t stop, Communicator& comm) {
  auto source = Source();
  ShardedTrainOptions options;
  options.dir = dir;
  options.stop_after_steps = stop;
  return TrainLatentShardedTopK(config, *source, 21, comm, options);
}

TEST(LatentShardedTopKTest, AStoppedShardedRunResumesFromItsShardCheckpointsToTheSameBits) {
  SaeConfig config = TrainConfig(64);
  config.mutable_trainer()->set_checkpoint_every_steps(4);
  const std::string straight = ::testing::TempDir() + "/sharded_straight";
  const std::string stopped = ::testing::TempDir() + "/sharded_stopped";
  std::vector<ShardedTrainResult> uninterrupted(2), resumed(2);
  OnRanks(2, [&](Communicator& comm) {
    absl::StatusOr<ShardedTrainResult> run = TrainShards(config, straight, -1, comm);
    ASSERT_TRUE(run.ok()) << run.status();
    uninterrupted[comm.rank()] = std::move(*run);
  });
  OnRanks(2, [&](Communicator& comm) {
    // Stopped before step 10, after the checkpoint of step 8.
    absl::StatusOr<ShardedTrainResult> first = TrainShards(config, stopped, 10, comm);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_FALSE(first->finished);
    // Each rank keeps only its newest checkpoint, of step 8.
    EXPECT_TRUE(
        PathExists(absl::StrCat(stopped, "/shard-", comm.rank(), "-of-2.step-8.safetensors")));
    EXPECT_FALSE(
        PathExists(absl::StrCat(stopped, "/shard-", comm.rank(), "-of-2.step-4.safetensors")));
    ASSERT_TRUE(comm.Barrier().ok());
    absl::StatusOr<ShardedTrainResult> second = TrainShards(config, stopped, -1, comm);
    ASSERT_TRUE(second.ok()) << second.status();
    EXPECT_EQ(second->resumed_from, 8);
    EXPECT_TRUE(second->finished);
    resumed[comm.rank()] = std::move(*second);
  });
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(uninterrupted[r].last_loss, resumed[r].last_loss);
    EXPECT_TRUE(torch::equal(uninterrupted[r].shard.W_enc, resumed[r].shard.W_enc)) << r;
    EXPECT_TRUE(torch::equal(uninterrupted[r].shard.b_enc, resumed[r].shard.b_enc)) << r;
    EXPECT_TRUE(torch::equal(uninterrupted[r].shard.W_dec, resumed[r].shard.W_dec)) << r;
    EXPECT_TRUE(torch::equal(uninterrupted[r].shard.b_dec, resumed[r].shard.b_dec)) << r;
  }
  // A checkpoint of another config is refused, naming the file (the
  // finished run left its last one, of step 12, behind).
  SaeConfig other = config;
  other.mutable_trainer()->set_lr(1e-3);
  OnRanks(2, [&](Communicator& comm) {
    absl::StatusOr<ShardedTrainResult> refused = TrainShards(other, stopped, -1, comm);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(std::string(refused.status().message()),
                ::testing::HasSubstr(absl::StrCat("shard-", comm.rank(), "-of-2.step-12")));
  });
}

}  // namespace
}  // namespace saelab
