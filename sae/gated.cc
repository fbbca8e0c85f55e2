#include "sae/gated.h"

#include <algorithm>
#include <map>
#include <memory>
#include <string>

#include "harness/schedule.h"
#include "sae/kernels/gated_train_step.h"
#include "sae/topk.h"

namespace saelab {
namespace {

struct GatePreActivations {
  torch::Tensor pi_gate;  // [batch, n]
  torch::Tensor pi_mag;   // [batch, n]
};

// Both encoder paths share W_gate; the magnitude path rescales each latent's
// column by exp(r_mag) (the paper's weight tying, which keeps the parameter
// count near a standard SAE's).
GatePreActivations PreActivations(const torch::Tensor& x, const torch::Tensor& W_gate,
                                  const torch::Tensor& b_gate, const torch::Tensor& r_mag,
                                  const torch::Tensor& b_mag, const torch::Tensor& b_dec) {
  torch::Tensor centered = x - b_dec;
  return {torch::addmm(b_gate, centered, W_gate),
          torch::addmm(b_mag, centered, W_gate * r_mag.exp())};
}

// The Heaviside gate has zero derivative; the gate's parameters learn only
// through the L1 and auxiliary terms.
torch::Tensor GatedActivations(const GatePreActivations& pre) {
  return (pre.pi_gate > 0).to(pre.pi_mag.scalar_type()) * torch::relu(pre.pi_mag);
}

}  // namespace

GatedSae::GatedSae(int64_t d_in, int64_t n_latents, const GatedConfig& config, uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  // The paper's decoder is unit-norm; W_gate = W_dec^T at init is the
  // Anthropic (April 2024) init that SAELens applies to every architecture
  // and the paper's first author recommends for Gated SAEs too.
  RegisterTiedParameters(seed, /*decoder_row_norm=*/1.0);
  r_mag = register_parameter("r_mag", torch::zeros({n_latents}));
  b_mag = register_parameter("b_mag", torch::zeros({n_latents}));
}

torch::Tensor GatedSae::EncodeScaled(const torch::Tensor& x) {
  return GatedActivations(PreActivations(x, W_enc, b_enc, r_mag, b_mag, b_dec));
}

torch::Tensor GatedSae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

double GatedSae::L1CoefficientAt(int64_t step, int64_t total_steps) const {
  return config_.l1_coefficient() *
         LinearWarmupFactor(step, config_.l1_warmup_fraction() * static_cast<double>(total_steps));
}

LossOutput GatedLoss(const LossInputs& inputs, const GatedLossOptions& options) {
  const torch::Tensor& x = inputs.x;
  const torch::Tensor& W_dec = inputs.W_dec;
  const torch::Tensor& b_dec = inputs.b_dec;
  GatePreActivations pre = PreActivations(x, inputs.W_enc, inputs.b_enc, inputs.Extra("r_mag"),
                                          inputs.Extra("b_mag"), b_dec);
  LossOutput out;
  out.f = GatedActivations(pre);                             // [batch, n]
  out.x_hat = torch::addmm(b_dec, out.f, W_dec);             // [batch, d]
  torch::Tensor mse = (x - out.x_hat).pow(2).sum(1).mean();  // E||x - x_hat||^2
  torch::Tensor gate = torch::relu(pre.pi_gate);             // [batch, n]
  torch::Tensor l1 = gate.sum(1).mean();                     // E||ReLU(pi_gate)||_1 (gate >= 0)
  // Frozen decoder: the auxiliary task trains the gate to pick latents
  // whose (fixed) directions reconstruct x, without pulling the decoder
  // towards the gate's shrunken activations.
  torch::Tensor via_gate = torch::addmm(b_dec.detach(), gate, W_dec.detach());
  torch::Tensor aux = (x - via_gate).pow(2).sum(1).mean();
  out.loss = mse + options.l1_coefficient * l1 + aux;
  out.terms["mse"] = mse;
  out.terms["l1"] = l1;
  out.terms["aux"] = aux;
  return out;
}

TrainOutput GatedSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  GatedLossOptions options;
  options.l1_coefficient = L1CoefficientAt(info.step, info.total_steps);
  TrainOutput out = TrainOutputFrom(GatedLoss(LossInputsFor(x, info), options));
  out.terms["l1_coefficient"] = options.l1_coefficient;
  return out;
}

GatedSae::~GatedSae() = default;

bool GatedSae::TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                  TrainOutput* out) {
  if (!config_.sparse_step()) return false;
  if (!PrepareSparseStep(x, {&W_enc, &b_enc, &r_mag, &b_mag, &W_dec, &b_dec})) return false;
  torch::NoGradGuard no_grad;
  if (workspace_ == nullptr) workspace_ = std::make_unique<GatedTrainStepWorkspace>();
  GatedTrainStepOptions options;
  options.l1_coefficient = L1CoefficientAt(info.step, info.total_steps);
  const GatedTrainStepResult step =
      GatedTrainStep(x, {W_enc, b_enc, r_mag, b_mag, W_dec, b_dec}, options,
                     {W_enc.grad(), b_enc.grad(), r_mag.grad(), b_mag.grad(), W_dec.grad(),
                      b_dec.grad()},
                     workspace_.get());
  if (!step.computed) return false;
  out->x_hat = step.x_hat;
  out->f = torch::Tensor();
  out->fired = step.fired;
  out->loss = torch::tensor(step.loss, torch::kFloat64);
  out->terms = {{"mse", step.mse},
                {"l1", step.l1},
                {"aux", step.aux},
                {"l1_coefficient", options.l1_coefficient}};
  return true;
}

void GatedSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void GatedSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

namespace {

absl::Status Resolve(int64_t /*d_in*/, SaeConfig* config) {
  if (config->gated().l1_coefficient() < 0) {
    return absl::InvalidArgumentError("gated.l1_coefficient must be >= 0");
  }
  FillOptimizerDefaults(/*lr=*/5e-5, /*adam_eps=*/1e-8, config);
  return absl::OkStatus();
}

// b_gate += shift W_gate and b_mag += shift (W_gate * exp(r_mag)): both
// paths read x - b_dec.
void ShiftGateAndMagnitudeBiases(const torch::Tensor& shift,
                                 std::map<std::string, torch::Tensor>* tensors) {
  const torch::Tensor w_mag =
      tensors->at("W_enc").to(torch::kFloat64) * tensors->at("r_mag").to(torch::kFloat64).exp();
  ShiftBEnc(shift, tensors);
  torch::Tensor& b_mag = tensors->at("b_mag");
  b_mag = (b_mag.to(torch::kFloat64) + torch::matmul(shift, w_mag)).to(torch::kFloat32);
}

}  // namespace

const SaeArchitecture& GatedArchitecture() {
  static const SaeArchitecture* const architecture = [] {
    auto* row = new SaeArchitecture;
    row->name = "gated";
    row->config_case = SaeConfig::kGated;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<GatedSae>(d_in, config.n_latents(), config.gated(), seed);
    };
    row->sparsity_knob = [](const SaeConfig& config) { return config.gated().l1_coefficient(); };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      config->mutable_gated()->set_l1_coefficient(value);
    };
    row->sparsity_knob_is_k = false;
    row->saelens.architecture = "gated";
    row->saelens.apply_b_dec_to_input = true;
    row->saelens.imports_foreign_files = true;
    row->saelens.b_enc_name = "b_gate";
    row->saelens.extra_tensors = {{"r_mag", "r_mag"}, {"b_mag", "b_mag"}};
    row->saelens.shift_encoder_biases = ShiftGateAndMagnitudeBiases;
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
