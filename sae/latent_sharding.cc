#include "sae/latent_sharding.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "harness/train_state.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/geometric_median.h"
#include "sae/kernels/adam_step.h"
#include "sae/kernels/sparse_decode.h"
#include "sae/trainer.h"

namespace saelab {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

Communicator* CommunicatorOf(AutogradContext* ctx) {
  return reinterpret_cast<Communicator*>(ctx->saved_data["comm"].toInt());
}

// Autograd cannot carry a Status; a failed collective inside forward or
// backward throws, and the public methods turn it back into the Status.
void AllReduceOrThrow(Communicator& comm, torch::Tensor& t) {
  std::vector<torch::Tensor> one = {t};
  const absl::Status status = comm.AllReduceSum(one);
  if (!status.ok()) throw std::runtime_error(status.ToString());
}

// y = sum over ranks of x; dL/dx = dL/dy, which every rank computes the
// same (the loss after the sum is the same on every rank).
struct SumOverRanks : public torch::autograd::Function<SumOverRanks> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    torch::Tensor y = x.detach().clone();
    AllReduceOrThrow(*CommunicatorOf(ctx), y);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    (void)ctx;
    return {grads[0], torch::Tensor()};
  }
};

// y = x on every rank (each feeds its own shard); dL/dx = sum over ranks of
// the shards' dL/dy.
struct SharedByRanks : public torch::autograd::Function<SharedByRanks> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, int64_t comm) {
    ctx->saved_data["comm"] = comm;
    return x.detach().clone();
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    torch::Tensor g = grads[0].contiguous().clone();
    AllReduceOrThrow(*CommunicatorOf(ctx), g);
    return {g, torch::Tensor()};
  }
};

// f()'s result as a StatusOr (f may return T or StatusOr<T>), with an
// exception from a collective inside it as Unavailable.
template <typename T>
struct AsStatusOr {
  using type = absl::StatusOr<T>;
};
template <typename T>
struct AsStatusOr<absl::StatusOr<T>> {
  using type = absl::StatusOr<T>;
};

template <typename F>
auto Guarded(const F& f) -> typename AsStatusOr<decltype(f())>::type {
  try {
    return f();
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
}

}  // namespace

std::pair<int64_t, int64_t> LatentShardedTopK::ShardRange(int64_t n, int rank, int world) {
  const int64_t block = (n + world - 1) / world;
  const int64_t begin = std::min(n, rank * block);
  return {begin, std::min(n, begin + block)};
}

absl::StatusOr<LatentShardedTopK> LatentShardedTopK::FromFull(TopKSae& full, Communicator& comm) {
  if (full.is_transcoder()) {
    return absl::InvalidArgumentError("latent sharding is for TopK SAEs, not transcoders");
  }
  LatentShardedTopK sharded;
  sharded.comm_ = &comm;
  sharded.k_ = full.k();
  std::tie(sharded.begin_, sharded.end_) =
      ShardRange(full.n_latents(), comm.rank(), comm.world_size());
  const int64_t size = sharded.end_ - sharded.begin_;
  torch::NoGradGuard no_grad;
  sharded.W_enc = full.W_enc.narrow(1, sharded.begin_, size).clone().requires_grad_();
  sharded.b_enc = full.b_enc.narrow(0, sharded.begin_, size).clone().requires_grad_();
  sharded.W_dec = full.W_dec.narrow(0, sharded.begin_, size).clone().requires_grad_();
  sharded.b_dec = full.b_dec.clone().requires_grad_();
  return sharded;
}

torch::Tensor LatentShardedTopK::PreActivations(const torch::Tensor& x) {
  return torch::addmm(b_enc, SharedByRanks::apply(x - b_dec, reinterpret_cast<int64_t>(comm_)),
                      W_enc);  // [batch, size]
}

