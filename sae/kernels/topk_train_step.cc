#include "sae/kernels/topk_train_step.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "harness/parallel_for.h"
#include "sae/kernels/internal/buffers.h"
#include "sae/kernels/internal/row_ops.h"

namespace saelab {
namespace {

// Buffer slots of the workspace.
enum Slot : int {
  kCentered = 0,   // x - b_dec            [batch, d]
  kXHat,           // x_hat                [batch, d]
  kUpstreamMain,   // G of the main decode [batch, d]
  kUpstreamMulti,  // x_hat_multi, then its G
  kUpstreamAux,    // e_hat, then its G
  kDzMain,         // dz of the top-K slots  [batch, K]
  kEncoderGradT,   // dW_enc transposed      [n, d]
  kAuxSlice,       // a column slice of G_aux or x_c [batch, kAuxSliceWidth]
  kAuxDecoderPacked,  // picked decoder rows, by 64-column slice [m, d]
  kSlotCount
};

// Which decode an active entry feeds (its upstream gradient's buffer).
enum Source : uint8_t { kMain = 0, kMultiOnly = 1 };

// Rows of per-row passes handed to one task; a row costs O(k * d).
constexpr int64_t kRowGrain = 16;
// Latents handed to one task in the gradient pass.
constexpr int64_t kLatentGrain = 64;
// AuxK's gradient pass reads column slices of 32 (4 AVX2 accumulators;
// 64 measured slower) over chunks of rows whose slice is 512 KB (it stays
// in L2).
constexpr int64_t kAuxSliceWidth = 32;
constexpr int64_t kAuxSliceFloats = int64_t{1} << 17;
// AuxK's e_hat is summed row by row over 64-column slices when at most
// this many latents are picked: a block's rows then take the same slice of
// the picked decoder rows (at most 1 MiB) in turn, from L2, and each row's
// slice sum stays in registers. With more, that slice falls out of L2, and
// summing latent by latent within row blocks measured 4-10% faster (d 768,
// n 16384 and 65536, half the latents dead).
constexpr int64_t kRowWiseAuxDecodeMaxLatents = 4096;

// Rows per block in AuxK's sparse passes, for m picked latents and k_aux
// slots per row: about 16 entries per (block, latent) on average, so each
// decoder row (e_hat, dz) and each gradient row (dW) is loaded once per 16
// entries, within [128, 1024] rows (a 128-row block of G_aux and x_c at
// d 768 is 768 KB, cache-sized) and at most the batch.
int64_t AuxBlockRows(int64_t batch, int64_t m, int64_t k_aux) {
  const int64_t rows = std::clamp<int64_t>(16 * m / std::max<int64_t>(k_aux, 1), 128, 1024);
  return std::max<int64_t>(1, std::min(rows, batch));
}

using kernels_internal::Axpy;
using kernels_internal::AxpyEntries;
using kernels_internal::ColumnSums;
using kernels_internal::DotEntries;
using kernels_internal::SquaredDistance;
using kernels_internal::Total;

// BatchNmse's denominator guard (sae/topk.cc): sum ||b||^2, at least the
// smallest normal float.
double Denominator(double sum_squares) {
  return std::max(sum_squares, static_cast<double>(std::numeric_limits<float>::min()));
}

void CheckArguments(const torch::Tensor& x, const TopKParameters& p, const TopKGradients& g) {
  TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat,
              "TopKTrainStep: x must be [batch, d] float32");
  const int64_t d = x.size(1), n = p.W_enc.size(1);
  auto check = [](const torch::Tensor& t, std::vector<int64_t> shape, const char* name) {
    kernels_internal::CheckFloatTensor(t, std::move(shape), "TopKTrainStep", name);
  };
  check(p.W_enc, {d, n}, "W_enc");
  check(p.b_enc, {n}, "b_enc");
  check(p.W_dec, {n, d}, "W_dec");
  check(p.b_dec, {d}, "b_dec");
  check(g.W_enc, {d, n}, "the W_enc gradient");
  check(g.b_enc, {n}, "the b_enc gradient");
  check(g.W_dec, {n, d}, "the W_dec gradient");
  check(g.b_dec, {d}, "the b_dec gradient");
}

}  // namespace

torch::Tensor TopKTrainStepWorkspace::Buffer(int slot, int64_t rows, int64_t cols) {
  return buffers_.Get(slot, rows, cols);
}

