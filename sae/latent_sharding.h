// A TopK SAE whose latents are split across the ranks of a Communicator
// (harness/distributed.h), as OpenAI sharded theirs: rank r holds a
// contiguous block of latents (its columns of W_enc, entries of b_enc, rows
// of W_dec) and every rank holds b_dec and sees the whole batch. Per batch:
//
//   z_r  = (x - b_dec) W_enc_r + b_enc_r            [batch, n_r], local
//   top-k: each rank's k best per row (value, global index) are all-gathered
//          and the k best of the N k candidates kept (the global top-k);
//   x_hat = b_dec + all-reduce over r of sum_{selected latents of r} ReLU(z) W_dec row
//
// so no rank ever holds more than its n / N latents' weights, and the
// traffic per batch is the candidates (batch * k * 8 B per rank) and one
// [batch, d] all-reduce, whatever n is (docs/scaling.md). Loss() is
// differentiable: its backward all-reduces the [batch, d] gradient that
// reaches x - b_dec, so every rank gets its own shard's gradients and the
// same b_dec gradient as one process would.
//
// Status: the encode, decode and loss with gradients, checked against the
// unsharded SAE; the trainer does not use it yet.
//
//   LatentShardedTopK sharded = *LatentShardedTopK::FromFull(full_sae, comm);
//   ASSIGN_OR_RETURN(LatentShardedTopK::Code code, sharded.Encode(x));  // global top-k
//   ASSIGN_OR_RETURN(torch::Tensor loss, sharded.Loss(x));
//   RETURN_IF_ERROR(sharded.Backward(loss));   // grads in sharded.W_enc.grad(), ...
#ifndef SAELAB_SAE_LATENT_SHARDING_H_
#define SAELAB_SAE_LATENT_SHARDING_H_

#include <cstdint>
#include <utility>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "harness/distributed.h"
#include "sae/topk.h"

namespace saelab {

class LatentShardedTopK {
 public:
  // Latents [begin, end) of rank `rank` of `world` for n latents: blocks of
  // ceil(n / world), the last one shorter (possibly empty).
  static std::pair<int64_t, int64_t> ShardRange(int64_t n, int rank, int world);

  // This rank's shard of `full` (a plain TopK SAE, not a transcoder), as
  // leaf tensors that require grad. A shard with fewer than k latents
  // offers what it has. Errors: a transcoder.
  static absl::StatusOr<LatentShardedTopK> FromFull(TopKSae& full, Communicator& comm);

  // The global code of x [batch, d] (scaled space): ReLU'd values and
  // global latent indices [batch, k], best first: the latents TopKSae's
  // top-k picks (ties between equal values aside), the values to the
  // rounding of a GEMM over this rank's columns.
  struct Code {
    torch::Tensor values;   // [batch, k] float
    torch::Tensor indices;  // [batch, k] int64
  };
  absl::StatusOr<Code> Encode(const torch::Tensor& x);
  // x_hat [batch, d], the same on every rank.
  absl::StatusOr<torch::Tensor> Reconstruct(const torch::Tensor& x);
  // NMSE(x_hat, x) over the batch, the same on every rank; differentiable
  // in this rank's W_enc, b_enc, W_dec and in b_dec.
  absl::StatusOr<torch::Tensor> Loss(const torch::Tensor& x);
  // loss.backward() on every rank (its collectives must run everywhere).
  absl::Status Backward(const torch::Tensor& loss);

  int64_t begin() const { return begin_; }
  int64_t end() const { return end_; }

  torch::Tensor W_enc;  // [d, end - begin]
  torch::Tensor b_enc;  // [end - begin]
  torch::Tensor W_dec;  // [end - begin, d]
  torch::Tensor b_dec;  // [d], replicated

 private:
  // The global top-k of this batch and, for this rank, the differentiable
  // ReLU'd values of the entries it owns (0 elsewhere) with their local
  // indices.
  struct Selection {
    Code code;
    torch::Tensor own_values;   // [batch, k], differentiable
    torch::Tensor own_indices;  // [batch, k] local, 0 where not owned
  };
  absl::StatusOr<Selection> Select(const torch::Tensor& x);

  Communicator* comm_ = nullptr;
  int64_t k_ = 0;
  int64_t begin_ = 0, end_ = 0;
};

}  // namespace saelab

#endif  // SAELAB_SAE_LATENT_SHARDING_H_
