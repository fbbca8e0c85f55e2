#include "sae/trainer.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <torch/optim/adam.h>
#include <torch/types.h>
// After types.h: LibTorch's clip_grad.h does not include what it uses.
#include <torch/nn/utils.h>
#include <torch/utils.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "harness/file_io.h"
#include "harness/progress.h"
#include "harness/safetensors.h"
#include "harness/schedule.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "harness/dir_lock.h"
#include "harness/train_state.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/kernels/adam_step.h"

namespace saelab {
namespace {

constexpr char kStateFile[] = "/train_state.safetensors";
constexpr char kCurveFile[] = "/training_curve.safetensors";

struct LoopState {
  int64_t next_step = 0;
  torch::Tensor tokens_since_fired;  // [n_latents] int64
  std::vector<TrainingCurvePoint> curve;
};

// The curve as one [points, 3] float64 tensor (tokens, loss, dead fraction):
// tokens stay exact below 2^53.
torch::Tensor CurveTensor(const std::vector<TrainingCurvePoint>& curve) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(curve.size()), 3}, torch::kFloat64);
  auto a = t.accessor<double, 2>();
  for (size_t i = 0; i < curve.size(); ++i) {
    a[i][0] = static_cast<double>(curve[i].tokens);
    a[i][1] = curve[i].loss;
    a[i][2] = curve[i].dead_fraction;
  }
  return t;
}

std::vector<TrainingCurvePoint> CurveFromTensor(const torch::Tensor& t) {
  std::vector<TrainingCurvePoint> curve(t.size(0));
  auto a = t.accessor<double, 2>();
  for (int64_t i = 0; i < t.size(0); ++i) {
    curve[i] = {static_cast<int64_t>(a[i][0]), a[i][1], a[i][2]};
  }
  return curve;
}

// Steps before `next_step` that have a curve point (every log_every-th).
int64_t CurvePointsBefore(int64_t next_step, int64_t log_every) {
  return (next_step + log_every - 1) / log_every;
}

absl::Status SaveState(const std::string& path, Sae& sae, torch::optim::Adam& adam,
                       const LoopState& loop, const std::string& config_sha256) {
  TrainState state;
  state.loop["tokens_since_fired"] = loop.tokens_since_fired;
  state.loop["next_step"] = torch::tensor(loop.next_step, torch::kInt64);
  state.loop["curve"] = CurveTensor(loop.curve);
  return SaveTrainState<torch::optim::AdamParamState>(path, config_sha256, sae.NamedTensors(),
                                                      "sae.", adam, "adam.", state);
}

// Resumes from the train state at `path` (or the previous checkpoint, see
// ResumeTrainState); false if there is none to resume from.
absl::StatusOr<bool> LoadState(const std::string& path, Sae& sae, torch::optim::Adam& adam,
                               LoopState* loop, const std::string& config_sha256,
                               int64_t total_steps, int64_t log_every) {
  ASSIGN_OR_RETURN(std::optional<TrainState> state,
                   ResumeTrainState<torch::optim::AdamParamState>(
                       path, config_sha256, "SAE", total_steps, sae.NamedTensors(), "sae.", &adam,
                       "adam."));
  if (!state.has_value()) return false;
  ASSIGN_OR_RETURN(loop->tokens_since_fired,
                   state->Loop("tokens_since_fired", {sae.n_latents()}, torch::kInt64));
  ASSIGN_OR_RETURN(torch::Tensor next, state->Loop("next_step", {}, torch::kInt64));
  loop->next_step = next.item<int64_t>();
  ASSIGN_OR_RETURN(torch::Tensor curve,
                   state->Loop("curve", {CurvePointsBefore(loop->next_step, log_every), 3},
                               torch::kFloat64));
  loop->curve = CurveFromTensor(curve);
  return true;
}

// A finite loss can still leave a non-finite weight (an overflowing Adam
// step); a checkpoint of it would poison every resume.
absl::Status CheckWeightsFinite(Sae& sae, const std::string& name, int64_t step) {
  for (const auto& [tensor_name, tensor] : sae.NamedTensors()) {
    if (!torch::isfinite(tensor).all().item<bool>()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "SAE '", name, "': weight ", tensor_name, " holds a NaN or an infinity after step ",
          step, "; nothing after the last checkpoint was written"));
    }
  }
  return absl::OkStatus();
}

// One NaN or Inf in the activations turns every weight NaN within a step;
// refuse it where it enters, naming the place.
absl::Status CheckFinite(const torch::Tensor& x, const std::string& where) {
  const torch::Tensor bad = torch::isfinite(x).logical_not();
  if (!bad.any().item<bool>()) return absl::OkStatus();
  const torch::Tensor first = bad.nonzero()[0];  // [row, column]
  const int64_t row = first[0].item<int64_t>(), column = first[1].item<int64_t>();
  return absl::InvalidArgumentError(absl::StrCat(
      "activation source returned a non-finite value (", x[row][column].item<float>(), ") in ",
      where, " at row ", row, ", column ", column, "; the activations must be finite"));
}

