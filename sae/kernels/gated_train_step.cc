#include "sae/kernels/gated_train_step.h"

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "harness/parallel_for.h"
#include "sae/kernels/internal/buffers.h"
#include "sae/kernels/internal/row_ops.h"

namespace saelab {
namespace {

using kernels_internal::AxpyEntries;
using kernels_internal::ColumnSums;
using kernels_internal::DotEntries;
using kernels_internal::GroupByLatent;
using kernels_internal::SquaredDistance;
using kernels_internal::Total;

enum Slot : int {
  kGemm = 0,      // u = x_c W of one row block  [rows, n]
  kCentered,      // x_c                         [batch, d]
  kXHat,          // x_hat                       [batch, d]
  kUpstream,      // G                           [batch, d]
  kViaGate,       // via, then H                 [batch, d]
  kEncoderGradT,  // dW transposed               [n, d]
  kSlotCount
};

constexpr int64_t kRowGrain = 16;
constexpr int64_t kLatentGrain = 64;

void CheckArguments(const torch::Tensor& x, const GatedParameters& p, const GatedParameters& g) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat,
              "GatedTrainStep: x must be [batch, d] float32");
  const int64_t d = x.size(1), n = p.W_enc.size(1);
  for (const auto* set : {&p, &g}) {
    const char* what = set == &p ? "" : " gradient";
    auto check = [&](const torch::Tensor& t, std::vector<int64_t> shape, const std::string& name) {
      kernels_internal::CheckFloatTensor(t, std::move(shape), "GatedTrainStep",
                                         (name + what).c_str());
    };
    check(set->W_enc, {d, n}, "W_enc");
    check(set->b_enc, {n}, "b_enc");
    check(set->r_mag, {n}, "r_mag");
    check(set->b_mag, {n}, "b_mag");
    check(set->W_dec, {n, d}, "W_dec");
    check(set->b_dec, {d}, "b_dec");
  }
}

}  // namespace

torch::Tensor GatedTrainStepWorkspace::Buffer(int slot, int64_t rows, int64_t cols) {
  return buffers_.Get(slot, rows, cols);
}