absl::StatusOr<LatentShardedTopK::Selection> LatentShardedTopK::Select(
    const torch::Tensor& z, int64_t k, const torch::Tensor& eligible) {
  const int64_t batch = z.size(0), size = end_ - begin_;
  torch::Tensor candidates = z.detach();
  if (eligible.defined()) {
    candidates = candidates.masked_fill(eligible.logical_not().unsqueeze(0),
                                        -std::numeric_limits<float>::infinity());
  }
  // This rank's candidates, padded to k with -inf (a short shard).
  const int64_t offered = std::min(k, size);
  torch::Tensor values = torch::full({batch, k}, -std::numeric_limits<float>::infinity());
  torch::Tensor indices = torch::full({batch, k}, static_cast<int64_t>(-1), torch::kInt64);
  if (offered > 0) {
    auto [v, i] = candidates.topk(offered, /*dim=*/1);
    values.narrow(1, 0, offered).copy_(v);
    indices.narrow(1, 0, offered).copy_(i + begin_);
  }
  ASSIGN_OR_RETURN(torch::Tensor all_values, comm_->AllGather(values));    // [N, batch, k]
  ASSIGN_OR_RETURN(torch::Tensor all_indices, comm_->AllGather(indices));  // [N, batch, k]
  // [batch, N k] in rank order, so equal values resolve to the lower rank.
  all_values = all_values.permute({1, 0, 2}).reshape({batch, -1});
  all_indices = all_indices.permute({1, 0, 2}).reshape({batch, -1});
  auto [best, where] = all_values.topk(k, /*dim=*/1);
  Selection selection;
  selection.code.indices = all_indices.gather(1, where);
  selection.code.values = torch::relu(best);
  // An ineligible (-inf) candidate picked for want of eligible ones adds 0.
  const torch::Tensor own =
      (selection.code.indices >= begin_) & (selection.code.indices < end_) & torch::isfinite(best);
  selection.own_indices =
      torch::where(own, selection.code.indices - begin_, torch::zeros_like(selection.code.indices));
  // Through z even when nothing here is selected (or the shard is empty),
  // so that every rank's backward reaches SharedByRanks' all-reduce.
  selection.own_values = size == 0
                             ? torch::zeros({batch, k}, z.options()) + z.sum() * 0
                             : torch::relu(z.gather(1, selection.own_indices)) * own.to(z.dtype());
  return selection;
}

absl::StatusOr<torch::Tensor> LatentShardedTopK::DecodeOwn(const Selection& selection, int64_t d) {
  return Guarded([&] {
    // This rank's part of the decode (no bias), summed over ranks.
    const torch::Tensor part =
        end_ > begin_ ? SparseDecode(selection.own_values, selection.own_indices, W_dec,
                                     torch::zeros({d}, W_dec.options()))
                      : (selection.own_values.sum() * 0).expand({selection.own_values.size(0), d});
    return SumOverRanks::apply(part, reinterpret_cast<int64_t>(comm_));
  });
}

absl::StatusOr<LatentShardedTopK::Code> LatentShardedTopK::Encode(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(Selection selection, Guarded([&] { return Select(PreActivations(x), k_, {}); }));
  return selection.code;
}

absl::StatusOr<torch::Tensor> LatentShardedTopK::Reconstruct(const torch::Tensor& x) {
  ASSIGN_OR_RETURN(Selection selection, Guarded([&] { return Select(PreActivations(x), k_, {}); }));
  ASSIGN_OR_RETURN(torch::Tensor x_hat, DecodeOwn(selection, x.size(1)));
  return x_hat + b_dec;
}

absl::StatusOr<torch::Tensor> LatentShardedTopK::Loss(const torch::Tensor& x) {
  ASSIGN_OR_RETURN(LossTerms terms, LossWithAuxK(x, {}, 0, 0));
  return terms.loss;
}