absl::Status CheckBatch(const torch::Tensor& x, int64_t batch_size, int64_t d_in, int64_t step) {
  if (x.dim() != 2 || x.size(0) != batch_size || x.size(1) != d_in ||
      x.scalar_type() != torch::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("activation source returned a batch of shape [",
                     absl::StrJoin(x.sizes(), ", "), "] ", c10::toString(x.scalar_type()),
                     " at step ", step, "; expected [", batch_size, ", ", d_in, "] Float"));
  }
  return CheckFinite(x, step < 0 ? std::string("the initialisation sample")
                                 : absl::StrCat("the batch of step ", step));
}

}  // namespace

double LearningRateAt(const TrainerConfig& trainer, int64_t step, int64_t total_steps) {
  return trainer.lr() * LinearDecayTailFactor(step, total_steps, trainer.lr_decay_fraction());
}

absl::StatusOr<TrainResult> TrainSae(SaeConfig config, ActivationSource& source, uint64_t seed,
                                     const TrainOptions& options) {
  // Training needs autograd even when the caller holds a NoGradGuard (as
  // code that has just run a model for activations often does).
  torch::AutoGradMode grad_mode(true);
  absl::Time start = absl::Now();
  const int64_t d_in = source.d_in();
  // A paired source's rows are [input | target] (activation_source.h).
  const int64_t d_target = source.d_target();
  const int64_t row_width = d_in + d_target;
  RETURN_IF_ERROR(ResolveSaeConfig(d_in, &config));
  if (config.has_transcoder() && d_target != d_in) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SAE '", config.name(), "' is a transcoder, which needs a paired source whose target has ",
        "the input's width ", d_in, "; this source's target width is ", d_target,
        d_target == 0 ? " (no target: set the data's target hook)" : ""));
  }
  if (!config.has_transcoder() && d_target > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the source supplies paired [input | target] rows (target width ", d_target,
        ") but SAE '", config.name(), "' is not a transcoder; set its transcoder field"));
  }
  const TrainerConfig& trainer = config.trainer();
  const std::string config_sha256 = ProtoSha256(config);
  const int64_t log_every = std::max<int64_t>(1, trainer.log_every_steps());

  TrainResult result;
  result.config = config;
  // One process per SAE directory: two trainers would interleave checkpoints.
  std::optional<DirectoryLock> lock;
  if (!options.dir.empty()) {
    ASSIGN_OR_RETURN(DirectoryLock held, DirectoryLock::Acquire(options.dir));
    lock.emplace(std::move(held));
  }
  if (!options.dir.empty() && HasSavedSae(options.dir)) {
    SaeConfig saved;
    ASSIGN_OR_RETURN(result.sae, LoadSae(options.dir, &saved));
    if (ProtoSha256(saved) != config_sha256) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.dir, " holds an SAE trained with a different config; use another run dir"));
    }
    result.loaded_from_disk = true;
    result.finished = true;
    result.steps = trainer.total_tokens() / trainer.batch_size();
    if (PathExists(options.dir + kCurveFile)) {
      ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(options.dir + kCurveFile));
      auto it = contents.tensors.find("curve");
      if (it == contents.tensors.end() || it->second.dim() != 2 || it->second.size(1) != 3 ||
          it->second.scalar_type() != torch::kFloat64) {
        return absl::DataLossError(absl::StrCat(options.dir, kCurveFile,
                                                ": expected one float64 tensor 'curve' [points, 3]"));
      }
      result.curve = CurveFromTensor(it->second);
    }
    return result;
  }

  ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(config, d_in, seed));
  torch::optim::Adam adam(sae->parameters(),
                          torch::optim::AdamOptions(trainer.lr())
                              .betas(std::make_tuple(trainer.adam_beta1(), trainer.adam_beta2()))
                              .eps(trainer.adam_eps()));
  LoopState loop;
  loop.tokens_since_fired = torch::zeros({sae->n_latents()}, torch::kInt64);

  const int64_t total_steps = trainer.total_tokens() / trainer.batch_size();
  const std::string state_path = options.dir.empty() ? "" : options.dir + kStateFile;
  if (!state_path.empty()) {
    ASSIGN_OR_RETURN(result.resumed, LoadState(state_path, *sae, adam, &loop, config_sha256,
                                               total_steps, log_every));
  }
  if (!result.resumed) {
    ASSIGN_OR_RETURN(torch::Tensor sample, source.InitSample(trainer.init_sample_tokens()));
    RETURN_IF_ERROR(CheckBatch(sample, trainer.init_sample_tokens(), row_width, -1));
    const torch::Tensor inputs = sample.narrow(1, 0, d_in);
    if (config.normalize_input()) sae->set_input_scale(EstimateInputScale(inputs));
    // What the SAE reconstructs: the target half of a transcoder's rows.
    sae->InitFromSample((d_target > 0 ? sample.narrow(1, d_in, d_target) : inputs) *
                        sae->input_scale());
  }
  if (!options.dir.empty()) RETURN_IF_ERROR(MakeDirs(options.dir));

  const int64_t batch_size = trainer.batch_size();
  std::vector<torch::Tensor> params = sae->parameters();
  Progress progress(options.label.empty() ? config.name() : options.label, total_steps * batch_size,
                    "tokens");
  int64_t steps_this_call = 0;
  for (int64_t step = loop.next_step; step < total_steps; ++step) {
    if (options.stop_after_steps >= 0 && steps_this_call == options.stop_after_steps) {
      result.sae = std::move(sae);
      result.steps = step;
      result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);
      return result;  // as if killed: nothing more is written
    }
    ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(step, batch_size));
    RETURN_IF_ERROR(CheckBatch(batch, batch_size, row_width, step));
    TrainStepInfo info;
    info.step = step;
    info.total_steps = total_steps;
    info.dead_mask = loop.tokens_since_fired >= trainer.dead_after_tokens();
    if (d_target > 0) info.target = batch.narrow(1, d_in, d_target) * sae->input_scale();

    // The architecture's sparse step writes the gradients itself; otherwise
    // autograd differentiates TrainForward's loss (below).
    const torch::Tensor x =
        (d_target > 0 ? batch.narrow(1, 0, d_in) : batch) * sae->input_scale();
    TrainOutput out;
    const bool gradients_written = sae->TrainStepGradients(x, info, &out);
    if (!gradients_written) out = sae->TrainForward(x, info);
    // A non-finite loss (finite but huge activations, a too large learning
    // rate) would poison every weight: stop before the update; the last
    // checkpoint on disk stays as it was.
    const double loss = out.loss.item<double>();
    if (!std::isfinite(loss)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "SAE '", config.name(), "': the training loss is ", loss, " at step ", step, " of ",
          total_steps, " (batch max |x| ", batch.abs().max().item<float>(), ", lr ",
          LearningRateAt(trainer, step, total_steps),
          "); nothing after the last checkpoint was written"));
    }
    if (!gradients_written) {
      adam.zero_grad();
      out.loss.backward();
    }
    sae->BeforeOptimizerStep();
    if (trainer.grad_clip_norm() > 0)
      torch::nn::utils::clip_grad_norm_(params, trainer.grad_clip_norm());
    for (auto& group : adam.param_groups()) {
      static_cast<torch::optim::AdamOptions&>(group.options())
          .lr(LearningRateAt(trainer, step, total_steps));
    }
    FusedAdamStep(adam);  // Adam::step's update without its per-step temporaries
    sae->AfterOptimizerStep();

    {
      torch::NoGradGuard no_grad;
      const torch::Tensor fired = out.fired.defined() ? out.fired : (out.f != 0).any(0);  // [n]
      loop.tokens_since_fired.add_(batch_size).masked_fill_(fired, 0);
    }
    loop.next_step = step + 1;
    ++steps_this_call;
    result.last_terms = out.terms;
    result.last_terms["loss"] = loss;
    if (step % log_every == 0 || step + 1 == total_steps) {
      loop.curve.push_back(
          {(step + 1) * batch_size, loss,
           (loop.tokens_since_fired >= trainer.dead_after_tokens()).to(torch::kFloat64).mean()
               .item<double>()});
      progress.Update((step + 1) * batch_size,
                      absl::StrFormat("loss %.5g", result.last_terms["loss"]));
    }
    if (!state_path.empty() && trainer.checkpoint_every_steps() > 0 &&
        loop.next_step % trainer.checkpoint_every_steps() == 0 && loop.next_step < total_steps) {
      RETURN_IF_ERROR(CheckWeightsFinite(*sae, config.name(), step));
      RETURN_IF_ERROR(SaveState(state_path, *sae, adam, loop, config_sha256));
    }
  }
  progress.Finish(absl::StrFormat("loss %.5g", result.last_terms["loss"]));
  if (const int64_t calibration = sae->CalibrationBatches(); calibration > 0) {
    // The last batches again, as the loop read them (TrainBatch is a pure
    // function of the step), so a resumed run calibrates on the same ones.
    std::vector<torch::Tensor> batches;
    for (int64_t step = std::max<int64_t>(0, total_steps - calibration); step < total_steps;
         ++step) {
      ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(step, batch_size));
      batches.push_back(batch.narrow(1, 0, d_in) * sae->input_scale());
    }
    torch::NoGradGuard no_grad;
    sae->Calibrate(batches);
  }
  RETURN_IF_ERROR(CheckWeightsFinite(*sae, config.name(), total_steps - 1));
  if (!options.dir.empty()) {
    // The curve first: a kill between the two leaves a train state to resume.
    RETURN_IF_ERROR(WriteSafetensors(options.dir + kCurveFile, {{"curve", CurveTensor(loop.curve)}}));
    RETURN_IF_ERROR(SaveSae(options.dir, *sae, config));
    // The final SAE supersedes the training state.
    RemoveTrainState(state_path);
  }
  result.curve = std::move(loop.curve);
  result.sae = std::move(sae);
  result.steps = total_steps;
  result.finished = true;
  result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start);
  return result;
}

}  // namespace saelab
