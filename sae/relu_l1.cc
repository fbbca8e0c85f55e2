#include "sae/relu_l1.h"

#include <algorithm>
#include <memory>

#include "harness/schedule.h"
#include "sae/kernels/jumprelu_train_step.h"

namespace saelab {

ReluL1Sae::ReluL1Sae(int64_t d_in, int64_t n_latents, const ReluL1Config& config, uint64_t seed)
    : Sae(d_in, n_latents), config_(config) {
  RegisterTiedParameters(seed, config_.decoder_init_norm());
}

torch::Tensor ReluL1Sae::EncodeScaled(const torch::Tensor& x) {
  return torch::relu(torch::addmm(b_enc, x, W_enc));
}

torch::Tensor ReluL1Sae::DecodeScaled(const torch::Tensor& f) {
  return torch::addmm(b_dec, f, W_dec);
}

double ReluL1Sae::L1CoefficientAt(int64_t step, int64_t total_steps) const {
  return config_.l1_coefficient() *
         LinearWarmupFactor(step, config_.l1_warmup_fraction() * static_cast<double>(total_steps));
}

LossOutput ReluL1Loss(const LossInputs& inputs, const ReluL1LossOptions& options) {
  const torch::Tensor& x = inputs.x;
  LossOutput out;
  out.f = torch::relu(torch::addmm(inputs.b_enc, x, inputs.W_enc));      // [batch, n]
  out.x_hat = torch::addmm(inputs.b_dec, out.f, inputs.W_dec);           // [batch, d]
  torch::Tensor mse = (x - out.x_hat).pow(2).sum(1).mean();              // E||x - x_hat||^2
  torch::Tensor l1 = (out.f * inputs.W_dec.norm(2, {1})).sum(1).mean();  // E sum_i f_i ||W_dec_i||
  out.loss = mse + options.l1_coefficient * l1;
  out.terms["mse"] = mse;
  out.terms["l1"] = l1;
  return out;
}

TrainOutput ReluL1Sae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  ReluL1LossOptions options;
  options.l1_coefficient = L1CoefficientAt(info.step, info.total_steps);
  TrainOutput out = TrainOutputFrom(ReluL1Loss(LossInputsFor(x, info), options));
  out.terms["l1_coefficient"] = options.l1_coefficient;
  return out;
}

ReluL1Sae::~ReluL1Sae() = default;

bool ReluL1Sae::TrainStepGradients(const torch::Tensor& x, const TrainStepInfo& info,
                                   TrainOutput* out) {
  if (!config_.sparse_step()) return false;
  if (!PrepareSparseStep(x, {&W_enc, &b_enc, &W_dec, &b_dec})) return false;
  torch::NoGradGuard no_grad;
  if (workspace_ == nullptr) workspace_ = std::make_unique<JumpReluTrainStepWorkspace>();
  JumpReluTrainStepOptions options;
  options.l1_coefficient = L1CoefficientAt(info.step, info.total_steps);
  const JumpReluTrainStepResult step = JumpReluTrainStep(
      x, {W_enc, b_enc, W_dec, b_dec, torch::Tensor()}, options,
      {W_enc.grad(), b_enc.grad(), W_dec.grad(), b_dec.grad(), torch::Tensor()}, workspace_.get());
  if (!step.computed) return false;
  out->x_hat = step.x_hat;
  out->f = torch::Tensor();
  out->fired = step.fired;
  out->loss = torch::tensor(step.loss, torch::kFloat64);
  out->terms = {{"mse", step.mse}, {"l1", step.l1}, {"l1_coefficient", options.l1_coefficient}};
  return true;
}

namespace {

absl::Status Resolve(int64_t /*d_in*/, SaeConfig* config) {
  const ReluL1Config& relu = config->relu_l1();
  if (relu.l1_coefficient() < 0) {
    return absl::InvalidArgumentError("relu_l1.l1_coefficient must be >= 0");
  }
  if (relu.decoder_init_norm() <= 0) {
    return absl::InvalidArgumentError("relu_l1.decoder_init_norm must be > 0");
  }
  FillOptimizerDefaults(/*lr=*/5e-5, /*adam_eps=*/1e-8, config);
  return absl::OkStatus();
}

}  // namespace

const SaeArchitecture& ReluL1Architecture() {
  static const SaeArchitecture* const architecture = [] {
    auto* row = new SaeArchitecture;
    row->name = "relu_l1";
    row->config_case = SaeConfig::kReluL1;
    row->resolve = Resolve;
    row->create = [](const SaeConfig& config, int64_t d_in, uint64_t seed) -> std::unique_ptr<Sae> {
      return std::make_unique<ReluL1Sae>(d_in, config.n_latents(), config.relu_l1(), seed);
    };
    row->sparsity_knob = [](const SaeConfig& config) { return config.relu_l1().l1_coefficient(); };
    row->set_sparsity_knob = [](SaeConfig* config, double value) {
      config->mutable_relu_l1()->set_l1_coefficient(value);
    };
    row->sparsity_knob_is_k = false;
    row->saelens.architecture = "standard";
    row->saelens.apply_b_dec_to_input = false;
    row->saelens.imports_foreign_files = true;
    row->saelens.shift_encoder_biases = ShiftBEnc;
    return row;
  }();
  return *architecture;
}

}  // namespace saelab
