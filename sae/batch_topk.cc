#include "sae/batch_topk.h"

#include <torch/utils.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"
#include "sae/geometric_median.h"
#include "sae/kernels/batch_topk_train_step.h"
#include "sae/kernels/sparse_decode.h"
#include "sae/topk.h"

namespace saelab {

BatchTopKSae::BatchTopKSae(int64_t d_in, int64_t n_latents, const BatchTopKConfig& config,
                           std::vector<int64_t> prefix_widths, uint64_t seed)
    : Sae(d_in, n_latents), config_(config), prefix_widths_(std::move(prefix_widths)) {
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
  // 0 = not yet tracked; inference is then plain ReLU.
  threshold_ = register_buffer("threshold", torch::zeros({}, torch::kFloat32));
}

torch::Tensor BatchTopKSae::EncodeScaled(const torch::Tensor& x) {
  torch::Tensor z = torch::addmm(b_enc, x - b_dec, W_enc);
  // threshold >= 0, so this is also ReLU(z) * 1[z > threshold].
  return z * (z > threshold_).to(z.scalar_type());
}

torch::Tensor BatchTopKSae::EncodeAsTrainedScaled(const torch::Tensor& x) {
  return BatchTopKActivations(torch::addmm(b_enc, x - b_dec, W_enc), config_.k());
}

torch::Tensor BatchTopKSae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

namespace {

// The batch top-k of ReLU(z) for z [B, n]: values and flat indices (into the
// [B * n] flattening) of the min(k * B, B * n) largest entries, largest
// first. The one selection both decode paths use, so they keep the same
// entries even among ties.
//
// Data-parallel (shard_gather set), the top k * batch * shards of the
// global batch instead, as one process would select over the whole: each
// shard offers its positive entries among its own top k * global batch,
// every shard gathers all of them and finds the same cut (ordered by value,
// then global flat index, lower first), and keeps its entries up to it.
std::tuple<torch::Tensor, torch::Tensor> BatchTopKEntries(const torch::Tensor& z, int64_t k,
                                                          const ShardGather& shard_gather) {
  const int64_t batch = z.size(0), n = z.size(1);
  const int64_t global_batch = batch * shard_gather.count;
  const int64_t kept = std::min(k * global_batch, global_batch * n);
  auto [values, indices] = torch::relu(z).reshape({-1}).topk(std::min(kept, batch * n));
  if (!shard_gather) return {values, indices};
  // Descending: the positive entries come first.
  const int64_t positive = (values > 0).sum().item<int64_t>();
  values = values.narrow(0, 0, positive);
  indices = indices.narrow(0, 0, positive);
  const int64_t offset = shard_gather.rank * batch * n;
  const torch::Tensor local_values = values.detach().to(torch::kFloat64).contiguous();
  const torch::Tensor local_flat = indices.contiguous();
  std::vector<BatchCandidate> local(positive);
  for (int64_t e = 0; e < positive; ++e) {
    local[e] = {local_values.data_ptr<double>()[e], local_flat.data_ptr<int64_t>()[e] + offset};
  }
  std::vector<BatchCandidate> pool;
  const BatchCandidate cut = BatchTopKCut(local, kept, shard_gather.gather, &pool);
  if (cut.flat < 0) return {values, indices};
  std::vector<int64_t> keep;
  for (int64_t e = 0; e < positive; ++e) {
    if (!BatchCandidateBefore(cut, local[e])) keep.push_back(e);
  }
  const torch::Tensor kept_positions = torch::tensor(keep, torch::kInt64);
  return {values.index_select(0, kept_positions), indices.index_select(0, kept_positions)};
}

// The kept entries of a [B, n] code in SparseDecodeRagged's layout.
struct RaggedCode {
  torch::Tensor values;   // [kept], row by row; carries the gradient
  torch::Tensor latents;  // [kept] int64
  torch::Tensor offsets;  // [B] int64: row r's first entry
};

// The ragged form of the kept entries (values, flat_indices [kept]) of a
// [B, n] code. Fills *f [B, n] (detached).
RaggedCode RaggedBatchCode(const torch::Tensor& values, const torch::Tensor& flat_indices,
                           int64_t batch, int64_t n, torch::Tensor* f) {
  // Ascending flat index = grouped by row (token), as the ragged layout
  // needs; indices are distinct, so the order is unique.
  auto [sorted, order] = flat_indices.sort();
  RaggedCode code;
  code.values = values.index_select(0, order);  // keeps the gradient
  torch::Tensor rows = sorted.div(n, "floor");
  code.latents = sorted - rows * n;
  // offsets[r] = the first entry of row r (= the next row's start, or the
  // end, for an empty row).
  code.offsets = torch::searchsorted(rows, torch::arange(batch, rows.options()));
  *f = torch::zeros({batch * n}, values.options())
           .index_put_({sorted}, code.values.detach())
           .view({batch, n});
  return code;
}

// f[:, :width] W_dec[:width] + b_dec [B, d] for the prefix of `width`
// latents: the entries of later latents are zeroed, which leaves both
// their contribution and their gradient out.
torch::Tensor PrefixDecode(const LossOutput& out, const RaggedCode* code, int64_t width,
                           const torch::Tensor& W_dec, const torch::Tensor& b_dec) {
  if (code != nullptr) {
    torch::Tensor inside = (code->latents < width).to(code->values.scalar_type());
    return SparseDecodeRagged(code->values * inside, code->latents, code->offsets, W_dec, b_dec);
  }
  return torch::addmm(b_dec, out.f.narrow(1, 0, width), W_dec.narrow(0, 0, width));
}

}  // namespace

torch::Tensor BatchTopKActivations(const torch::Tensor& z, int64_t k,
                                   const ShardGather& shard_gather) {
  auto [values, indices] = BatchTopKEntries(z, k, shard_gather);
  return torch::zeros({z.numel()}, z.options()).scatter(0, indices, values).view(z.sizes());
}

BatchTopKLossOptions BatchTopKLossOptionsFrom(const BatchTopKConfig& config) {
  BatchTopKLossOptions options;
  options.k = config.k();
  options.k_aux = config.k_aux();
  options.auxk_coefficient = config.auxk_coefficient();
  options.sparse_decode = config.sparse_decode();
  return options;
}

LossOutput BatchTopKLoss(const LossInputs& inputs, const BatchTopKLossOptions& options) {
  const torch::Tensor& x = inputs.x;
  const torch::Tensor& W_dec = inputs.W_dec;
  const torch::Tensor& b_dec = inputs.b_dec;
  torch::Tensor z = torch::addmm(inputs.b_enc, x - b_dec, inputs.W_enc);  // [B, n]
  LossOutput out;
  RaggedCode code;
  if (options.sparse_decode) {
    auto [values, indices] = BatchTopKEntries(z, options.k, inputs.shard_gather);
    code = RaggedBatchCode(values, indices, z.size(0), z.size(1), &out.f);
    out.x_hat = SparseDecodeRagged(code.values, code.latents, code.offsets, W_dec, b_dec);
  } else {
    out.f = BatchTopKActivations(z, options.k, inputs.shard_gather);  // [B, n]
    out.x_hat = torch::addmm(b_dec, out.f, W_dec);                    // [B, d]
  }
  torch::Tensor nmse = BatchNmse(out.x_hat, x, inputs.shard_mean);
  torch::Tensor auxk = options.auxk_coefficient > 0.0
                           ? AuxKLoss(z, W_dec, inputs.dead_mask, options.k_aux,
                                      (x - out.x_hat).detach(), inputs.shard_mean)
                           : torch::zeros({}, x.options());
  out.loss = nmse + options.auxk_coefficient * auxk;
  out.terms["nmse"] = nmse;
  out.terms["auxk"] = auxk;
  for (int64_t width : options.prefix_widths) {
    torch::Tensor prefix_nmse =
        BatchNmse(PrefixDecode(out, options.sparse_decode ? &code : nullptr, width, W_dec, b_dec),
                  x, inputs.shard_mean);
    out.loss = out.loss + prefix_nmse;
    out.terms[absl::StrCat("prefix_nmse_", width)] = prefix_nmse;
  }
  return out;
}

double NextBatchTopKThresholdFromSmallest(double threshold, double smallest, double decay) {
  if (!(smallest > 0.0)) return threshold;
  if (threshold <= 0.0) return smallest;
  return decay * threshold + (1.0 - decay) * smallest;
}

double NextBatchTopKThreshold(double threshold, const torch::Tensor& f, double decay,
                              const ShardGather& shard_gather) {
  torch::NoGradGuard no_grad;
  torch::Tensor positive = f.masked_select(f > 0);
  // 0: none here (a shard without positive entries offers nothing).
  double smallest = positive.numel() == 0 ? 0.0 : positive.min().item<double>();
  if (shard_gather) {
    const torch::Tensor all = shard_gather.gather(torch::tensor({smallest}, torch::kFloat64));
    const torch::Tensor offered = all.masked_select(all > 0);
    smallest = offered.numel() == 0 ? 0.0 : offered.min().item<double>();
  }
  return NextBatchTopKThresholdFromSmallest(threshold, smallest, decay);
}

bool BatchTopKSae::TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                      TrainOutput* out) {
  // The sparse step has no prefix losses: Matryoshka trains through autograd.
  if (!prefix_widths_.empty()) return false;
  if (!PrepareSparseTopKStep(config_.sparse_decode(), x, {&W_enc, &b_enc, &W_dec, &b_dec})) {
    return false;
  }
  torch::NoGradGuard no_grad;
  if (workspace_ == nullptr) workspace_ = std::make_unique<TopKTrainStepWorkspace>();
  BatchTopKTrainStepOptions options;
  options.k = config_.k();
  options.k_aux = config_.k_aux();
  options.auxk_coefficient = config_.auxk_coefficient();
  options.shard_mean = info.shard_mean;
  options.shard_gather = info.shard_gather.gather;
  options.shard_rank = info.shard_gather.rank;
  options.shard_count = info.shard_gather.count;
  const BatchTopKTrainStepResult step = BatchTopKTrainStep(
      x, {W_enc, b_enc, W_dec, b_dec}, info.dead_mask, options,
      {W_enc.grad(), b_enc.grad(), W_dec.grad(), b_dec.grad()}, workspace_.get());
  *out = SparseTopKStepOutput(step, n_latents_, info);
  // The smallest kept activation over the (global) batch.
  threshold_.fill_(
      NextBatchTopKThresholdFromSmallest(threshold(), step.min_kept, config_.threshold_decay()));
  out->terms["auxk"] = step.auxk;
  out->terms["threshold"] = threshold();
  return true;
}

