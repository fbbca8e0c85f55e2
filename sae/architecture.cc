#include "sae/architecture.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"

namespace saelab {

void SelectArchitecture(const SaeArchitecture& architecture, SaeConfig* config) {
  // The oneof case is the field number.
  const google::protobuf::FieldDescriptor* field =
      SaeConfig::descriptor()->FindFieldByNumber(architecture.config_case);
  config->GetReflection()->MutableMessage(config, field);
}

void FillOptimizerDefaults(double lr, double adam_eps, SaeConfig* config) {
  TrainerConfig* trainer = config->mutable_trainer();
  if (!trainer->has_lr()) trainer->set_lr(lr);
  if (!trainer->has_adam_eps()) trainer->set_adam_eps(adam_eps);
}

void ShiftBEnc(const torch::Tensor& shift, std::map<std::string, torch::Tensor>* tensors) {
  torch::Tensor& b_enc = tensors->at("b_enc");
  const torch::Tensor w_enc = tensors->at("W_enc").to(torch::kFloat64);
  b_enc = (b_enc.to(torch::kFloat64) + torch::matmul(shift, w_enc)).to(torch::kFloat32);
}

absl::StatusOr<torch::Tensor> SaeLensThreshold(const torch::Tensor& threshold,
                                               const std::string& weights_path) {
  if (torch::isnan(threshold).any().item<bool>()) {
    return absl::InvalidArgumentError(
        absl::StrCat(weights_path, ": tensor 'threshold' contains NaN"));
  }
  // SAELens computes ReLU(z) * 1[z > t]: any t < 0 acts as t = 0.
  return threshold.clamp_min(0.0f);
}

}  // namespace saelab
