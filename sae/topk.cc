#include "sae/topk.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "sae/geometric_median.h"
#include "sae/kernels/sparse_decode.h"

namespace saelab {

TopKSae::TopKSae(int64_t d_in, int64_t n_latents, const TopKConfig& config, uint64_t seed,
                 const TranscoderConfig* transcoder)
    : Sae(d_in, n_latents), config_(config), transcoder_(transcoder != nullptr) {
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
  if (transcoder != nullptr && transcoder->skip_connection()) {
    W_skip = register_parameter("W_skip", torch::zeros({d_in, d_in}));
  }
}

namespace {

// The pre-activations [batch, n]: the encoder of x - b_dec, or of x for a
// transcoder.
torch::Tensor PreActivations(const torch::Tensor& x, const torch::Tensor& W_enc,
                             const torch::Tensor& b_enc, const torch::Tensor& b_dec,
                             bool apply_b_dec_to_input) {
  return torch::addmm(b_enc, apply_b_dec_to_input ? x - b_dec : x, W_enc);
}

}  // namespace

torch::Tensor TopKSae::EncodeScaled(const torch::Tensor& x) {
  torch::Tensor z = PreActivations(x, W_enc, b_enc, b_dec, !transcoder_);
  auto [values, indices] = z.topk(config_.k(), /*dim=*/1);
  return ScatterTopK(torch::relu(values), indices, n_latents_);
}

torch::Tensor TopKSae::EncodeTopK(const torch::Tensor& x, torch::Tensor* indices) {
  torch::Tensor z = PreActivations(x, W_enc, b_enc, b_dec, !transcoder_);
  auto [values, top] = z.topk(config_.k(), /*dim=*/1);
  *indices = top;
  return torch::relu(values);
}

torch::Tensor TopKSae::DecodeScaled(const torch::Tensor& f) { return torch::addmm(b_dec, f, W_dec); }

torch::Tensor TopKSae::ReconstructScaled(const torch::Tensor& x) {
  torch::Tensor y_hat = DecodeScaled(EncodeScaled(x));
  return W_skip.defined() ? y_hat + torch::mm(x, W_skip) : y_hat;
}

torch::Tensor BatchNmse(const torch::Tensor& a, const torch::Tensor& b,
                        const ShardMean& shard_mean) {
  // SumAnyThreadCount: the same bits with any --threads.
  if (!shard_mean) {
    return SumAnyThreadCount((a - b).pow(2)) /
           SumAnyThreadCount(b.pow(2)).clamp_min(std::numeric_limits<float>::min());
  }
  // b is data (x, or AuxK's detached residual), so the denominator is a
  // constant of the step and its mean over shards keeps the gradient exact.
  const double denominator =
      std::max(shard_mean(SumAnyThreadCount(b.detach().pow(2)).item<double>()),
               static_cast<double>(std::numeric_limits<float>::min()));
  return SumAnyThreadCount((a - b).pow(2)) / denominator;
}

TopKLossOptions TopKLossOptionsFrom(const TopKConfig& config) {
  TopKLossOptions options;
  options.k = config.k();
  options.k_aux = config.k_aux();
  options.auxk_coefficient = config.auxk_coefficient();
  options.multi_topk_factor = config.multi_topk_factor();
  options.multi_topk_coefficient = config.multi_topk_coefficient();
  options.sparse_decode = config.sparse_decode();
  return options;
}

namespace {

// x_hat from the top-k of z: values/indices [batch, k].
torch::Tensor DecodeTopK(const torch::Tensor& values, const torch::Tensor& indices,
                         const torch::Tensor& W_dec, const torch::Tensor& b_dec, bool sparse) {
  return sparse ? SparseDecode(values, indices, W_dec, b_dec)
                : SparseDecodeReference(values, indices, W_dec, b_dec);
}

}  // namespace

LossOutput TopKLoss(const LossInputs& inputs, const TopKLossOptions& options) {
  const torch::Tensor& x = inputs.x;
  const torch::Tensor& target = inputs.Target();
  const torch::Tensor& W_dec = inputs.W_dec;
  const torch::Tensor& b_dec = inputs.b_dec;
  const int64_t n = inputs.W_enc.size(1);
  const auto skip = inputs.extra.find("W_skip");
  // The skip transcoder's linear term x W_skip [batch, d], or undefined.
  const torch::Tensor skip_term =
      skip == inputs.extra.end() ? torch::Tensor() : torch::mm(x, skip->second);
  auto with_skip = [&](const torch::Tensor& y_hat) {
    return skip_term.defined() ? y_hat + skip_term : y_hat;
  };
  torch::Tensor z = PreActivations(x, inputs.W_enc, inputs.b_enc, b_dec,
                                   options.apply_b_dec_to_input);  // [batch, n]
  auto [values, indices] = z.topk(options.k, /*dim=*/1);          // [batch, k]
  values = torch::relu(values);
  LossOutput out;
  out.f = ScatterTopK(values.detach(), indices, n);  // [batch, n], for statistics
  out.x_hat = with_skip(DecodeTopK(values, indices, W_dec, b_dec, options.sparse_decode));
  torch::Tensor nmse = BatchNmse(out.x_hat, target, inputs.shard_mean);
  out.loss = nmse;
  out.terms["nmse"] = nmse;
  if (options.auxk_coefficient > 0.0) {
    torch::Tensor auxk =
        AuxKLoss(z, W_dec, inputs.dead_mask, options.k_aux, (target - out.x_hat).detach(),
                 inputs.shard_mean);
    out.terms["auxk"] = auxk;
    out.loss = out.loss + options.auxk_coefficient * auxk;
  }
  if (options.multi_topk_factor > 0) {
    auto [multi_values, multi_indices] = z.topk(std::min(n, options.multi_topk_factor * options.k), 1);
    torch::Tensor multi_x_hat = with_skip(
        DecodeTopK(torch::relu(multi_values), multi_indices, W_dec, b_dec, options.sparse_decode));
    torch::Tensor multi_nmse = BatchNmse(multi_x_hat, target, inputs.shard_mean);
    out.terms["multi_topk_nmse"] = multi_nmse;
    out.loss = out.loss + options.multi_topk_coefficient * multi_nmse;
  }
  return out;
}

torch::Tensor AuxKLoss(const torch::Tensor& z, const torch::Tensor& W_dec,
                       const torch::Tensor& dead_mask, int64_t k_aux,
                       const torch::Tensor& residual, const ShardMean& shard_mean) {
  int64_t n_dead = dead_mask.defined() ? dead_mask.sum().item<int64_t>() : 0;
  if (n_dead == 0) return torch::zeros({}, z.options());
  // Live latents can never win the aux top-k.
  torch::Tensor z_dead = z.masked_fill(dead_mask.logical_not().unsqueeze(0),
                                       -std::numeric_limits<float>::infinity());
  auto [values, indices] = z_dead.topk(std::min(k_aux, n_dead), /*dim=*/1);
  torch::Tensor aux_f = ScatterTopK(torch::relu(values), indices, z.size(1));
  return BatchNmse(torch::mm(aux_f, W_dec), residual, shard_mean);  // no bias: e has none
}

TrainOutput TopKSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  TopKLossOptions options = TopKLossOptionsFrom(config_);
  options.apply_b_dec_to_input = !transcoder_;
  TrainOutput out = TrainOutputFrom(TopKLoss(LossInputsFor(x, info), options));
  out.terms["dead_latents"] =
      info.dead_mask.defined() ? info.dead_mask.sum().item<double>() : 0.0;
  return out;
}

