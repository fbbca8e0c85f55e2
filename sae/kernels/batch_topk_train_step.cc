#include "sae/kernels/batch_topk_train_step.h"

#include <algorithm>
#include <utility>
#include <vector>

namespace saelab {
namespace {

// Whether any shard has rows to encode again (after a failed collective
// the gather gives NaN, which reads as no: the caller reports the error).
bool AnyShardSaturated(int64_t local, const BatchTopKTrainStepOptions& options) {
  if (!options.shard_gather) return local > 0;
  const torch::Tensor counts =
      options.shard_gather(torch::tensor({static_cast<double>(local)}, torch::kFloat64));
  return counts.sum().item<double>() > 0;
}

}  // namespace

BatchCandidate BatchTopKCut(std::vector<BatchCandidate> local, int64_t kept,
                            const std::function<torch::Tensor(const torch::Tensor&)>& shard_gather,
                            std::vector<BatchCandidate>* pool) {
  if (shard_gather) {
    // Each as a (value, flat) pair of float64 (exact for both: a float32 or
    // float64 value, and a flat index below 2^53).
    torch::Tensor packed = torch::empty({static_cast<int64_t>(local.size()), 2}, torch::kFloat64);
    double* p = packed.data_ptr<double>();
    for (const BatchCandidate& c : local) {
      *p++ = c.value;
      *p++ = static_cast<double>(c.flat);
    }
    const torch::Tensor all = shard_gather(packed).to(torch::kFloat64).contiguous();
    pool->resize(all.size(0));
    const double* q = all.data_ptr<double>();
    for (BatchCandidate& c : *pool) {
      c = {q[0], static_cast<int64_t>(q[1])};
      q += 2;
    }
  } else {
    *pool = std::move(local);
  }
  if (static_cast<int64_t>(pool->size()) <= kept) return {0.0, -1};
  std::nth_element(pool->begin(), pool->begin() + (kept - 1), pool->end(), BatchCandidateBefore);
  return (*pool)[kept - 1];
}

BatchTopKSelection SelectBatchTopK(const torch::Tensor& centered, const TopKParameters& params,
                                   const torch::Tensor& dead_mask,
                                   const BatchTopKTrainStepOptions& options,
                                   TopKEncodeWorkspace* workspace) {
  TORCH_CHECK(centered.dim() == 2 && params.W_enc.dim() == 2, "SelectBatchTopK: bad shapes");
  TORCH_CHECK(options.k >= 1, "SelectBatchTopK: k = ", options.k, " < 1");
  TORCH_CHECK(options.shard_count >= 1 && options.shard_rank >= 0 &&
                  options.shard_rank < options.shard_count,
              "SelectBatchTopK: shard ", options.shard_rank, " of ", options.shard_count);
  const int64_t batch = centered.size(0), n = params.W_enc.size(1);
  // Over the global batch: this shard's rows are global rows row_offset + b.
  const int64_t global_batch = batch * options.shard_count;
  const int64_t row_offset = batch * options.shard_rank;
  const int64_t kept_total = std::min(options.k * global_batch, global_batch * n);
  int64_t per_row =
      std::min(n, options.candidates_per_row > 0 ? options.candidates_per_row : 2 * options.k);
  TopKEncodeOptions encode_options;
  encode_options.k_aux = options.auxk_coefficient > 0 ? options.k_aux : 0;
  encode_options.dead_mask = dead_mask;

  BatchTopKSelection result;
  encode_options.k = per_row;
  TopKCode code = TopKEncode(centered, params.W_enc, params.b_enc, encode_options, workspace);
  result.candidate_rounds = 1;
  std::vector<BatchCandidate> positive, pool;
  std::vector<int64_t> saturated_rows;
  for (;;) {
    const float* z = code.values.data_ptr<float>();
    const int64_t* idx = code.indices.data_ptr<int64_t>();
    // Only positive entries count: ReLU(z) = 0 contributes nothing, kept or
    // not. A row's candidates are in descending order, padding (0) last.
    positive.clear();
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t s = 0; s < per_row && z[b * per_row + s] > 0.0f; ++s) {
        positive.push_back({z[b * per_row + s], (row_offset + b) * n + idx[b * per_row + s]});
      }
    }
    // The cut: the last kept candidate, over every shard's candidates when
    // data-parallel (flat -1: every positive one is kept).
    const BatchCandidate cut =
        BatchTopKCut(std::move(positive), kept_total, options.shard_gather, &pool);
    auto kept = [&](float value, int64_t flat) {
      return value > 0.0f && (cut.flat < 0 || !BatchCandidateBefore(cut, {value, flat}));
    };
    // A row is saturated when its last candidate is kept. Only rows with
    // all per_row slots real can be: a row that was not saturated in an
    // earlier round stays so, since more candidates only raise the cut.
    saturated_rows.clear();
    if (per_row < n) {
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t last = b * per_row + per_row - 1;
        if (kept(z[last], (row_offset + b) * n + idx[last])) saturated_rows.push_back(b);
      }
    }
    if (!AnyShardSaturated(static_cast<int64_t>(saturated_rows.size()), options)) {
      // Unkept candidates become inactive slots.
      float* values = code.values.data_ptr<float>();
      for (int64_t b = 0; b < batch; ++b) {
        for (int64_t s = 0; s < per_row; ++s) {
          const int64_t e = b * per_row + s;
          if (!kept(values[e], (row_offset + b) * n + idx[e])) values[e] = 0.0f;
        }
      }
      if (cut.flat >= 0) {
        result.min_kept = static_cast<float>(cut.value);
      } else if (!pool.empty()) {
        result.min_kept = static_cast<float>(
            std::min_element(
                pool.begin(), pool.end(),
                [](const BatchCandidate& a, const BatchCandidate& b) { return a.value < b.value; })
                ->value);
      }
      break;
    }
    // Encode only the saturated rows again, with twice the candidates; the
    // other rows keep theirs, padded with inactive slots: value 0 and the
    // row's last candidate's latent, which is not kept either (the row is
    // not saturated), so scattering the code by latent stays well defined.
    // AuxK's code does not depend on K' and is kept from the first
    // round. The re-encoded rows' values can differ from the first round's
    // in the last bit (a GEMM over fewer rows; see the header).
    // Another round on every shard; one without saturated rows of its own
    // keeps its candidates and only takes part in the gathers.
    ++result.candidate_rounds;
    if (saturated_rows.empty()) continue;
    result.reencoded_rows += static_cast<int64_t>(saturated_rows.size());
    const int64_t wider = std::min(n, 2 * per_row);
    const torch::Tensor rows = torch::tensor(saturated_rows, torch::kInt64);
    TopKEncodeOptions wider_options;
    wider_options.k = wider;
    const TopKCode again = TopKEncode(centered.index_select(0, rows), params.W_enc, params.b_enc,
                                      wider_options, workspace);
    torch::Tensor values = torch::zeros({batch, wider}, torch::kFloat);
    torch::Tensor indices = torch::empty({batch, wider}, torch::kInt64);
    values.narrow(1, 0, per_row).copy_(code.values);
    indices.narrow(1, 0, per_row).copy_(code.indices);
    indices.narrow(1, per_row, wider - per_row)
        .copy_(code.indices.narrow(1, per_row - 1, 1).expand({batch, wider - per_row}));
    values.index_copy_(0, rows, again.values);
    indices.index_copy_(0, rows, again.indices);
    code.values = values;
    code.indices = indices;
    per_row = wider;
  }
  result.code = std::move(code);
  return result;
}

