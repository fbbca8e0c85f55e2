#include "data/activations/synthetic_features.h"

#include <cmath>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "harness/seed.h"

namespace saelab {
namespace {

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("synthetic data config: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<SyntheticFeatureSource>> SyntheticFeatureSource::Create(
    const SyntheticDataConfig& config, uint64_t seed) {
  if (config.d() < 1) return Invalid(absl::StrCat("d must be >= 1, got ", config.d()));
  if (config.n_features() < 1) {
    return Invalid(absl::StrCat("n_features must be >= 1, got ", config.n_features()));
  }
  if (!(config.mean_active_features() > 0) ||
      config.mean_active_features() > static_cast<double>(config.n_features())) {
    return Invalid(absl::StrCat("mean_active_features must be in (0, n_features = ",
                                config.n_features(), "], got ", config.mean_active_features()));
  }
  if (config.correlation() < 0 || config.correlation() >= 1) {
    return Invalid(absl::StrCat("correlation must be in [0, 1), got ", config.correlation()));
  }
  if (config.correlation_rank() < 1) return Invalid("correlation_rank must be >= 1");
  if (config.noise_std() < 0) return Invalid("noise_std must be >= 0");
  if (config.eval_tokens() < 1) return Invalid("eval_tokens must be >= 1");
  if (config.magnitude_min() < 0 || config.magnitude_min() > 1) {
    return Invalid("magnitude_min must be in [0, 1]");
  }
  if (const int64_t c = config.children_per_parent(); c != 0) {
    if (c < 0) return Invalid(absl::StrCat("children_per_parent must be >= 0, got ", c));
    if (config.n_features() % (1 + c) != 0) {
      return Invalid(absl::StrCat("n_features = ", config.n_features(),
                                  " is not a multiple of 1 + children_per_parent = ", 1 + c));
    }
    if (config.correlation() != 0) {
      return Invalid("correlation must be 0 with children_per_parent > 0");
    }
    if (!(config.child_probability() > 0) || config.child_probability() > 1) {
      return Invalid(absl::StrCat("child_probability must be in (0, 1], got ",
                                  config.child_probability()));
    }
  }
  std::unique_ptr<SyntheticFeatureSource> source(new SyntheticFeatureSource(config, seed));
  double p_max = source->probabilities_.max().item<double>();
  if (p_max > 1.0) {
    return Invalid(absl::StrCat("mean_active_features = ", config.mean_active_features(),
                                " with frequency_decay = ", config.frequency_decay(),
                                " needs a firing probability of ", p_max, " > 1"));
  }
  source->eval_x_ = source->Sample(config.eval_tokens(), DeriveSeed(seed, "eval"),
                                   &source->eval_codes_);
  return source;
}

SyntheticFeatureSource::SyntheticFeatureSource(const SyntheticDataConfig& config, uint64_t seed)
    : config_(config), seed_(seed) {
  const int64_t n = config.n_features();
  auto generator = at::detail::createCPUGenerator(DeriveSeed(seed, "features"));
  features_ = at::randn({n, config.d()}, generator, torch::kFloat32);
  features_ = features_ / features_.norm(2, {1}, /*keepdim=*/true);
  // The features that fire on their own (all of them, or the parents) get
  // rates r_i proportional to (i + 1)^-decay. With a hierarchy (Create has
  // checked that n is a multiple of 1 + c) each child fires at its parent's
  // rate times q, so the expected L0 is (1 + c q) sum_i r_i.
  const int64_t c = config.children_per_parent();
  const double q = c > 0 ? config.child_probability() : 0.0;
  parents_ = c > 0 ? n / (1 + c) : 0;
  torch::Tensor ranks = torch::arange(1, (c > 0 ? parents_ : n) + 1, torch::kFloat64);
  torch::Tensor weights = ranks.pow(-config.frequency_decay());
  probabilities_ =
      weights * (config.mean_active_features() / ((1 + c * q) * weights.sum().item<double>()));
  if (c > 0) probabilities_ = torch::cat({probabilities_, probabilities_.repeat_interleave(c) * q});
  // Phi^-1(p) = sqrt(2) erfinv(2p - 1).
  thresholds_ = (std::sqrt(2.0) * torch::erfinv(2.0 * probabilities_.clamp(0, 1) - 1.0))
                    .to(torch::kFloat32);
  auto loading_generator = at::detail::createCPUGenerator(DeriveSeed(seed, "correlation"));
  loadings_ = at::randn({n, config.correlation_rank()}, loading_generator, torch::kFloat32);
  loadings_ = loadings_ / loadings_.norm(2, {1}, /*keepdim=*/true);
}

torch::Tensor SyntheticFeatureSource::Sample(int64_t tokens, uint64_t stream_seed,
                                             torch::Tensor* codes) const {
  torch::NoGradGuard no_grad;
  const int64_t n = config_.n_features();
  auto generator = at::detail::createCPUGenerator(stream_seed);
  torch::Tensor active;
  if (config_.correlation() > 0) {
    double rho = config_.correlation();
    torch::Tensor independent = at::randn({tokens, n}, generator, torch::kFloat32);
    torch::Tensor shared = at::randn({tokens, config_.correlation_rank()}, generator, torch::kFloat32);
    torch::Tensor z = std::sqrt(1 - rho) * independent + std::sqrt(rho) * torch::mm(shared, loadings_.t());
    active = z < thresholds_;
  } else {
    torch::Tensor u = at::rand({tokens, n}, generator, torch::kFloat64);
    if (parents_ > 0) {
      torch::Tensor parent = u.narrow(1, 0, parents_) < probabilities_.narrow(0, 0, parents_);
      torch::Tensor child = parent.repeat_interleave(config_.children_per_parent(), 1)
                                .logical_and(u.narrow(1, parents_, n - parents_) <
                                             config_.child_probability());
      active = torch::cat({parent, child}, 1);
    } else {
      active = u < probabilities_;
    }
  }
  torch::Tensor magnitude;
  switch (config_.magnitude()) {
    case SyntheticDataConfig::UNIFORM: {
      double low = config_.magnitude_min();
      magnitude = low + (1 - low) * at::rand({tokens, n}, generator, torch::kFloat32);
      break;
    }
    case SyntheticDataConfig::EXPONENTIAL: {
      torch::Tensor u = at::rand({tokens, n}, generator, torch::kFloat32);
      magnitude = (-torch::log1p(-u)).clamp_min(config_.magnitude_min());
      break;
    }
    case SyntheticDataConfig::CONSTANT:
      magnitude = torch::ones({tokens, n}, torch::kFloat32);
      break;
  }
  torch::Tensor c = active.to(torch::kFloat32) * magnitude;  // [tokens, n]
  torch::Tensor x = torch::mm(c, features_);                 // [tokens, d]
  if (config_.noise_std() > 0) {
    x += config_.noise_std() * at::randn({tokens, config_.d()}, generator, torch::kFloat32);
  }
  if (codes != nullptr) *codes = c;
  return x;
}

torch::Tensor SyntheticFeatureSource::ParentOf() const {
  torch::Tensor parent_of = torch::full({config_.n_features()}, -1, torch::kInt64);
  if (parents_ > 0) {
    parent_of.narrow(0, parents_, parent_of.size(0) - parents_)
        .copy_(torch::arange(parents_).repeat_interleave(config_.children_per_parent()));
  }
  return parent_of;
}

absl::StatusOr<torch::Tensor> SyntheticFeatureSource::TrainBatch(int64_t step, int64_t batch_size) {
  return Sample(batch_size, DeriveSeed(seed_, absl::StrCat("train/", step)));
}

absl::StatusOr<torch::Tensor> SyntheticFeatureSource::InitSample(int64_t tokens) {
  return Sample(tokens, DeriveSeed(seed_, "init"));
}

}  // namespace saelab