bool PrepareSparseTopKStep(bool sparse_decode, const torch::Tensor& x,
                           std::initializer_list<torch::Tensor*> params) {
  return sparse_decode && PrepareSparseStep(x, params);
}

TrainOutput SparseTopKStepOutput(const TopKTrainStepResult& step, int64_t n_latents,
                                 const TrainStepInfo& info) {
  torch::NoGradGuard no_grad;
  TrainOutput out;
  out.x_hat = step.x_hat;
  out.loss = torch::tensor(step.loss, torch::kFloat64);
  out.fired = torch::zeros({n_latents}, torch::kBool);
  out.fired.index_put_({step.indices.masked_select(step.values > 0)}, true);
  out.terms["nmse"] = step.nmse;
  out.terms["dead_latents"] = info.dead_mask.defined() ? info.dead_mask.sum().item<double>() : 0.0;
  return out;
}

bool TopKSae::TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                 TrainOutput* out) {
  // The kernels encode x - b_dec and reconstruct x.
  if (transcoder_) return false;
  if (!PrepareSparseTopKStep(config_.sparse_decode(), x, {&W_enc, &b_enc, &W_dec, &b_dec})) {
    return false;
  }
  torch::NoGradGuard no_grad;
  if (workspace_ == nullptr) workspace_ = std::make_unique<TopKTrainStepWorkspace>();
  TopKTrainStepOptions options = TopKLossOptionsFrom(config_);
  options.shard_mean = info.shard_mean;
  const TopKTrainStepResult step =
      TopKTrainStep(x, {W_enc, b_enc, W_dec, b_dec}, info.dead_mask, options,
                    {W_enc.grad(), b_enc.grad(), W_dec.grad(), b_dec.grad()}, workspace_.get());
  *out = SparseTopKStepOutput(step, n_latents_, info);
  if (config_.auxk_coefficient() > 0) out->terms["auxk"] = step.auxk;
  if (config_.multi_topk_factor() > 0) out->terms["multi_topk_nmse"] = step.multi_topk_nmse;
  return true;
}

