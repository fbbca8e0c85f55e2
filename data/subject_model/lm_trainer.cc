#include "data/subject_model/lm_trainer.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <torch/optim/adamw.h>
#include <torch/optim/optimizer.h>
#include <torch/types.h>
// After types.h: LibTorch's clip_grad.h does not include what it uses.
#include <torch/nn/utils.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/progress.h"
#include "harness/safetensors.h"
#include "harness/schedule.h"
#include "harness/seed.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "harness/train_state.h"

namespace saelab {
namespace {

constexpr char kStateFile[] = "/lm_train_state.safetensors";

// What a checkpoint holds beyond weights and AdamW moments.
struct LoopState {
  int64_t next_step = 0;
  std::vector<float> first_losses;
  std::vector<std::pair<int64_t, double>> val_curve;
  // Training losses of the last (up to) 50 steps.
  std::vector<float> recent_losses;
};

torch::Tensor FloatVector(const std::vector<float>& values) {
  return torch::tensor(values, torch::kFloat32).reshape({static_cast<int64_t>(values.size())});
}

absl::Status SaveState(const std::string& path, const Gpt2Model& model,
                       torch::optim::AdamW& optimizer, const LoopState& loop,
                       const std::string& config_sha256) {
  TrainState state;
  state.loop["next_step"] = torch::tensor(loop.next_step, torch::kInt64);
  state.loop["first_losses"] = FloatVector(loop.first_losses);
  state.loop["recent_losses"] = FloatVector(loop.recent_losses);
  std::vector<double> curve;
  for (const auto& [step, loss] : loop.val_curve) {
    curve.push_back(static_cast<double>(step));
    curve.push_back(loss);
  }
  state.loop["val_curve"] =
      torch::from_blob(curve.data(), {static_cast<int64_t>(loop.val_curve.size()), 2},
                       torch::kFloat64)
          .clone();
  return SaveTrainState<torch::optim::AdamWParamState>(path, config_sha256, model.NamedTensors(),
                                                       "model.", optimizer, "adamw.", state);
}

// Resumes from the train state at `path` (or the previous checkpoint, see
// ResumeTrainState); false if there is none to resume from.
absl::StatusOr<bool> LoadState(const std::string& path, Gpt2Model& model,
                               torch::optim::AdamW& optimizer, LoopState* loop,
                               const std::string& config_sha256, int64_t total_steps) {
  ASSIGN_OR_RETURN(std::optional<TrainState> resumed,
                   ResumeTrainState<torch::optim::AdamWParamState>(
                       path, config_sha256, "LM training", total_steps, model.NamedTensors(),
                       "model.", &optimizer, "adamw."));
  if (!resumed.has_value()) return false;
  const TrainState& state = *resumed;
  ASSIGN_OR_RETURN(torch::Tensor next, state.Loop("next_step", {}, torch::kInt64));
  loop->next_step = next.item<int64_t>();
  auto losses = state.loop.find("first_losses");
  auto curve = state.loop.find("val_curve");
  auto recent = state.loop.find("recent_losses");
  if (losses == state.loop.end() || curve == state.loop.end() || recent == state.loop.end() ||
      recent->second.scalar_type() != torch::kFloat32 ||
      losses->second.scalar_type() != torch::kFloat32 || curve->second.dim() != 2 ||
      curve->second.scalar_type() != torch::kFloat64) {
    return absl::InvalidArgumentError(
        absl::StrCat(state.path, ": loop.first_losses / recent_losses / val_curve missing or malformed"));
  }
  const float* l = losses->second.data_ptr<float>();
  loop->first_losses.assign(l, l + losses->second.numel());
  const float* r = recent->second.data_ptr<float>();
  loop->recent_losses.assign(r, r + recent->second.numel());
  const double* c = curve->second.data_ptr<double>();
  for (int64_t i = 0; i < curve->second.size(0); ++i) {
    loop->val_curve.emplace_back(static_cast<int64_t>(c[2 * i]), c[2 * i + 1]);
  }
  return true;
}

absl::Status CheckContexts(const torch::Tensor& contexts, const char* what, int64_t length,
                           const Gpt2Config& model) {
  if (!contexts.defined() || contexts.dim() != 2 || contexts.scalar_type() != torch::kLong ||
      contexts.size(0) == 0 || contexts.size(1) != length) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainLanguageModel: ", what, " must be non-empty [N, ", length, "] int64, got ",
        contexts.defined() ? absl::StrCat("[", absl::StrJoin(contexts.sizes(), ", "), "] ",
                                          c10::toString(contexts.scalar_type()))
                           : std::string("undefined")));
  }
  if (length > model.n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("TrainLanguageModel: context_length ", length,
                                                   " > the model's n_positions ",
                                                   model.n_positions));
  }
  if (contexts.min().item<int64_t>() < 0 || contexts.max().item<int64_t>() >= model.vocab_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainLanguageModel: ", what, " hold ids outside [0, ", model.vocab_size, ")"));
  }
  return absl::OkStatus();
}