TrainOutput BatchTopKSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  BatchTopKLossOptions options = BatchTopKLossOptionsFrom(config_);
  options.prefix_widths = prefix_widths_;
  TrainOutput out = TrainOutputFrom(BatchTopKLoss(LossInputsFor(x, info), options));
  {
    torch::NoGradGuard no_grad;
    // EMA in double; stored as float32 like the other tensors.
    threshold_.fill_(
        NextBatchTopKThreshold(threshold(), out.f, config_.threshold_decay(), info.shard_gather));
  }
  out.terms["threshold"] = threshold();
  out.terms["dead_latents"] = info.dead_mask.defined() ? info.dead_mask.sum().item<double>() : 0.0;
  return out;
}

void BatchTopKSae::InitFromSample(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec.copy_(GeometricMedian(x, config_.geometric_median_iterations()));
}

void BatchTopKSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void BatchTopKSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

void BatchTopKSae::Calibrate(const std::vector<torch::Tensor>& x) {
  torch::NoGradGuard no_grad;
  BatchTopKTrainStepOptions options;
  options.k = config_.k();
  options.auxk_coefficient = 0;  // the selection only
  TopKEncodeWorkspace workspace;
  double sum = 0.0;
  int64_t counted = 0;
  for (const torch::Tensor& batch : x) {
    const torch::Tensor centered = (batch - b_dec).contiguous();
    const BatchTopKSelection selection = SelectBatchTopK(centered, {W_enc, b_enc, W_dec, b_dec},
                                                         torch::Tensor(), options, &workspace);
    if (selection.min_kept <= 0.0f) continue;  // nothing kept: no estimate
    sum += selection.min_kept;
    ++counted;
  }
  if (counted > 0) threshold_.fill_(sum / counted);
}