absl::StatusOr<LatentShardedTopK::LossTerms> LatentShardedTopK::LossWithAuxK(
    const torch::Tensor& x, const torch::Tensor& dead, int64_t k_aux, double auxk_coefficient) {
  ASSIGN_OR_RETURN(torch::Tensor z, Guarded([&] { return PreActivations(x); }));
  ASSIGN_OR_RETURN(Selection selection, Guarded([&] { return Select(z, k_, {}); }));
  ASSIGN_OR_RETURN(torch::Tensor partial, DecodeOwn(selection, x.size(1)));
  LossTerms terms;
  terms.fired = torch::zeros({end_ - begin_}, torch::kBool);
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor mine = selection.own_values > 0;
    terms.fired.index_put_({selection.own_indices.masked_select(mine)}, true);
  }
  const torch::Tensor x_hat = partial + b_dec;
  terms.nmse = BatchNmse(x_hat, x);
  terms.loss = terms.nmse;
  if (auxk_coefficient > 0 && dead.defined()) {
    // AuxK (sae/topk.h) over the dead latents of every shard.
    ASSIGN_OR_RETURN(double n_dead, comm_->AllReduceSum(dead.sum().item<double>()));
    if (n_dead > 0) {
      const int64_t k_dead = std::min<int64_t>(k_aux, static_cast<int64_t>(n_dead));
      ASSIGN_OR_RETURN(Selection aux, Guarded([&] { return Select(z, k_dead, dead); }));
      ASSIGN_OR_RETURN(torch::Tensor e_hat, DecodeOwn(aux, x.size(1)));
      terms.auxk = BatchNmse(e_hat, (x - x_hat).detach());
      terms.loss = terms.loss + auxk_coefficient * terms.auxk;
    }
  }
  return terms;
}

absl::Status LatentShardedTopK::Backward(const torch::Tensor& loss) {
  try {
    loss.backward();
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  return absl::OkStatus();
}

absl::StatusOr<LatentShardedTopK> LatentShardedTopK::Create(const SaeConfig& config, int64_t d_in,
                                                            uint64_t seed, Communicator& comm) {
  if (!config.has_topk() || config.has_transcoder() || config.topk().multi_topk_factor() > 0 ||
      config.encoder_init() != SaeConfig::TIED) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SAE '", config.name(),
        "': latent sharding supports TopK SAEs with a tied init, without Multi-TopK, not "
        "transcoders"));
  }
  const int64_t n = config.n_latents();
  LatentShardedTopK sharded;
  sharded.comm_ = &comm;
  sharded.k_ = config.topk().k();
  std::tie(sharded.begin_, sharded.end_) = ShardRange(n, comm.rank(), comm.world_size());
  const int64_t size = sharded.end_ - sharded.begin_;
  torch::NoGradGuard no_grad;
  // Sae::RegisterTiedParameters draws at::randn({n, d}) from the seed's
  // generator; drawing it in blocks of rows whose sizes are multiples of 16
  // consumes the generator identically (normal_ fills 16 at a time), so
  // the kept rows are the same bits.
  auto generator = at::detail::createCPUGenerator(seed);
  torch::Tensor rows = torch::empty({size, d_in});
  constexpr int64_t kBlockRows = 4096;
  for (int64_t first = 0; first < std::min(n, sharded.end_); first += kBlockRows) {
    const int64_t count = std::min(kBlockRows, n - first);
    const torch::Tensor block = at::randn({count, d_in}, generator, torch::kFloat32);
    const int64_t lo = std::max(first, sharded.begin_);
    const int64_t hi = std::min(first + count, sharded.end_);
    if (lo < hi)
      rows.narrow(0, lo - sharded.begin_, hi - lo).copy_(block.narrow(0, lo - first, hi - lo));
  }
  rows = rows / rows.norm(2, {1}, /*keepdim=*/true);
  sharded.W_dec = rows.requires_grad_();
  sharded.W_enc = rows.t().contiguous().requires_grad_();
  sharded.b_enc = torch::zeros({size}).requires_grad_();
  sharded.b_dec = torch::zeros({d_in}).requires_grad_();
  return sharded;
}