// Cross-entropy of predicting tokens[:, 1:] from logits[:, :-1], summed
// (sum = true) or averaged over the predicted positions.
torch::Tensor NextTokenLoss(const torch::Tensor& logits, const torch::Tensor& tokens, bool sum) {
  const int64_t vocab = logits.size(-1);
  torch::Tensor predicted = logits.slice(1, 0, logits.size(1) - 1).reshape({-1, vocab});
  torch::Tensor targets = tokens.slice(1, 1).reshape({-1});
  return at::cross_entropy_loss(predicted, targets, /*weight=*/{},
                                sum ? at::Reduction::Sum : at::Reduction::Mean);
}

// The seeded batch order: batch `step` is positions [step*B, (step+1)*B) of
// the concatenation of per-epoch permutations of the contexts. A pure
// function of (seed, step), so resumed runs see the same batches.
class BatchOrder {
 public:
  BatchOrder(int64_t n_contexts, uint64_t seed) : n_(n_contexts), seed_(seed) {}

  torch::Tensor Indices(int64_t step, int64_t batch) {
    std::vector<int64_t> indices(batch);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t global = step * batch + b;
      const int64_t epoch = global / n_;
      if (epoch != cached_epoch_) {
        at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(
            DeriveSeed(seed_, absl::StrCat("epoch/", epoch)));
        permutation_ = torch::randperm(n_, generator, torch::kLong);
        cached_epoch_ = epoch;
      }
      indices[b] = permutation_.data_ptr<int64_t>()[global % n_];
    }
    return torch::tensor(indices, torch::kLong);
  }

 private:
  int64_t n_;
  uint64_t seed_;
  int64_t cached_epoch_ = -1;
  torch::Tensor permutation_;
};

}  // namespace

double LmLearningRateAt(const LmTrainerConfig& config, int64_t step) {
  return WarmupCosine(step, config.warmup_steps(), config.steps(), config.lr(),
                      config.min_lr_fraction() * config.lr());
}

absl::StatusOr<double> LanguageModelLoss(const Gpt2Model& model, const torch::Tensor& contexts,
                                         int64_t batch_contexts) {
  if (!contexts.defined() || contexts.dim() != 2 || contexts.size(1) < 2 || batch_contexts < 1) {
    return absl::InvalidArgumentError(
        "LanguageModelLoss: contexts must be [N, L] with L >= 2 and batch_contexts >= 1");
  }
  torch::NoGradGuard no_grad;
  double total = 0;
  for (int64_t begin = 0; begin < contexts.size(0); begin += batch_contexts) {
    torch::Tensor batch =
        contexts.slice(0, begin, std::min(contexts.size(0), begin + batch_contexts));
    ASSIGN_OR_RETURN(torch::Tensor logits, model.Forward(batch));
    total += NextTokenLoss(logits, batch, /*sum=*/true).item<double>();
  }
  return total / static_cast<double>(contexts.size(0) * (contexts.size(1) - 1));
}

double UnigramLoss(const torch::Tensor& train_contexts, const torch::Tensor& val_contexts,
                   int64_t vocab_size) {
  torch::Tensor counts = torch::bincount(train_contexts.slice(1, 1).reshape({-1}), {}, vocab_size)
                             .to(torch::kFloat64) +
                         1.0;
  torch::Tensor log_p = torch::log(counts / counts.sum());
  torch::Tensor targets = val_contexts.slice(1, 1).reshape({-1});
  return -log_p.index_select(0, targets).mean().item<double>();
}