GatedTrainStepResult GatedTrainStep(const torch::Tensor& x, const GatedParameters& params,
                                    const GatedTrainStepOptions& options,
                                    const GatedParameters& grads,
                                    GatedTrainStepWorkspace* workspace) {
  CheckArguments(x, params, grads);
  const torch::Tensor x_in = x.contiguous();
  const int64_t batch = x.size(0), d = x.size(1), n = params.W_enc.size(1);
  GatedTrainStepResult result;
  if (batch == 0) return result;

  // x_c = x - b_dec, as the dense path computes it.
  torch::Tensor centered = workspace->Buffer(kCentered, batch, d);
  torch::sub_out(centered, x_in, params.b_dec);
  const float* xc = centered.data_ptr<float>();
  const torch::Tensor scale_tensor = params.r_mag.exp().contiguous();  // exp(r_mag)
  const float* scale = scale_tensor.data_ptr<float>();
  const float* b_gate = params.b_enc.data_ptr<float>();
  const float* b_mag = params.b_mag.data_ptr<float>();

  // Pass 0, per row block: u = x_c W, scanned for open gates; stops once
  // they pass max_density.
  workspace->open.resize(batch);
  const double cap = options.max_density * static_cast<double>(batch) * static_cast<double>(n);
  const int64_t block_rows = kernels_internal::PreActivationBlockRows(batch, n);
  int64_t open_total = 0;
  for (int64_t r0 = 0; r0 < batch; r0 += block_rows) {
    const int64_t rows = std::min(block_rows, batch - r0);
    torch::Tensor u = workspace->Buffer(kGemm, rows, n);
    torch::mm_out(u, centered.narrow(0, r0, rows), params.W_enc);
    const float* us = u.data_ptr<float>();
    ParallelFor(0, rows, kRowGrain, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        auto& open = workspace->open[r0 + r];
        open.clear();
        const float* u_row = us + r * n;
        for (int64_t i = 0; i < n; ++i) {
          const float gate = u_row[i] + b_gate[i];
          if (gate > 0.0f) {
            const float mag = scale[i] * u_row[i] + b_mag[i];
            open.push_back({static_cast<int32_t>(i), u_row[i], gate, mag, 0.0f, 0.0f});
          }
        }
      }
    });
    for (int64_t r = r0; r < r0 + rows; ++r) open_total += workspace->open[r].size();
    if (static_cast<double>(open_total) > cap) {
      result.density =
          static_cast<double>(open_total) / (static_cast<double>(r0 + rows) * static_cast<double>(n));
      return result;
    }
  }
  result.computed = true;
  result.density = static_cast<double>(open_total) / (static_cast<double>(batch) * n);

  const float* xs = x_in.data_ptr<float>();
  const float* W_dec = params.W_dec.data_ptr<float>();
  const float* b_dec = params.b_dec.data_ptr<float>();
  torch::Tensor x_hat = workspace->Buffer(kXHat, batch, d);
  torch::Tensor upstream = workspace->Buffer(kUpstream, batch, d);
  torch::Tensor via = workspace->Buffer(kViaGate, batch, d);
  float* xh = x_hat.data_ptr<float>();
  float* g = upstream.data_ptr<float>();
  float* h = via.data_ptr<float>();

  // Pass 1, per row: x_hat and the gate's reconstruction (open gates in
  // latent order, the bias last), their squared errors, the L1 sum; then
  // G and H in place of the reconstruction.
  std::vector<double> squares(batch), aux_squares(batch), l1_sums(batch), active(batch);
  const float two_over_batch = static_cast<float>(2.0 / batch);
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* row = xh + b * d;
      float* via_row = h + b * d;
      std::fill(row, row + d, 0.0f);
      std::fill(via_row, via_row + d, 0.0f);
      const auto& open = workspace->open[b];
      const int64_t entries = static_cast<int64_t>(open.size());
      auto decoder_row = [&](int64_t q) { return W_dec + open[q].latent * d; };
      AxpyEntries</*SkipZero=*/true>(
          d, entries, [&](int64_t q) { return std::max(open[q].mag, 0.0f); }, decoder_row, row);
      AxpyEntries(
          d, entries, [&](int64_t q) { return open[q].gate; }, decoder_row, via_row);
      double l1 = 0, count = 0;
      for (const auto& e : open) {
        if (std::max(e.mag, 0.0f) != 0.0f) ++count;
        l1 += e.gate;
      }
      for (int64_t j = 0; j < d; ++j) {
        row[j] += b_dec[j];
        via_row[j] += b_dec[j];
      }
      squares[b] = SquaredDistance(d, row, xs + b * d);
      aux_squares[b] = SquaredDistance(d, via_row, xs + b * d);
      l1_sums[b] = l1;
      active[b] = count;
      float* g_row = g + b * d;
      for (int64_t j = 0; j < d; ++j) {
        g_row[j] = two_over_batch * (row[j] - xs[b * d + j]);
        via_row[j] = two_over_batch * (via_row[j] - xs[b * d + j]);
      }
    }
  });
  result.mse = Total(squares) / batch;
  result.aux = Total(aux_squares) / batch;
  result.l1 = Total(l1_sums) / batch;
  result.l0 = Total(active) / batch;
  result.loss = result.mse + options.l1_coefficient * result.l1 + result.aux;

  // Pass 2, per row: each open gate's dmag and dgate.
  const float l1_term = static_cast<float>(options.l1_coefficient / batch);
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      auto& open = workspace->open[b];
      const int64_t entries = static_cast<int64_t>(open.size());
      auto decoder_row = [&](int64_t q) { return W_dec + open[q].latent * d; };
      // Every entry's dot with G (nearly all magnitudes are positive),
      // then 0 for the others.
      DotEntries(d, g + b * d, entries, decoder_row, [&](int64_t q, float dot) {
        open[q].dmag = open[q].mag > 0.0f ? dot : 0.0f;
      });
      DotEntries(d, h + b * d, entries, decoder_row,
                 [&](int64_t q, float dot) { open[q].dgate = l1_term + dot; });
    }
  });

  // Pass 3: the open gates grouped by latent, rows in order.
  std::vector<int64_t>& offsets = workspace->offsets;
  GroupByLatent(workspace->open, n, &offsets, &workspace->from);

  // Pass 4, per latent: its decoder row's and encoder column's gradients
  // and its four scalars; s_i = sum_b du_bi for db_dec.
  torch::Tensor encoder_grad_t = workspace->Buffer(kEncoderGradT, n, d);
  float* ge_t = encoder_grad_t.data_ptr<float>();
  float* gd = grads.W_dec.data_ptr<float>();
  float* g_gate = grads.b_enc.data_ptr<float>();
  float* g_mag = grads.b_mag.data_ptr<float>();
  float* g_r = grads.r_mag.data_ptr<float>();
  torch::Tensor du_sums_tensor = torch::empty({n}, torch::kFloat);
  float* du_sums = du_sums_tensor.data_ptr<float>();
  result.fired = torch::zeros({n}, torch::kBool);
  bool* fired = result.fired.data_ptr<bool>();
  ParallelFor(0, n, kLatentGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> du;
    for (int64_t i = begin; i < end; ++i) {
      float* dec_row = gd + i * d;
      float* enc_row = ge_t + i * d;
      std::fill(dec_row, dec_row + d, 0.0f);
      std::fill(enc_row, enc_row + d, 0.0f);
      const int64_t p0 = offsets[i], count = offsets[i + 1] - p0;
      const std::pair<int32_t, int32_t>* from = workspace->from.data() + p0;
      auto entry = [&](int64_t q) -> const auto& {
        return workspace->open[from[q].first][from[q].second];
      };
      // du of each entry, computed once for its Axpy and its sum.
      du.resize(count);
      float gate_sum = 0.0f, mag_sum = 0.0f, r_sum = 0.0f, du_sum = 0.0f;
      bool any = false;
      for (int64_t q = 0; q < count; ++q) {
        const auto& e = entry(q);
        if (std::max(e.mag, 0.0f) != 0.0f) any = true;
        du[q] = e.dgate + scale[i] * e.dmag;
        gate_sum += e.dgate;
        mag_sum += e.dmag;
        r_sum += e.dmag * scale[i] * e.u;
        du_sum += du[q];
      }
      AxpyEntries</*SkipZero=*/true>(
          d, count, [&](int64_t q) { return std::max(entry(q).mag, 0.0f); },
          [&](int64_t q) { return g + from[q].first * d; }, dec_row);
      AxpyEntries(
          d, count, [&](int64_t q) { return du[q]; },
          [&](int64_t q) { return xc + from[q].first * d; }, enc_row);
      g_gate[i] = gate_sum;
      g_mag[i] = mag_sum;
      g_r[i] = r_sum;
      du_sums[i] = du_sum;
      fired[i] = any;
    }
  });
  grads.W_enc.copy_(encoder_grad_t.t());
  // db_dec = sum_b G_b - W (sum_b du_b).
  ColumnSums(batch, d, g, grads.b_dec.data_ptr<float>());
  grads.b_dec.sub_(torch::mv(params.W_enc, du_sums_tensor));
  result.x_hat = x_hat;
  return result;
}

}  // namespace saelab