namespace {

// A rank's shard checkpoints: <dir>/shard-<rank>-of-<world>.step-<S>.safetensors.
std::string ShardStatePrefix(const std::string& dir, const Communicator& comm) {
  return absl::StrCat(dir, "/shard-", comm.rank(), "-of-", comm.world_size(), ".step-");
}

std::string ShardStatePath(const std::string& dir, const Communicator& comm, int64_t step) {
  return absl::StrCat(ShardStatePrefix(dir, comm), step, ".safetensors");
}

// The steps of this rank's checkpoints in dir, ascending.
std::vector<int64_t> ShardStateSteps(const std::string& dir, const Communicator& comm) {
  std::vector<int64_t> steps;
  std::error_code error;
  const std::string prefix = ShardStatePrefix(dir, comm);
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string path = entry.path().string();
    absl::string_view rest = path;
    int64_t step = 0;
    if (absl::ConsumePrefix(&rest, prefix) && absl::ConsumeSuffix(&rest, ".safetensors") &&
        absl::SimpleAtoi(rest, &step)) {
      steps.push_back(step);
    }
  }
  std::sort(steps.begin(), steps.end());
  return steps;
}

// The newest step every rank has a checkpoint of (0: none). A rank deletes
// its older checkpoints only after every rank has written a newer one (a
// barrier between), so each rank still has the step this returns.
absl::StatusOr<int64_t> CommonShardStateStep(const std::string& dir, Communicator& comm) {
  const std::vector<int64_t> steps = ShardStateSteps(dir, comm);
  const int64_t newest = steps.empty() ? 0 : steps.back();
  ASSIGN_OR_RETURN(torch::Tensor all, comm.AllGather(torch::tensor({newest}, torch::kInt64)));
  return all.min().item<int64_t>();
}

}  // namespace

