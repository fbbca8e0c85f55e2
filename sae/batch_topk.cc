#include "sae/batch_topk.h"

#include <algorithm>
#include <tuple>

#include "sae/geometric_median.h"
#include "sae/kernels/sparse_decode.h"
#include "sae/topk.h"

namespace saelab {

BatchTopKSae::BatchTopKSae(int64_t d_in, int64_t n_latents, const BatchTopKConfig& config,
                           uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
  // 0 = not yet tracked; inference is then plain ReLU.
  threshold_ = register_buffer("threshold", torch::zeros({}, torch::kFloat32));
}

torch::Tensor BatchTopKSae::EncodeScaled(const torch::Tensor& x) {
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);
  // threshold >= 0, so this is also ReLU(z) * 1[z > threshold].
  return z * (z > threshold_).to(z.scalar_type());
}

torch::Tensor BatchTopKSae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

namespace {

// The batch top-k of ReLU(z) for z [B, n]: values and flat indices (into the
// [B * n] flattening) of the min(k * B, B * n) largest entries, largest
// first. The one selection both decode paths use, so they keep the same
// entries even among ties.
std::tuple<torch::Tensor, torch::Tensor> BatchTopKEntries(const torch::Tensor& z, int64_t k) {
  const int64_t batch = z.size(0), n = z.size(1);
  const int64_t kept = std::min(k * batch, batch * n);
  auto [values, indices] = torch::relu(z).reshape({-1}).topk(kept);
  return {values, indices};
}

// x_hat [B, d] from the kept entries (values, flat_indices [kept]) of a
// [B, n] code, by SparseDecodeRagged. Fills *f [B, n] (detached).
torch::Tensor SparseBatchDecode(const torch::Tensor& values, const torch::Tensor& flat_indices,
                                int64_t batch, int64_t n, const torch::Tensor& W_dec,
                                const torch::Tensor& b_dec, torch::Tensor* f) {
  // Ascending flat index = grouped by row (token), as the ragged layout
  // needs; indices are distinct, so the order is unique.
  auto [sorted, order] = flat_indices.sort();
  torch::Tensor row_values = values.index_select(0, order);  // keeps the gradient
  torch::Tensor rows = sorted.div(n, "floor");
  torch::Tensor latents = sorted - rows * n;
  // offsets[r] = the first entry of row r (= the next row's start, or the
  // end, for an empty row).
  torch::Tensor offsets = torch::searchsorted(rows, torch::arange(batch, rows.options()));
  *f = torch::zeros({batch * n}, values.options())
           .index_put_({sorted}, row_values.detach())
           .view({batch, n});
  return SparseDecodeRagged(row_values, latents, offsets, W_dec, b_dec);
}

}  // namespace

torch::Tensor BatchTopKActivations(const torch::Tensor& z, int64_t k) {
  auto [values, indices] = BatchTopKEntries(z, k);
  return torch::zeros({z.numel()}, z.options()).scatter(0, indices, values).view(z.sizes());
}

torch::Tensor BatchTopKLoss(const torch::Tensor& x, const torch::Tensor& W_enc,
                            const torch::Tensor& b_enc, const torch::Tensor& W_dec,
                            const torch::Tensor& b_dec, int64_t k, int64_t k_aux,
                            double auxk_coefficient, const torch::Tensor& dead_mask,
                            bool sparse_decode, torch::Tensor* f, torch::Tensor* x_hat,
                            torch::Tensor* nmse, torch::Tensor* auxk) {
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);  // [B, n]
  if (sparse_decode) {
    auto [values, indices] = BatchTopKEntries(z, k);
    *x_hat = SparseBatchDecode(values, indices, z.size(0), z.size(1), W_dec, b_dec, f);
  } else {
    *f = BatchTopKActivations(z, k);          // [B, n]
    *x_hat = torch::addmm(b_dec, *f, W_dec);  // [B, d]
  }
  *nmse = BatchNmse(*x_hat, x);
  *auxk = auxk_coefficient > 0.0 ? AuxKLoss(z, W_dec, dead_mask, k_aux, (x - *x_hat).detach())
                                 : torch::zeros({}, x.options());
  return *nmse + auxk_coefficient * (*auxk);
}

double NextBatchTopKThreshold(double threshold, const torch::Tensor& f, double decay) {
  torch::NoGradGuard no_grad;
  torch::Tensor positive = f.masked_select(f > 0);
  if (positive.numel() == 0) return threshold;
  double smallest = positive.min().item<double>();
  if (threshold <= 0.0) return smallest;
  return decay * threshold + (1.0 - decay) * smallest;
}

TrainOutput BatchTopKSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  TrainOutput out;
  torch::Tensor nmse, auxk;
  out.loss = BatchTopKLoss(x, W_enc, b_enc, W_dec, b_dec, config_.k(), config_.k_aux(),
                           config_.auxk_coefficient(), info.dead_mask, config_.sparse_decode(),
                           &out.f, &out.x_hat, &nmse, &auxk);
  {
    torch::NoGradGuard no_grad;
    // EMA in double; stored as float32 like the other tensors.
    threshold_.fill_(NextBatchTopKThreshold(threshold(), out.f, config_.threshold_decay()));
  }
  out.terms["nmse"] = nmse.item<double>();
  out.terms["auxk"] = auxk.item<double>();
  out.terms["threshold"] = threshold();
  out.terms["dead_latents"] =
      info.dead_mask.defined() ? info.dead_mask.sum().item<double>() : 0.0;
  return out;
}

void BatchTopKSae::InitFromSample(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec.copy_(GeometricMedian(x, config_.geometric_median_iterations()));
}

void BatchTopKSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void BatchTopKSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

}  // namespace saelab
