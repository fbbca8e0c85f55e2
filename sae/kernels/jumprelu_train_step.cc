#include "sae/kernels/jumprelu_train_step.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "harness/parallel_for.h"
#include "sae/kernels/internal/buffers.h"
#include "sae/kernels/internal/row_ops.h"

namespace saelab {
namespace {

using kernels_internal::Axpy;
using kernels_internal::AxpyEntries;
using kernels_internal::ColumnSums;
using kernels_internal::DotEntries;
using kernels_internal::GroupByLatent;
using kernels_internal::SquaredDistance;
using kernels_internal::Total;

enum Slot : int {
  kPreActivations = 0,  // z of one row block      [rows, n]
  kXHat,                // x_hat                   [batch, d]
  kUpstream,            // G = 2 (x_hat - x) / batch [batch, d]
  kEncoderGradT,        // dW_enc transposed       [n, d]
  kSlotCount
};

constexpr int64_t kRowGrain = 16;
constexpr int64_t kLatentGrain = 64;

void CheckArguments(const torch::Tensor& x, const JumpReluParameters& p,
                    const JumpReluGradients& g) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat,
              "JumpReluTrainStep: x must be [batch, d] float32");
  const int64_t d = x.size(1), n = p.W_enc.size(1);
  auto check = [](const torch::Tensor& t, std::vector<int64_t> shape, const char* name) {
    kernels_internal::CheckFloatTensor(t, std::move(shape), "JumpReluTrainStep", name);
  };
  check(p.W_enc, {d, n}, "W_enc");
  check(p.b_enc, {n}, "b_enc");
  check(p.W_dec, {n, d}, "W_dec");
  check(p.b_dec, {d}, "b_dec");
  TORCH_CHECK(p.log_threshold.defined() == g.log_threshold.defined(),
              "JumpReluTrainStep: log_threshold and its gradient must both be given or neither");
  if (p.log_threshold.defined()) check(p.log_threshold, {n}, "log_threshold");
  check(g.W_enc, {d, n}, "the W_enc gradient");
  check(g.b_enc, {n}, "the b_enc gradient");
  check(g.W_dec, {n, d}, "the W_dec gradient");
  check(g.b_dec, {d}, "the b_dec gradient");
  if (g.log_threshold.defined()) check(g.log_threshold, {n}, "the log_threshold gradient");
}

}  // namespace

torch::Tensor JumpReluTrainStepWorkspace::Buffer(int slot, int64_t rows, int64_t cols) {
  return buffers_.Get(slot, rows, cols);
}