absl::StatusOr<ShardedTrainResult> TrainLatentShardedTopK(SaeConfig config,
                                                          ActivationSource& source, uint64_t seed,
                                                          Communicator& comm,
                                                          const ShardedTrainOptions& options) {
  torch::AutoGradMode grad_mode(true);
  const int64_t d_in = source.d_in();
  if (source.d_target() > 0) {
    return absl::InvalidArgumentError("latent-sharded training reads plain rows, not pairs");
  }
  RETURN_IF_ERROR(ResolveSaeConfig(d_in, &config));
  ASSIGN_OR_RETURN(LatentShardedTopK shard, LatentShardedTopK::Create(config, d_in, seed, comm));
  const TrainerConfig& trainer = config.trainer();
  const TopKConfig& topk = config.topk();
  const int64_t batch_size = trainer.batch_size();
  const int64_t total_steps = trainer.total_tokens() / batch_size;

  ShardedTrainResult result;
  result.config = config;
  {
    ASSIGN_OR_RETURN(torch::Tensor sample, source.InitSample(trainer.init_sample_tokens()));
    // Rounded to float, as Sae keeps it (a float32 buffer).
    if (config.normalize_input()) {
      result.input_scale = static_cast<float>(EstimateInputScale(sample));
    }
    torch::NoGradGuard no_grad;
    shard.b_dec.copy_(
        GeometricMedian(sample * result.input_scale, topk.geometric_median_iterations()));
  }
  std::vector<torch::Tensor> params = {shard.W_enc, shard.b_enc, shard.W_dec, shard.b_dec};
  torch::optim::Adam adam(params,
                          torch::optim::AdamOptions(trainer.lr())
                              .betas(std::make_tuple(trainer.adam_beta1(), trainer.adam_beta2()))
                              .eps(trainer.adam_eps()));
  torch::Tensor tokens_since_fired = torch::zeros({shard.end() - shard.begin()}, torch::kInt64);
  const std::map<std::string, torch::Tensor> named = {{"W_enc", shard.W_enc},
                                                      {"b_enc", shard.b_enc},
                                                      {"W_dec", shard.W_dec},
                                                      {"b_dec", shard.b_dec}};
  const std::string config_sha256 = ProtoSha256(config);
  int64_t first_step = 0;
  if (!options.dir.empty()) {
    RETURN_IF_ERROR(MakeDirs(options.dir));
    ASSIGN_OR_RETURN(const int64_t common, CommonShardStateStep(options.dir, comm));
    if (common > 0) {
      const std::string path = ShardStatePath(options.dir, comm, common);
      ASSIGN_OR_RETURN(TrainState state, LoadTrainState<torch::optim::AdamParamState>(
                                             path, config_sha256, "sharded SAE", total_steps, named,
                                             "shard.", &adam, "adam."));
      ASSIGN_OR_RETURN(torch::Tensor next_step, state.Loop("next_step", {}, torch::kInt64));
      ASSIGN_OR_RETURN(
          torch::Tensor counters,
          state.Loop("tokens_since_fired", {shard.end() - shard.begin()}, torch::kInt64));
      ASSIGN_OR_RETURN(torch::Tensor scale, state.Loop("input_scale", {}, torch::kFloat64));
      ASSIGN_OR_RETURN(torch::Tensor loss, state.Loop("last_loss", {}, torch::kFloat64));
      if (next_step.item<int64_t>() != common) {
        return absl::DataLossError(absl::StrCat(path, ": holds step ", next_step.item<int64_t>(),
                                                ", not the step its name says"));
      }
      first_step = common;
      tokens_since_fired.copy_(counters);
      result.input_scale = scale.item<double>();
      result.last_loss = loss.item<double>();
      result.resumed_from = common;
    }
  }
  // After a checkpoint of step `next` on every rank: the older ones go.
  auto checkpoint = [&](int64_t next) -> absl::Status {
    TrainState state;
    state.loop["next_step"] = torch::tensor(next, torch::kInt64);
    state.loop["tokens_since_fired"] = tokens_since_fired.clone();
    state.loop["input_scale"] = torch::tensor(result.input_scale, torch::kFloat64);
    state.loop["last_loss"] = torch::tensor(result.last_loss, torch::kFloat64);
    RETURN_IF_ERROR(SaveTrainState<torch::optim::AdamParamState>(
        ShardStatePath(options.dir, comm, next), config_sha256, named, "shard.", adam, "adam.",
        state));
    RETURN_IF_ERROR(comm.Barrier());
    for (int64_t older : ShardStateSteps(options.dir, comm)) {
      if (older < next) std::filesystem::remove(ShardStatePath(options.dir, comm, older));
    }
    return absl::OkStatus();
  };
  const int64_t every = trainer.checkpoint_every_steps();
  for (int64_t step = first_step; step < total_steps; ++step) {
    if (step == options.stop_after_steps) {
      result.steps = step;
      result.shard = std::move(shard);
      return result;
    }
    ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(step, batch_size));
    const torch::Tensor x = batch * result.input_scale;
    const torch::Tensor dead = tokens_since_fired >= trainer.dead_after_tokens();
    ASSIGN_OR_RETURN(LatentShardedTopK::LossTerms terms,
                     shard.LossWithAuxK(x, dead, topk.k_aux(), topk.auxk_coefficient()));
    result.last_loss = terms.loss.item<double>();
    if (!std::isfinite(result.last_loss)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "SAE '", config.name(), "': the training loss is ", result.last_loss, " at step ", step));
    }
    adam.zero_grad();
    RETURN_IF_ERROR(shard.Backward(terms.loss));
    torch::NoGradGuard no_grad;
    ProjectOutParallelGradient(shard.W_dec, shard.W_dec.mutable_grad());
    if (trainer.grad_clip_norm() > 0) {
      // clip_grad_norm_ over the whole SAE: b_dec, the same on every rank,
      // is counted once.
      double squares = 0;
      for (const torch::Tensor& p : {shard.W_enc, shard.b_enc, shard.W_dec}) {
        squares += SquaredNormAnyThreadCount(p.grad());
      }
      if (comm.rank() == 0) squares += SquaredNormAnyThreadCount(shard.b_dec.grad());
      ASSIGN_OR_RETURN(const double total_squares, comm.AllReduceSum(squares));
      const double coefficient = trainer.grad_clip_norm() / (std::sqrt(total_squares) + 1e-6);
      if (coefficient < 1) {
        for (torch::Tensor& p : params) p.mutable_grad().mul_(coefficient);
      }
    }
    for (auto& group : adam.param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options())
          .lr(LearningRateAt(trainer, step, total_steps));
    }
    FusedAdamStep(adam);
    shard.W_dec.div_(shard.W_dec.norm(2, {1}, /*keepdim=*/true));
    tokens_since_fired.add_(batch_size).masked_fill_(terms.fired, 0);
    if (!options.dir.empty() && every > 0 && (step + 1) % every == 0 && step + 1 < total_steps) {
      RETURN_IF_ERROR(checkpoint(step + 1));
    }
  }
  result.steps = total_steps;
  result.finished = true;
  result.shard = std::move(shard);
  return result;
}