BatchTopKTrainStepResult BatchTopKTrainStep(const torch::Tensor& x, const TopKParameters& params,
                                            const torch::Tensor& dead_mask,
                                            const BatchTopKTrainStepOptions& options,
                                            const TopKGradients& grads,
                                            TopKTrainStepWorkspace* workspace) {
  TORCH_CHECK(x.dim() == 2 && params.W_enc.dim() == 2, "BatchTopKTrainStep: bad shapes");
  const torch::Tensor x_in = x.contiguous();
  const torch::Tensor centered = workspace->CenteredInput(x_in, params.b_dec);
  BatchTopKSelection selection =
      SelectBatchTopK(centered, params, dead_mask, options, &workspace->encode);
  BatchTopKTrainStepResult result;
  result.candidate_rounds = selection.candidate_rounds;
  result.reencoded_rows = selection.reencoded_rows;
  result.min_kept = selection.min_kept;
  const int64_t per_row = selection.code.values.size(1);
  const TopKCode& code = selection.code;
  TopKTrainStepOptions step_options;
  step_options.k = per_row;
  step_options.k_aux = options.k_aux;
  step_options.auxk_coefficient = options.auxk_coefficient;
  step_options.shard_mean = options.shard_mean;
  static_cast<TopKTrainStepResult&>(result) =
      TopKTrainStepFromCode(x_in, centered, params, code, step_options, grads, workspace);
  return result;
}

}  // namespace saelab