torch::Tensor TopKTrainStepWorkspace::CenteredInput(const torch::Tensor& x,
                                                    const torch::Tensor& b_dec) {
  torch::Tensor centered = Buffer(kCentered, x.size(0), x.size(1));
  torch::sub_out(centered, x, b_dec);
  return centered;
}

TopKTrainStepResult TopKTrainStep(const torch::Tensor& x, const TopKParameters& params,
                                  const torch::Tensor& dead_mask,
                                  const TopKTrainStepOptions& options, const TopKGradients& grads,
                                  TopKTrainStepWorkspace* workspace) {
  CheckArguments(x, params, grads);
  const torch::Tensor x_in = x.contiguous();
  const int64_t n = params.W_enc.size(1);
  const bool multi = options.multi_topk_factor > 0;
  TopKEncodeOptions encode_options;
  encode_options.k = multi ? std::min(n, options.multi_topk_factor * options.k) : options.k;
  encode_options.k_aux = options.auxk_coefficient > 0 ? options.k_aux : 0;
  encode_options.dead_mask = dead_mask;
  const torch::Tensor centered = workspace->CenteredInput(x_in, params.b_dec);
  const TopKCode code =
      TopKEncode(centered, params.W_enc, params.b_enc, encode_options, &workspace->encode);
  return TopKTrainStepFromCode(x_in, centered, params, code, options, grads, workspace);
}