absl::Status ResolveBatchTopKConfig(int64_t d_in, int64_t n, const std::string& field,
                                    BatchTopKConfig* batch_topk) {
  if (batch_topk->k() < 1 || batch_topk->k() > n) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".k must be in [1, n_latents = ", n, "], got ", batch_topk->k()));
  }
  if (batch_topk->threshold_calibration_batches() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".threshold_calibration_batches must be >= 0, got ",
                     batch_topk->threshold_calibration_batches()));
  }
  if (batch_topk->auxk_coefficient() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".auxk_coefficient must be >= 0"));
  }
  if (batch_topk->threshold_decay() < 0 || batch_topk->threshold_decay() >= 1) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".threshold_decay must be in [0, 1)"));
  }
  if (!batch_topk->has_k_aux()) batch_topk->set_k_aux(DefaultKAux(d_in, n));
  if (batch_topk->k_aux() < 1 || batch_topk->k_aux() > n) {
    return absl::InvalidArgumentError(absl::StrCat(field, ".k_aux must be in [1, n_latents = ", n,
                                                   "], got ", batch_topk->k_aux()));
  }
  return absl::OkStatus();
}

namespace {

absl::Status Resolve(int64_t d_in, SaeConfig* config) {
  RETURN_IF_ERROR(ResolveBatchTopKConfig(d_in, config->n_latents(), "batch_topk",
                                         config->mutable_batch_topk()));
  FillOptimizerDefaults(TopKLearningRate(config->n_latents()), kTopKAdamEps, config);
  return absl::OkStatus();
}

// The SAELens threshold: the scalar repeated for every latent.
torch::Tensor ThresholdToSaeLens(const torch::Tensor& threshold, int64_t n_latents) {
  return threshold.reshape({1}).expand({n_latents}).contiguous();
}

absl::StatusOr<torch::Tensor> ThresholdFromSaeLens(const torch::Tensor& tensor,
                                                   const std::string& weights_path,
                                                   const std::string& config_path) {
  absl::StatusOr<torch::Tensor> threshold = SaeLensThreshold(tensor, weights_path);
  if (!threshold.ok()) return threshold.status();
  const torch::Tensor first = (*threshold)[0];
  if (!torch::all(*threshold == first).item<bool>()) {
    return absl::InvalidArgumentError(absl::StrCat(
        weights_path, ": tensor 'threshold' is not one value for every latent, so it is not ",
        "the inference form of a batch_topk SAE (as ", config_path, " says)"));
  }
  return first.clone();
}

}  // namespace

const SaeArchitecture& BatchTopKArchitecture() {
  static const SaeArchitecture* const architecture = [] {
    auto* row = new SaeArchitecture;
    row->name = "batch_topk";
    row->config_case = SaeConfig::kBatchTopk;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<BatchTopKSae>(d_in, config.n_latents(), config.batch_topk(), seed);
    };
    row->sparsity_knob = [](const SaeConfig& config) {
      return static_cast<double>(config.batch_topk().k());
    };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      config->mutable_batch_topk()->set_k(std::llround(value));
    };
    row->sparsity_knob_is_k = true;
    row->saelens.architecture = "jumprelu";
    row->saelens.apply_b_dec_to_input = true;
    row->saelens.imports_foreign_files = false;
    row->saelens.extra_tensors = {
        {"threshold", "threshold", ThresholdToSaeLens, ThresholdFromSaeLens}};
    row->saelens.shift_encoder_biases = ShiftBEnc;
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