void TopKSae::InitFromSample(const torch::Tensor& x) {
  torch::NoGradGuard no_grad;
  b_dec.copy_(GeometricMedian(x, config_.geometric_median_iterations()));
}

void TopKSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void TopKSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

double TopKLearningRate(int64_t n_latents) { return 2e-4 / std::sqrt(n_latents / 16384.0); }

int64_t DefaultKAux(int64_t d_in, int64_t n_latents) {
  // The power of two nearest d_in / 2 (ties go up), at least 1.
  const double half = d_in / 2.0;
  int64_t nearest = 1;
  if (half > 1.0) {
    int64_t lower = int64_t{1} << static_cast<int>(std::floor(std::log2(half)));
    int64_t upper = lower * 2;
    nearest = (half - lower < upper - half) ? lower : upper;
  }
  return std::min(n_latents, nearest);
}

namespace {

absl::Status Resolve(int64_t d_in, SaeConfig* config) {
  const int64_t n = config->n_latents();
  TopKConfig* topk = config->mutable_topk();
  if (topk->k() < 1 || topk->k() > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("topk.k must be in [1, n_latents = ", n, "], got ", topk->k()));
  }
  if (topk->auxk_coefficient() < 0) {
    return absl::InvalidArgumentError("topk.auxk_coefficient must be >= 0");
  }
  if (topk->geometric_median_iterations() < 0) {
    return absl::InvalidArgumentError("topk.geometric_median_iterations must be >= 0");
  }
  if (topk->multi_topk_factor() < 0) {
    return absl::InvalidArgumentError("topk.multi_topk_factor must be >= 0");
  }
  if (!topk->has_k_aux()) topk->set_k_aux(DefaultKAux(d_in, n));
  if (topk->k_aux() < 1 || topk->k_aux() > n) {
    return absl::InvalidArgumentError(
        absl::StrCat("topk.k_aux must be in [1, n_latents = ", n, "], got ", topk->k_aux()));
  }
  FillOptimizerDefaults(TopKLearningRate(n), kTopKAdamEps, config);
  return absl::OkStatus();
}

}  // namespace

const SaeArchitecture& TopKArchitecture() {
  static const SaeArchitecture* const architecture = [] {
    auto* row = new SaeArchitecture;
    row->name = "topk";
    row->config_case = SaeConfig::kTopk;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<TopKSae>(d_in, config.n_latents(), config.topk(), seed,
                                       config.has_transcoder() ? &config.transcoder() : nullptr);
    };
    row->sparsity_knob = [](const SaeConfig& config) {
      return static_cast<double>(config.topk().k());
    };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      config->mutable_topk()->set_k(std::llround(value));
    };
    row->sparsity_knob_is_k = true;
    row->saelens.architecture = "topk";
    row->saelens.apply_b_dec_to_input = true;
    row->saelens.imports_foreign_files = true;
    row->saelens.k_in_config = true;
    row->saelens.activation_fn = "topk";
    row->saelens.shift_encoder_biases = ShiftBEnc;
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