TopKTrainStepResult TopKTrainStepFromCode(const torch::Tensor& x, const torch::Tensor& centered,
                                          const TopKParameters& params, const TopKCode& code,
                                          const TopKTrainStepOptions& options,
                                          const TopKGradients& grads,
                                          TopKTrainStepWorkspace* workspace) {
  CheckArguments(x, params, grads);
  const torch::Tensor x_in = x.contiguous();
  const int64_t batch = x.size(0), d = x.size(1), n = params.W_enc.size(1), k = options.k;
  const int64_t big_k = code.values.size(1);
  TORCH_CHECK(code.values.dim() == 2 && code.values.size(0) == batch && big_k >= k &&
                  code.indices.sizes() == code.values.sizes() && centered.sizes() == x.sizes(),
              "TopKTrainStepFromCode: code ", code.values.sizes(), " does not fit batch ", batch,
              " and k ", k);
  const bool multi = options.multi_topk_factor > 0 && big_k > k;
  const double multi_coefficient = multi ? options.multi_topk_coefficient : 0.0;
  const int64_t k_aux = code.aux_values.defined() ? code.aux_values.size(1) : 0;

  // AuxK's latents: those some row picked with z > 0 (the others get no
  // gradient from it), in ascending order.
  const float* z_aux = k_aux > 0 ? code.aux_values.data_ptr<float>() : nullptr;
  const int64_t* idx_aux = k_aux > 0 ? code.aux_indices.data_ptr<int64_t>() : nullptr;
  std::vector<int64_t>& picked_latents = workspace->aux_latents;
  picked_latents.clear();
  if (k_aux > 0) {
    std::vector<uint8_t>& is_picked = workspace->aux_picked;
    is_picked.assign(n, 0);
    for (int64_t e = 0; e < batch * k_aux; ++e) {
      if (z_aux[e] > 0.0f) is_picked[idx_aux[e]] = 1;
    }
    for (int64_t i = 0; i < n; ++i) {
      if (is_picked[i]) picked_latents.push_back(i);
    }
  }
  const int64_t m = static_cast<int64_t>(picked_latents.size());

  TopKTrainStepResult result;
  result.auxk_on = k_aux > 0;
  result.multi_topk_on = multi;
  torch::Tensor x_hat = workspace->Buffer(kXHat, batch, d);
  torch::Tensor up_main = workspace->Buffer(kUpstreamMain, batch, d);
  torch::Tensor up_multi = multi ? workspace->Buffer(kUpstreamMulti, batch, d) : torch::Tensor();
  torch::Tensor up_aux = k_aux > 0 ? workspace->Buffer(kUpstreamAux, batch, d) : torch::Tensor();
  torch::Tensor dz_main = workspace->Buffer(kDzMain, batch, big_k);
  const bool aux_sparse = m > 0;

  const float* xs = x_in.data_ptr<float>();
  const torch::Tensor centered_in = centered.contiguous();
  const float* xc = centered_in.data_ptr<float>();
  const float* W_dec = params.W_dec.data_ptr<float>();
  const float* b_dec = params.b_dec.data_ptr<float>();
  const float* z = code.values.data_ptr<float>();
  const int64_t* idx = code.indices.data_ptr<int64_t>();
  float* xh = x_hat.data_ptr<float>();
  float* g_main = up_main.data_ptr<float>();
  float* g_multi = multi ? up_multi.data_ptr<float>() : nullptr;
  float* g_aux = k_aux > 0 ? up_aux.data_ptr<float>() : nullptr;
  float* dz = dz_main.data_ptr<float>();

  // AuxK, sparse: its entries (z > 0) grouped per block of rows by latent,
  // in (row, slot) order, for the dz pass and the gradients; then e_hat.
  // Each row sums its entries in latent order (its slot order) either way.
  const int64_t aux_block_rows = aux_sparse ? AuxBlockRows(batch, m, k_aux) : 0;
  const int64_t aux_blocks = aux_sparse ? (batch + aux_block_rows - 1) / aux_block_rows : 0;
  std::vector<int64_t>& aux_base = workspace->aux_block_base;
  std::vector<int32_t>& aux_offsets = workspace->aux_block_offsets;
  std::vector<int32_t>& aux_rows = workspace->aux_entry_rows;
  std::vector<int32_t>& aux_slots = workspace->aux_entry_slots;
  const int64_t* picked = workspace->aux_latents.data();
  // Block blk's groups: visit(i, rows, slots, begin, end) for each picked
  // latent j in [j0, j1) with entries there, its entries' rows and flat
  // slots being rows[begin, end) and slots[begin, end).
  auto for_each_aux_group = [&](int64_t blk, int64_t j0, int64_t j1, auto&& visit) {
    const int32_t* offsets = aux_offsets.data() + blk * (n + 1);
    const int32_t* rows = aux_rows.data() + aux_base[blk];
    const int32_t* slots = aux_slots.data() + aux_base[blk];
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t i = picked[j];
      if (offsets[i] < offsets[i + 1]) visit(i, rows, slots, offsets[i], offsets[i + 1]);
    }
  };
  if (aux_sparse) {
    aux_base.assign(aux_blocks + 1, 0);
    aux_offsets.resize(aux_blocks * (n + 1));
    ParallelFor(0, aux_blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t e0 = blk * aux_block_rows * k_aux;
        const int64_t e1 = std::min(batch, (blk + 1) * aux_block_rows) * k_aux;
        int64_t count = 0;
        for (int64_t e = e0; e < e1; ++e) count += z_aux[e] > 0.0f;
        aux_base[blk + 1] = count;
      }
    });
    for (int64_t blk = 0; blk < aux_blocks; ++blk) aux_base[blk + 1] += aux_base[blk];
    aux_rows.resize(aux_base[aux_blocks]);
    aux_slots.resize(aux_base[aux_blocks]);
    ParallelFor(0, aux_blocks, 1, [&](int64_t begin, int64_t end) {
      std::vector<int32_t> next(n);
      for (int64_t blk = begin; blk < end; ++blk) {
        const int64_t e0 = blk * aux_block_rows * k_aux;
        const int64_t e1 = std::min(batch, (blk + 1) * aux_block_rows) * k_aux;
        int32_t* offsets = aux_offsets.data() + blk * (n + 1);
        std::fill(offsets, offsets + n + 1, 0);
        for (int64_t e = e0; e < e1; ++e) {
          if (z_aux[e] > 0.0f) ++offsets[idx_aux[e] + 1];
        }
        for (int64_t i = 0; i < n; ++i) offsets[i + 1] += offsets[i];
        std::copy(offsets, offsets + n, next.begin());
        int32_t* rows = aux_rows.data() + aux_base[blk];
        int32_t* slots = aux_slots.data() + aux_base[blk];
        for (int64_t e = e0; e < e1; ++e) {
          if (z_aux[e] <= 0.0f) continue;
          const int32_t at = next[idx_aux[e]]++;
          rows[at] = static_cast<int32_t>(e / k_aux);
          slots[at] = static_cast<int32_t>(e);
        }
      }
    });
    if (m > kRowWiseAuxDecodeMaxLatents) {
      // Latent by latent within each block: each picked decoder row read
      // once per block for all the block's entries of that latent.
      ParallelFor(0, aux_blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t blk = begin; blk < end; ++blk) {
          const int64_t r0 = blk * aux_block_rows, r1 = std::min(batch, r0 + aux_block_rows);
          std::fill(g_aux + r0 * d, g_aux + r1 * d, 0.0f);
          for_each_aux_group(
              blk, 0, m,
              [&](int64_t i, const int32_t* rows, const int32_t* slots, int32_t e0, int32_t e1) {
                const float* w = W_dec + i * d;
                for (int32_t e = e0; e < e1; ++e) Axpy(d, z_aux[slots[e]], w, g_aux + rows[e] * d);
              });
        }
      });
    } else {
      // The picked decoder rows packed slice by slice: slice j0 is an
      // [m, width] block at packed + m * j0. Read in place, the rows (d
      // floats apart: at d 768, 48 cache lines, so every row's slice falls
      // in 1/16 of L2's sets) evicted one another.
      float* packed = workspace->Buffer(kAuxDecoderPacked, m, d).data_ptr<float>();
      std::vector<int32_t>& packed_row = workspace->aux_packed_row;
      packed_row.assign(n, 0);
      for (int64_t j = 0; j < m; ++j) packed_row[picked[j]] = static_cast<int32_t>(j);
      ParallelFor(0, m, kLatentGrain, [&](int64_t begin, int64_t end) {
        for (int64_t j = begin; j < end; ++j) {
          for (int64_t j0 = 0; j0 < d; j0 += 64) {
            const int64_t width = std::min<int64_t>(64, d - j0);
            std::memcpy(packed + m * j0 + j * width, W_dec + picked[j] * d + j0,
                        width * sizeof(float));
          }
        }
      });
      const int32_t* packed_of = packed_row.data();
      ParallelFor(0, aux_blocks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t blk = begin; blk < end; ++blk) {
          const int64_t r0 = blk * aux_block_rows, r1 = std::min(batch, r0 + aux_block_rows);
          for (int64_t j0 = 0; j0 < d; j0 += 64) {
            const int64_t width = std::min<int64_t>(64, d - j0);
            const float* slice = packed + m * j0;
            for (int64_t r = r0; r < r1; ++r) {
              const float* z_row = z_aux + r * k_aux;
              const int64_t* idx_row = idx_aux + r * k_aux;
              float* out = g_aux + r * d + j0;
              std::fill(out, out + width, 0.0f);
              AxpyEntries</*SkipZero=*/true>(
                  width, k_aux, [&](int64_t s) { return std::max(z_row[s], 0.0f); },
                  [&](int64_t s) { return slice + packed_of[idx_row[s]] * width; }, out);
            }
          }
        }
      });
    }
  } else if (k_aux > 0) {
    // No aux slot has z > 0: e_hat is zero.
    up_aux.zero_();
  }

  // Pass 1, per row: the decodes (summed from zero in slot order, the bias
  // last, as SparseDecode does) and the rows' squared sums.
  std::vector<double> x_squares(batch), main_squares(batch), multi_squares(batch);
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      float* row = xh + b * d;
      const float* z_row = z + b * big_k;
      const int64_t* idx_row = idx + b * big_k;
      auto value = [&](int64_t s) { return std::max(z_row[s], 0.0f); };
      auto decoder_row = [&](int64_t s) { return W_dec + idx_row[s] * d; };
      std::fill(row, row + d, 0.0f);
      AxpyEntries</*SkipZero=*/true>(d, k, value, decoder_row, row);
      if (multi) {
        float* multi_row = g_multi + b * d;
        std::memcpy(multi_row, row, d * sizeof(float));
        AxpyEntries</*SkipZero=*/true>(
            d, big_k - k, [&](int64_t s) { return value(k + s); },
            [&](int64_t s) { return decoder_row(k + s); }, multi_row);
        for (int64_t j = 0; j < d; ++j) multi_row[j] += b_dec[j];
        multi_squares[b] = SquaredDistance(d, multi_row, xs + b * d);
      }
      for (int64_t j = 0; j < d; ++j) row[j] += b_dec[j];
      main_squares[b] = SquaredDistance(d, row, xs + b * d);
      double sq = 0;
      for (int64_t j = 0; j < d; ++j) sq += static_cast<double>(xs[b * d + j]) * xs[b * d + j];
      x_squares[b] = sq;
    }
  });
  const double denominator =
      Denominator(options.shard_mean ? options.shard_mean(Total(x_squares)) : Total(x_squares));
  result.nmse = Total(main_squares) / denominator;
  if (multi) result.multi_topk_nmse = Total(multi_squares) / denominator;

  // Pass 2, per row: the upstream gradients of the main and multi decodes;
  // AuxK's reconstruction e_hat of e = x - x_hat (a constant).
  const float main_scale = static_cast<float>(2.0 / denominator);
  const float multi_scale = static_cast<float>(multi_coefficient * 2.0 / denominator);
  std::vector<double> residual_squares(batch), aux_squares(batch);
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    std::vector<float> residual(d);
    for (int64_t b = begin; b < end; ++b) {
      const float* x_row = xs + b * d;
      const float* xh_row = xh + b * d;
      float* gm = g_main + b * d;
      for (int64_t j = 0; j < d; ++j) gm[j] = main_scale * (xh_row[j] - x_row[j]);
      if (multi) {
        float* gx = g_multi + b * d;
        for (int64_t j = 0; j < d; ++j) {
          gx[j] = multi_scale * (gx[j] - x_row[j]);
          gm[j] += gx[j];
        }
      }
      if (k_aux > 0) {
        const float* e_hat = g_aux + b * d;
        double sq = 0;
        for (int64_t j = 0; j < d; ++j) {
          residual[j] = x_row[j] - xh_row[j];
          sq += static_cast<double>(residual[j]) * residual[j];
        }
        residual_squares[b] = sq;
        aux_squares[b] = SquaredDistance(d, e_hat, residual.data());
      }
    }
  });
  float aux_scale = 0.0f;
  if (k_aux > 0) {
    const double aux_denominator = Denominator(
        options.shard_mean ? options.shard_mean(Total(residual_squares)) : Total(residual_squares));
    result.auxk = Total(aux_squares) / aux_denominator;
    aux_scale = static_cast<float>(options.auxk_coefficient * 2.0 / aux_denominator);
  }
  result.loss = result.nmse + (k_aux > 0 ? options.auxk_coefficient * result.auxk : 0.0) +
                multi_coefficient * result.multi_topk_nmse;

  // Pass 3, per row: AuxK's upstream gradient, then dz of every slot.
  ParallelFor(0, batch, kRowGrain, [&](int64_t begin, int64_t end) {
    for (int64_t b = begin; b < end; ++b) {
      // Every slot's dot (nearly all are active), then 0 for the inactive.
      const int64_t* idx_row = idx + b * big_k;
      float* dz_row = dz + b * big_k;
      DotEntries(
          d, g_main + b * d, k, [&](int64_t s) { return W_dec + idx_row[s] * d; },
          [&](int64_t s, float v) { dz_row[s] = v; });
      if (multi) {
        DotEntries(
            d, g_multi + b * d, big_k - k, [&](int64_t s) { return W_dec + idx_row[k + s] * d; },
            [&](int64_t s, float v) { dz_row[k + s] = v; });
      }
      for (int64_t s = 0; s < big_k; ++s) {
        if (!(z[b * big_k + s] > 0.0f)) dz_row[s] = 0.0f;
      }
      if (k_aux > 0) {
        float* ga = g_aux + b * d;
        const float* x_row = xs + b * d;
        const float* xh_row = xh + b * d;
        for (int64_t j = 0; j < d; ++j) ga[j] = aux_scale * (ga[j] - (x_row[j] - xh_row[j]));
      }
    }
  });

  // AuxK, sparse: dz of each entry, block by block as for e_hat (each
  // entry's own dot product: the same bits in any order). The entries are
  // written regrouped by latent over the whole batch for the gradients, as
  // (row, z, dz): latent j's entries from block blk start at
  // aux_latent_base[j] plus its entries in the blocks before (rows stay
  // ascending).
  std::vector<int64_t>& base = workspace->aux_latent_base;
  std::vector<int32_t>& grouped_rows = workspace->aux_grouped_rows;
  std::vector<float>& grouped_z = workspace->aux_grouped_values;
  std::vector<float>& grouped_dz = workspace->aux_grouped_dz;
  if (aux_sparse) {
    std::vector<int64_t>& start = workspace->aux_group_start;  // [aux_blocks, m]
    base.assign(m + 1, 0);
    start.resize(aux_blocks * m);
    for (int64_t j = 0; j < m; ++j) {
      int64_t at = base[j];
      for (int64_t blk = 0; blk < aux_blocks; ++blk) {
        const int32_t* offsets = aux_offsets.data() + blk * (n + 1);
        start[blk * m + j] = at;
        at += offsets[picked[j] + 1] - offsets[picked[j]];
      }
      base[j + 1] = at;
    }
    grouped_rows.resize(base[m]);
    grouped_z.resize(base[m]);
    grouped_dz.resize(base[m]);
    ParallelFor(0, aux_blocks, 1, [&](int64_t begin, int64_t end) {
      for (int64_t blk = begin; blk < end; ++blk) {
        const int32_t* offsets = aux_offsets.data() + blk * (n + 1);
        const int32_t* rows = aux_rows.data() + aux_base[blk];
        const int32_t* slots = aux_slots.data() + aux_base[blk];
        for (int64_t j = 0; j < m; ++j) {
          const int64_t i = picked[j];
          const int32_t e0 = offsets[i], count = offsets[i + 1] - e0;
          const int64_t at = start[blk * m + j];
          DotEntries(
              d, W_dec + i * d, count, [&](int64_t q) { return g_aux + rows[e0 + q] * d; },
              [&](int64_t q, float v) { grouped_dz[at + q] = v; });
          for (int32_t q = 0; q < count; ++q) {
            grouped_rows[at + q] = rows[e0 + q];
            grouped_z[at + q] = z_aux[slots[e0 + q]];
          }
        }
      }
    });
  }

  // Pass 4: the top-K's active entries (z > 0) grouped by latent, in
  // (row, slot) order within each latent: a counting sort, sequential
  // (O(entries)). AuxK's are grouped per block above.
  std::vector<int64_t>& offsets = workspace->latent_offsets;
  offsets.assign(n + 1, 0);
  for (int64_t e = 0; e < batch * big_k; ++e) {
    if (z[e] > 0.0f) ++offsets[idx[e] + 1];
  }
  for (int64_t i = 0; i < n; ++i) offsets[i + 1] += offsets[i];
  const int64_t entries = offsets[n];
  workspace->entry_rows.resize(entries);
  workspace->entry_sources.resize(entries);
  workspace->entry_values.resize(entries);
  workspace->entry_dz.resize(entries);
  {
    std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
    auto add = [&](int64_t latent, int64_t row, Source source, float value, float dz_value) {
      const int64_t e = next[latent]++;
      workspace->entry_rows[e] = static_cast<int32_t>(row);
      workspace->entry_sources[e] = source;
      workspace->entry_values[e] = value;
      workspace->entry_dz[e] = dz_value;
    };
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < big_k; ++s) {
        const int64_t e = b * big_k + s;
        if (z[e] > 0.0f) add(idx[e], b, s < k ? kMain : kMultiOnly, z[e], dz[e]);
      }
    }
  }

  // Pass 5, per latent: the decoder row's and the encoder column's gradient
  // (the latter into a transposed [n, d] buffer, contiguous per latent).
  torch::Tensor encoder_grad_t = workspace->Buffer(kEncoderGradT, n, d);
  float* ge_t = encoder_grad_t.data_ptr<float>();
  float* gd = grads.W_dec.data_ptr<float>();
  float* gb_enc = grads.b_enc.data_ptr<float>();
  const float* upstream_of[2] = {g_main, g_multi};
  ParallelFor(0, n, kLatentGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* dec_row = gd + i * d;
      float* enc_row = ge_t + i * d;
      std::fill(dec_row, dec_row + d, 0.0f);
      std::fill(enc_row, enc_row + d, 0.0f);
      const int64_t e0 = offsets[i], count = offsets[i + 1] - e0;
      const int32_t* rows = workspace->entry_rows.data() + e0;
      const uint8_t* sources = workspace->entry_sources.data() + e0;
      const float* values = workspace->entry_values.data() + e0;
      const float* dz_values = workspace->entry_dz.data() + e0;
      AxpyEntries(
          d, count, [&](int64_t q) { return values[q]; },
          [&](int64_t q) { return upstream_of[sources[q]] + rows[q] * d; }, dec_row);
      AxpyEntries</*SkipZero=*/true>(
          d, count, [&](int64_t q) { return dz_values[q]; },
          [&](int64_t q) { return xc + rows[q] * d; }, enc_row);
      float bias = 0.0f;
      for (int64_t q = 0; q < count; ++q) {
        if (dz_values[q] != 0.0f) bias += dz_values[q];
      }
      gb_enc[i] = bias;
    }
  });
  if (aux_sparse) {
    // AuxK's entries (regrouped by latent in the dz pass), added after the
    // top-K's, each latent's in row order. For each 32-column slice, the
    // slice of G_aux (or x_c) over all rows is copied into a [batch, 32]
    // buffer (512 KB at batch 4096: it stays in L2) and every picked
    // latent sums its entries' slice rows into its gradient's slice, held
    // in registers. Reading whole rows instead, block by block, streamed
    // every picked latent's two gradient rows through the cache once per
    // block.
    // Per-slice gradients: the decoder's (G_aux, coefficient z) then the
    // encoder's (x_c, coefficient dz, zeros left out).
    const int64_t chunk_rows = std::min(batch, kAuxSliceFloats / kAuxSliceWidth);
    torch::Tensor slice_buffer = workspace->Buffer(kAuxSlice, chunk_rows, kAuxSliceWidth);
    float* slice = slice_buffer.data_ptr<float>();
    std::vector<int64_t>& cursor = workspace->aux_cursor;
    cursor.resize(m);
    for (int pass = 0; pass < 2; ++pass) {
      const float* source = pass == 0 ? g_aux : xc;
      float* target = pass == 0 ? gd : ge_t;
      const float* coefficients = pass == 0 ? grouped_z.data() : grouped_dz.data();
      for (int64_t j0 = 0; j0 < d; j0 += kAuxSliceWidth) {
        const int64_t width = std::min(kAuxSliceWidth, d - j0);
        std::copy(base.begin(), base.end() - 1, cursor.begin());
        for (int64_t r0 = 0; r0 < batch; r0 += chunk_rows) {
          const int64_t r1 = std::min(batch, r0 + chunk_rows);
          ParallelFor(r0, r1, 256, [&](int64_t begin, int64_t end) {
            for (int64_t b = begin; b < end; ++b) {
              std::memcpy(slice + (b - r0) * kAuxSliceWidth, source + b * d + j0,
                          width * sizeof(float));
            }
          });
          ParallelFor(0, m, kLatentGrain, [&](int64_t begin, int64_t end) {
            for (int64_t j = begin; j < end; ++j) {
              // This latent's entries in rows [r0, r1) (rows ascending).
              const int64_t e0 = cursor[j];
              const int64_t e1 = r1 == batch
                                     ? base[j + 1]
                                     : std::lower_bound(grouped_rows.begin() + e0,
                                                        grouped_rows.begin() + base[j + 1], r1) -
                                           grouped_rows.begin();
              cursor[j] = e1;
              const int32_t* rows = grouped_rows.data() + e0;
              const float* c = coefficients + e0;
              auto coef = [&](int64_t q) { return c[q]; };
              auto row = [&](int64_t q) { return slice + (rows[q] - r0) * kAuxSliceWidth; };
              float* out = target + picked[j] * d + j0;
              if (pass == 0) {
                AxpyEntries(width, e1 - e0, coef, row, out);
              } else {
                AxpyEntries</*SkipZero=*/true>(width, e1 - e0, coef, row, out);
              }
            }
          });
        }
      }
    }
    ParallelFor(0, m, kLatentGrain, [&](int64_t begin, int64_t end) {
      for (int64_t j = begin; j < end; ++j) {
        float bias = gb_enc[picked[j]];
        for (int64_t e = base[j]; e < base[j + 1]; ++e) {
          if (grouped_dz[e] != 0.0f) bias += grouped_dz[e];
        }
        gb_enc[picked[j]] = bias;
      }
    });
  }
  grads.W_enc.copy_(encoder_grad_t.t());

  // db_dec: the decoders' bias gradient (G summed over rows, per column in
  // row order) minus the encoder's W_enc db_enc (z reads x - b_dec).
  ColumnSums(batch, d, g_main, grads.b_dec.data_ptr<float>());
  grads.b_dec.sub_(torch::mv(params.W_enc, grads.b_enc));

  result.values = torch::relu(code.values.narrow(1, 0, k));
  result.indices = code.indices.narrow(1, 0, k).contiguous();
  result.x_hat = x_hat;
  return result;
}

}  // namespace saelab
