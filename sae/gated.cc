#include "sae/gated.h"

#include <algorithm>

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

torch::Tensor GatedSae::DecodeScaled(const torch::Tensor& f) { return torch::addmm(b_dec, f, W_dec); }

double GatedSae::L1CoefficientAt(int64_t step, int64_t total_steps) const {
  double warmup_steps = config_.l1_warmup_fraction() * static_cast<double>(total_steps);
  if (warmup_steps <= 0.0) return config_.l1_coefficient();
  return config_.l1_coefficient() * std::min(1.0, static_cast<double>(step) / warmup_steps);
}

torch::Tensor GatedLoss(const torch::Tensor& x, const torch::Tensor& W_gate,
                        const torch::Tensor& b_gate, const torch::Tensor& r_mag,
                        const torch::Tensor& b_mag, const torch::Tensor& W_dec,
                        const torch::Tensor& b_dec, double l1_coefficient, torch::Tensor* f,
                        torch::Tensor* x_hat, torch::Tensor* mse, torch::Tensor* l1,
                        torch::Tensor* aux) {
  GatePreActivations pre = PreActivations(x, W_gate, b_gate, r_mag, b_mag, b_dec);
  *f = GatedActivations(pre);                        // [batch, n]
  *x_hat = torch::addmm(b_dec, *f, W_dec);           // [batch, d]
  *mse = (x - *x_hat).pow(2).sum(1).mean();          // E||x - x_hat||^2
  torch::Tensor gate = torch::relu(pre.pi_gate);     // [batch, n]
  *l1 = gate.sum(1).mean();                          // E||ReLU(pi_gate)||_1 (gate >= 0)
  // Frozen decoder: the auxiliary task trains the gate to pick latents
  // whose (fixed) directions reconstruct x, without pulling the decoder
  // towards the gate's shrunken activations.
  torch::Tensor via_gate = torch::addmm(b_dec.detach(), gate, W_dec.detach());
  *aux = (x - via_gate).pow(2).sum(1).mean();
  return *mse + l1_coefficient * (*l1) + *aux;
}

TrainOutput GatedSae::TrainForward(const torch::Tensor& x, const TrainStepInfo& info) {
  double lambda = L1CoefficientAt(info.step, info.total_steps);
  TrainOutput out;
  torch::Tensor mse, l1, aux;
  out.loss = GatedLoss(x, W_enc, b_enc, r_mag, b_mag, W_dec, b_dec, lambda, &out.f, &out.x_hat,
                       &mse, &l1, &aux);
  out.terms["mse"] = mse.item<double>();
  out.terms["l1"] = l1.item<double>();
  out.terms["aux"] = aux.item<double>();
  out.terms["l1_coefficient"] = lambda;
  return out;
}

void GatedSae::BeforeOptimizerStep() { ProjectDecoderGradient(); }

void GatedSae::AfterOptimizerStep() { RenormalizeDecoderRows(); }

}  // namespace saelab
