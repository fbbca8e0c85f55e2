#include "sae/latent_sharding.h"

#include <algorithm>
#include <limits>
#include <stdexcept>

#include <torch/autograd.h>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"
#include "sae/kernels/sparse_decode.h"

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

template <typename F>
auto Guarded(const F& f) -> absl::StatusOr<decltype(f())> {
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

absl::StatusOr<LatentShardedTopK> LatentShardedTopK::FromFull(TopKSae& full,
                                                              Communicator& comm) {
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

absl::StatusOr<LatentShardedTopK::Selection> LatentShardedTopK::Select(const torch::Tensor& x) {
  const int64_t batch = x.size(0), size = end_ - begin_;
  const int64_t comm = reinterpret_cast<int64_t>(comm_);
  const torch::Tensor centered = SharedByRanks::apply(x - b_dec, comm);
  const torch::Tensor z = torch::addmm(b_enc, centered, W_enc);  // [batch, size]
  // This rank's candidates, padded to k with -inf (a short shard).
  const int64_t offered = std::min(k_, size);
  torch::Tensor values = torch::full({batch, k_}, -std::numeric_limits<float>::infinity());
  torch::Tensor indices = torch::full({batch, k_}, static_cast<int64_t>(-1), torch::kInt64);
  if (offered > 0) {
    auto [v, i] = z.detach().topk(offered, /*dim=*/1);
    values.narrow(1, 0, offered).copy_(v);
    indices.narrow(1, 0, offered).copy_(i + begin_);
  }
  ASSIGN_OR_RETURN(torch::Tensor all_values, comm_->AllGather(values));     // [N, batch, k]
  ASSIGN_OR_RETURN(torch::Tensor all_indices, comm_->AllGather(indices));  // [N, batch, k]
  // [batch, N k] in rank order, so equal values resolve to the lower rank.
  all_values = all_values.permute({1, 0, 2}).reshape({batch, -1});
  all_indices = all_indices.permute({1, 0, 2}).reshape({batch, -1});
  auto [best, where] = all_values.topk(k_, /*dim=*/1);
  Selection selection;
  selection.code.indices = all_indices.gather(1, where);
  selection.code.values = torch::relu(best);
  const torch::Tensor own =
      (selection.code.indices >= begin_) & (selection.code.indices < end_);  // [batch, k]
  selection.own_indices = torch::where(own, selection.code.indices - begin_,
                                       torch::zeros_like(selection.code.indices));
  // Through z even when nothing here is selected (or the shard is empty),
  // so that every rank's backward reaches SharedByRanks' all-reduce.
  selection.own_values =
      size == 0 ? torch::zeros({batch, k_}, x.options()) + z.sum() * 0
                : torch::relu(z.gather(1, selection.own_indices)) * own.to(z.dtype());
  return selection;
}

absl::StatusOr<LatentShardedTopK::Code> LatentShardedTopK::Encode(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  ASSIGN_OR_RETURN(absl::StatusOr<Selection> selection, Guarded([&] { return Select(x); }));
  if (!selection.ok()) return selection.status();
  return selection->code;
}

absl::StatusOr<torch::Tensor> LatentShardedTopK::Reconstruct(const torch::Tensor& x) {
  ASSIGN_OR_RETURN(absl::StatusOr<Selection> selection, Guarded([&] { return Select(x); }));
  if (!selection.ok()) return selection.status();
  return Guarded([&] {
    // This rank's part of the decode (no bias), summed over ranks.
    const torch::Tensor part =
        end_ > begin_
            ? SparseDecode(selection->own_values, selection->own_indices, W_dec,
                           torch::zeros({x.size(1)}, x.options()))
            : (selection->own_values.sum() * 0).expand_as(x);  // an empty shard adds 0
    return SumOverRanks::apply(part, reinterpret_cast<int64_t>(comm_)) + b_dec;
  });
}

absl::StatusOr<torch::Tensor> LatentShardedTopK::Loss(const torch::Tensor& x) {
  ASSIGN_OR_RETURN(torch::Tensor x_hat, Reconstruct(x));
  return BatchNmse(x_hat, x);
}

absl::Status LatentShardedTopK::Backward(const torch::Tensor& loss) {
  try {
    loss.backward();
  } catch (const std::exception& e) {
    return absl::UnavailableError(e.what());
  }
  return absl::OkStatus();
}

}  // namespace saelab