JumpReluTrainStepResult JumpReluTrainStep(const torch::Tensor& x, const JumpReluParameters& params,
                                          const JumpReluTrainStepOptions& options,
                                          const JumpReluGradients& grads,
                                          JumpReluTrainStepWorkspace* workspace) {
  CheckArguments(x, params, grads);
  TORCH_CHECK(options.bandwidth > 0, "JumpReluTrainStep: bandwidth must be > 0");
  const torch::Tensor x_in = x.contiguous();
  const int64_t batch = x.size(0), d = x.size(1), n = params.W_enc.size(1);
  JumpReluTrainStepResult result;
  if (batch == 0) return result;

  // theta as the dense path computes it (one exp over the [n] tensor), and
  // the band test as its RectangleKernel does, in float32. No thresholds:
  // theta = 0, no band (ReLU).
  const bool thresholds = params.log_threshold.defined();
  const torch::Tensor theta_tensor =
      thresholds ? params.log_threshold.exp().contiguous() : torch::zeros({n}, torch::kFloat);
  const float* theta = theta_tensor.data_ptr<float>();
  const float bandwidth = static_cast<float>(options.bandwidth);
  // The L1 term's decoder norms, as the dense path computes them.
  const bool l1 = options.l1_coefficient != 0.0;
  const torch::Tensor norms_tensor =
      l1 ? params.W_dec.norm(2, {1}).contiguous() : torch::Tensor();
  const float* norms = l1 ? norms_tensor.data_ptr<float>() : nullptr;

  // Pass 0, per row block: z = b_enc + x W_enc (the bias first, the GEMM
  // accumulating onto it, as torch::addmm computes it), scanned for the
  // firing and band entries; stops once they pass max_density.
  workspace->firing.resize(batch);
  workspace->band.resize(batch);
  const double cap = options.max_density * static_cast<double>(batch) * static_cast<double>(n);
  const int64_t block_rows = kernels_internal::PreActivationBlockRows(batch, n);
  int64_t entries = 0, firing_total = 0;
  for (int64_t r0 = 0; r0 < batch; r0 += block_rows) {
    const int64_t rows = std::min(block_rows, batch - r0);
    torch::Tensor z = workspace->Buffer(kPreActivations, rows, n);
    z.copy_(params.b_enc.unsqueeze(0).expand({rows, n}));
    torch::addmm_out(z, z, x_in.narrow(0, r0, rows), params.W_enc);
    const float* zs = z.data_ptr<float>();
    ParallelFor(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        auto& firing = workspace->firing[r0 + r];
        auto& band = workspace->band[r0 + r];
        firing.clear();
        band.clear();
        const float* z_row = zs + r * n;
        for (int64_t i = 0; i < n; ++i) {
          const float zi = z_row[i];
          if (zi > theta[i]) firing.push_back({static_cast<int32_t>(i), zi, 0.0f});
          if (thresholds && std::fabs((zi - theta[i]) / bandwidth) <= 0.5f) {
            band.push_back({static_cast<int32_t>(i), zi, 0.0f});
          }
        }
      }
    });
    for (int64_t r = r0; r < r0 + rows; ++r) {
      firing_total += static_cast<int64_t>(workspace->firing[r].size());
      entries += static_cast<int64_t>(workspace->firing[r].size() + workspace->band[r].size());
    }
    if (static_cast<double>(entries) > cap) {
      result.density = static_cast<double>(entries) /
                       (static_cast<double>(r0 + rows) * static_cast<double>(n));
      return result;
    }
  }
  result.computed = true;
  result.density = static_cast<double>(entries) / (static_cast<double>(batch) * n);
  result.l0 = static_cast<double>(firing_total) / batch;

  const float* xs = x_in.data_ptr<float>();
  const float* W_dec = params.W_dec.data_ptr<float>();
  const float* b_dec = params.b_dec.data_ptr<float>();
  torch::Tensor x_hat = workspace->Buffer(kXHat, batch, d);
  torch::Tensor upstream = workspace->Buffer(kUpstream, batch, d);
  float* xh = x_hat.data_ptr<float>();
  float* g = upstream.data_ptr<float>();

  // Pass 1, per row: x_hat (firing entries in latent order, the bias last)
  // and the squared error; then G. The L1 term's per-row sums.
  std::vector<double> squares(batch), l1_sums(batch);
  const float scale = static_cast<float>(2.0 / batch);
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* row = xh + b * d;
      std::fill(row, row + d, 0.0f);
      const auto& firing = workspace->firing[b];
      AxpyEntries(
          d, static_cast<int64_t>(firing.size()), [&](int64_t q) { return firing[q].z; },
          [&](int64_t q) { return W_dec + firing[q].latent * d; }, row);
      for (int64_t j = 0; j < d; ++j) row[j] += b_dec[j];
      squares[b] = SquaredDistance(d, row, xs + b * d);
      if (l1) {
        double sum = 0;
        for (const auto& e : workspace->firing[b]) sum += static_cast<double>(e.z) * norms[e.latent];
        l1_sums[b] = sum;
      }
      float* g_row = g + b * d;
      for (int64_t j = 0; j < d; ++j) g_row[j] = scale * (row[j] - xs[b * d + j]);
    }
  });
  result.mse = Total(squares) / batch;
  result.l1 = l1 ? Total(l1_sums) / batch : 0.0;
  result.loss = result.mse + options.sparsity_coefficient * result.l0 +
                options.l1_coefficient * result.l1;
  const float l1_scale = static_cast<float>(options.l1_coefficient / batch);

  // Pass 2, per row: df = <G_b, W_dec[i]> (plus the L1 term's
  // mu ||W_dec[i]|| / batch) of every firing and band entry.
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      const float* g_row = g + b * d;
      for (auto* entries : {&workspace->firing[b], &workspace->band[b]}) {
        auto& list = *entries;
        DotEntries(
            d, g_row, static_cast<int64_t>(list.size()),
            [&](int64_t q) { return W_dec + list[q].latent * d; },
            [&](int64_t q, float dot) {
              list[q].df = dot + (l1 ? l1_scale * norms[list[q].latent] : 0.0f);
            });
      }
    }
  });

  // Pass 3: the entries grouped by latent, rows in order (counting sorts,
  // sequential: O(entries)).
  std::vector<std::pair<int32_t, int32_t>>& from = workspace->grouped_from;
  GroupByLatent(workspace->firing, n, &workspace->firing_offsets, &from);
  workspace->firing_rows.resize(from.size());
  workspace->firing_values.resize(from.size());
  workspace->firing_grouped_df.resize(from.size());
  for (size_t e = 0; e < from.size(); ++e) {
    workspace->firing_rows[e] = from[e].first;
    workspace->firing_values[e] = workspace->firing[from[e].first][from[e].second].z;
    workspace->firing_grouped_df[e] = workspace->firing[from[e].first][from[e].second].df;
  }
  GroupByLatent(workspace->band, n, &workspace->band_offsets, &from);
  workspace->band_grouped_df.resize(from.size());
  for (size_t e = 0; e < from.size(); ++e) {
    workspace->band_grouped_df[e] = workspace->band[from[e].first][from[e].second].df;
  }

  // Pass 4, per latent: the decoder row's and encoder column's gradients
  // over its firing entries, and theta's over its band entries.
  torch::Tensor encoder_grad_t = workspace->Buffer(kEncoderGradT, n, d);
  float* ge_t = encoder_grad_t.data_ptr<float>();
  float* gd = grads.W_dec.data_ptr<float>();
  float* gb_enc = grads.b_enc.data_ptr<float>();
  float* g_log_theta = thresholds ? grads.log_threshold.data_ptr<float>() : nullptr;
  const float step_term =
      static_cast<float>(-options.sparsity_coefficient / (options.bandwidth * batch));
  const int64_t* f_off = workspace->firing_offsets.data();
  const int64_t* k_off = workspace->band_offsets.data();
  ParallelFor(0, n, kLatentGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* dec_row = gd + i * d;
      float* enc_row = ge_t + i * d;
      std::fill(dec_row, dec_row + d, 0.0f);
      std::fill(enc_row, enc_row + d, 0.0f);
      const int64_t e0 = f_off[i], count = f_off[i + 1] - e0;
      const int32_t* rows = workspace->firing_rows.data() + e0;
      const float* values = workspace->firing_values.data() + e0;
      const float* dfs = workspace->firing_grouped_df.data() + e0;
      AxpyEntries(
          d, count, [&](int64_t q) { return values[q]; },
          [&](int64_t q) { return g + rows[q] * d; }, dec_row);
      AxpyEntries(
          d, count, [&](int64_t q) { return dfs[q]; }, [&](int64_t q) { return xs + rows[q] * d; },
          enc_row);
      float bias = 0.0f, activity = 0.0f;
      for (int64_t q = 0; q < count; ++q) {
        activity += values[q];
        bias += dfs[q];
      }
      gb_enc[i] = bias;
      // The L1 term through ||W_dec[i]||: (mu / batch) (sum_b z_bi) W_dec[i] / ||W_dec[i]||.
      if (l1 && activity != 0.0f && norms[i] > 0.0f) {
        Axpy(d, l1_scale * activity / norms[i], W_dec + i * d, dec_row);
      }
      if (!thresholds) continue;
      const float jump_scale = -theta[i] / bandwidth;
      float d_theta = 0.0f;
      for (int64_t e = k_off[i]; e < k_off[i + 1]; ++e) {
        d_theta += jump_scale * workspace->band_grouped_df[e] + step_term;
      }
      g_log_theta[i] = theta[i] * d_theta;
    }
  });
  grads.W_enc.copy_(encoder_grad_t.t());

  // db_dec = sum_b G_b, per column in row order.
  ColumnSums(batch, d, g, grads.b_dec.data_ptr<float>());

  result.fired = torch::zeros({n}, torch::kBool);
  bool* fired = result.fired.data_ptr<bool>();
  for (int64_t i = 0; i < n; ++i) fired[i] = f_off[i + 1] > f_off[i];
  result.x_hat = x_hat;
  return result;
}

}  // namespace saelab