absl::StatusOr<SavedShardedTraining> TrainLatentShardedTopKAndSave(const SaeConfig& config,
                                                                   ActivationSource& source,
                                                                   uint64_t seed,
                                                                   Communicator& comm,
                                                                   const std::string& dir) {
  ShardedTrainOptions options;
  options.dir = dir + "/shard_states";
  SavedShardedTraining saved;
  ASSIGN_OR_RETURN(saved.trained, TrainLatentShardedTopK(config, source, seed, comm, options));
  if (saved.trained.resumed_from > 0) {
    Log("%s: resumed the sharded training at step %lld", config.name().c_str(),
        static_cast<long long>(saved.trained.resumed_from));
  }
  ASSIGN_OR_RETURN(saved.sae, GatherOnRankZero(saved.trained, source.d_in(), comm));
  if (comm.rank() == 0) {
    RETURN_IF_ERROR(SaveSae(dir, *saved.sae, saved.trained.config));
    // The saved SAE supersedes the shard states.
    std::error_code ignored;
    std::filesystem::remove_all(options.dir, ignored);
  }
  return saved;
}

absl::StatusOr<std::unique_ptr<Sae>> GatherOnRankZero(const ShardedTrainResult& trained,
                                                      int64_t d_in, Communicator& comm) {
  torch::NoGradGuard no_grad;
  const LatentShardedTopK& shard = trained.shard;
  const int64_t n = trained.config.n_latents();
  const int64_t block = LatentShardedTopK::ShardRange(n, 0, comm.world_size()).second;
  const int64_t size = shard.end() - shard.begin();
  // Gather wants equal shapes: shards padded to the first's block.
  auto padded = [&](const torch::Tensor& t) {
    std::vector<int64_t> shape = t.sizes().vec();
    shape[0] = block;
    torch::Tensor out = torch::zeros(shape);
    out.narrow(0, 0, size).copy_(t.detach());
    return out;
  };
  ASSIGN_OR_RETURN(torch::Tensor W_dec, comm.Gather(padded(shard.W_dec)));        // [N, block, d]
  ASSIGN_OR_RETURN(torch::Tensor W_enc_t, comm.Gather(padded(shard.W_enc.t())));  // [N, block, d]
  ASSIGN_OR_RETURN(torch::Tensor b_enc, comm.Gather(padded(shard.b_enc)));        // [N, block]
  if (comm.rank() != 0) return std::unique_ptr<Sae>();
  ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(trained.config, d_in, 0));
  sae->W_dec.copy_(W_dec.reshape({-1, d_in}).narrow(0, 0, n));
  sae->W_enc.copy_(W_enc_t.reshape({-1, d_in}).narrow(0, 0, n).t());
  sae->b_enc.copy_(b_enc.reshape({-1}).narrow(0, 0, n));
  sae->b_dec.copy_(shard.b_dec.detach());
  sae->set_input_scale(trained.input_scale);
  return sae;
}

}  // namespace saelab