absl::StatusOr<LmTrainResult> TrainLanguageModel(const LmTrainerConfig& config,
                                                 const torch::Tensor& train_contexts,
                                                 const torch::Tensor& val_contexts, uint64_t seed,
                                                 const LmTrainOptions& options, Gpt2Model* model) {
  const absl::Time start = absl::Now();
  const Gpt2Config& shape = model->config();
  RETURN_IF_ERROR(CheckContexts(train_contexts, "train_contexts", config.context_length(), shape));
  RETURN_IF_ERROR(CheckContexts(val_contexts, "val_contexts", config.context_length(), shape));
  if (config.steps() < 1 || config.batch_contexts() < 1 || config.lr() <= 0 ||
      config.warmup_steps() < 0 || config.eval_every_steps() < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TrainLanguageModel: need steps, batch_contexts, eval_every_steps >= 1, lr > 0 and "
        "warmup_steps >= 0; got ",
        ToTextProto(config)));
  }

  // Weight decay on matrices and embeddings only, as GPT-2 / nanoGPT do.
  std::vector<torch::Tensor> decayed, not_decayed;
  for (torch::Tensor& param : model->Parameters()) {
    param.requires_grad_(true);
    (param.dim() >= 2 ? decayed : not_decayed).push_back(param);
  }
  auto adamw_options = [&](double weight_decay) {
    return std::make_unique<torch::optim::AdamWOptions>(
        torch::optim::AdamWOptions(config.lr())
            .betas(std::make_tuple(config.adam_beta1(), config.adam_beta2()))
            .eps(config.adam_eps())
            .weight_decay(weight_decay));
  };
  torch::optim::AdamW optimizer(
      std::vector<torch::optim::OptimizerParamGroup>{
          torch::optim::OptimizerParamGroup(decayed, adamw_options(config.weight_decay())),
          torch::optim::OptimizerParamGroup(not_decayed, adamw_options(0.0))},
      torch::optim::AdamWOptions(config.lr()));

  LmTrainResult result;
  result.tokens_per_step = config.batch_contexts() * (config.context_length() - 1);
  LoopState loop;
  const std::string config_sha256 = ProtoSha256(config);
  const std::string state_path = options.dir.empty() ? "" : options.dir + kStateFile;
  if (!state_path.empty()) {
    RETURN_IF_ERROR(MakeDirs(options.dir));
    ASSIGN_OR_RETURN(result.resumed, LoadState(state_path, *model, optimizer, &loop,
                                               config_sha256, config.steps()));
  }

  BatchOrder order(train_contexts.size(0), seed);
  Progress progress(options.label, config.steps(), "steps");
  int64_t steps_this_call = 0;
  auto evaluate = [&](int64_t step) -> absl::Status {
    // An evenly strided sample: contexts are in corpus order, so a prefix
    // would measure one corpus.
    torch::Tensor val = val_contexts;
    if (config.eval_contexts() > 0 && config.eval_contexts() < val.size(0)) {
      const int64_t stride = val.size(0) / config.eval_contexts();
      val = val.slice(0, 0, stride * config.eval_contexts(), stride);
    }
    ASSIGN_OR_RETURN(double loss, LanguageModelLoss(*model, val, config.batch_contexts()));
    loop.val_curve.emplace_back(step, loss);
    Log("%s: step %lld val loss %.4f", options.label.c_str(), static_cast<long long>(step), loss);
    return absl::OkStatus();
  };

  for (int64_t step = loop.next_step; step < config.steps(); ++step) {
    if (options.stop_after_steps >= 0 && steps_this_call == options.stop_after_steps) {
      result.steps = step;
      result.first_losses = loop.first_losses;
      result.val_curve = loop.val_curve;
      result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      return result;
    }
    torch::Tensor batch =
        train_contexts.index_select(0, order.Indices(step, config.batch_contexts()));
    ASSIGN_OR_RETURN(torch::Tensor logits, model->Forward(batch));
    torch::Tensor loss = NextTokenLoss(logits, batch, /*sum=*/false);
    optimizer.zero_grad();
    loss.backward();
    torch::nn::utils::clip_grad_norm_(model->Parameters(), config.grad_clip_norm());
    const double lr = LmLearningRateAt(config, step);
    for (auto& group : optimizer.param_groups()) {
      static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
    }
    optimizer.step();

    const float loss_value = loss.item<float>();
    if (static_cast<int64_t>(loop.first_losses.size()) < config.record_first_losses() &&
        static_cast<int64_t>(loop.first_losses.size()) == step) {
      loop.first_losses.push_back(loss_value);
    }
    loop.recent_losses.push_back(loss_value);
    if (loop.recent_losses.size() > 50) loop.recent_losses.erase(loop.recent_losses.begin());
    ++steps_this_call;
    loop.next_step = step + 1;
    progress.Update(step + 1, absl::StrFormat("loss %.4f lr %.2e", loss_value, lr));

    if ((step + 1) % config.eval_every_steps() == 0 || step + 1 == config.steps()) {
      RETURN_IF_ERROR(evaluate(step + 1));
    }
    if (!state_path.empty() && config.checkpoint_every_steps() > 0 &&
        ((step + 1) % config.checkpoint_every_steps() == 0 || step + 1 == config.steps())) {
      RETURN_IF_ERROR(SaveState(state_path, *model, optimizer, loop, config_sha256));
    }
  }
  progress.Finish();
  for (torch::Tensor& param : model->Parameters()) param.requires_grad_(false);

  result.steps = loop.next_step;
  result.finished = true;
  result.first_losses = loop.first_losses;
  result.val_curve = loop.val_curve;
  double sum = 0;
  for (float l : loop.recent_losses) sum += l;
  result.final_train_loss = loop.recent_losses.empty() ? 0.0 : sum / loop.recent_losses.size();
  result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

}  // namespace saelab
