#include "sae/trainer.h"

#include <algorithm>
#include <cmath>
#include <limits>
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
#include "harness/distributed.h"
#include "harness/optimizer_state.h"
#include "harness/train_state.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/kernels/adam_step.h"

namespace saelab {
namespace {

constexpr char kStateFile[] = "/train_state.safetensors";
constexpr char kCurveFile[] = "/training_curve.safetensors";

// torch::nn::utils::clip_grad_norm_'s rule (gradients scaled by
// max_norm / (norm + 1e-6) when that is below 1) with the norm computed
// the same way on any number of threads (SquaredNormAnyThreadCount):
// LibTorch's whole-tensor norms split the sum among its threads.
void ClipGradientNorm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  double squares = 0;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) squares += SquaredNormAnyThreadCount(p.grad());
  }
  const double coefficient = max_norm / (std::sqrt(squares) + 1e-6);
  if (coefficient >= 1.0) return;
  for (const torch::Tensor& p : params) {
    if (p.grad().defined()) p.grad().mul_(coefficient);
  }
}

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

// Rank 0's SAE tensors, Adam state (with_adam: after a resume) and loop
// state on every rank. The receivers' curve must already have rank 0's
// number of points.
absl::Status BroadcastTrainingState(Communicator& comm, Sae& sae, torch::optim::Adam* adam,
                                    bool with_adam, LoopState* loop) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> tensors;
  for (const auto& [name, tensor] : sae.NamedTensors()) tensors.push_back(tensor);
  std::vector<torch::optim::AdamParamState*> states;
  if (with_adam) {
    for (const torch::Tensor& p : sae.parameters()) {
      auto& slot = adam->state()[OptimizerStateKey(p)];
      if (slot == nullptr) {
        auto state = std::make_unique<torch::optim::AdamParamState>();
        state->exp_avg(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        state->exp_avg_sq(torch::zeros_like(p, torch::MemoryFormat::Preserve));
        slot = std::move(state);
      }
      auto& state = static_cast<torch::optim::AdamParamState&>(*slot);
      states.push_back(&state);
      tensors.push_back(state.exp_avg());
      tensors.push_back(state.exp_avg_sq());
    }
  }
  std::vector<torch::Tensor> steps;
  for (auto* state : states) steps.push_back(torch::tensor(state->step(), torch::kInt64));
  tensors.insert(tensors.end(), steps.begin(), steps.end());
  if (loop != nullptr && loop->tokens_since_fired.defined()) {
    tensors.push_back(loop->tokens_since_fired);
  }
  torch::Tensor curve = loop != nullptr ? CurveTensor(loop->curve) : torch::Tensor();
  if (loop != nullptr) tensors.push_back(curve);
  RETURN_IF_ERROR(comm.Broadcast(tensors));
  for (size_t i = 0; i < states.size(); ++i) states[i]->step(steps[i].item<int64_t>());
  if (loop != nullptr) loop->curve = CurveFromTensor(curve);
  return absl::OkStatus();
}

}  // namespace

double LearningRateAt(const TrainerConfig& trainer, int64_t step, int64_t total_steps) {
  return trainer.lr() * LinearDecayTailFactor(step, total_steps, trainer.lr_decay_fraction());
}

namespace {

// One SAE's training, split at the batch: Start (resolve, lock, load a
// finished SAE or create one and resume or initialise it), Step (one
// optimiser step on a batch the caller read for next_step()), Finish
// (calibration, the final files). TrainSae runs one; TrainSaes runs several
// on each batch it reads.
class TrainingRun {
 public:
  static absl::StatusOr<std::unique_ptr<TrainingRun>> Start(SaeConfig config,
                                                            ActivationSource& source,
                                                            uint64_t seed,
                                                            const TrainOptions& options);

  // True while this call has steps left to run.
  bool training() const {
    return !result_.loaded_from_disk && !stopped_ && loop_.next_step < total_steps_;
  }
  int64_t next_step() const { return loop_.next_step; }
  int64_t batch_size() const { return trainer().batch_size(); }
  const std::string& name() const { return result_.config.name(); }
  // One step on `batch`, source.TrainBatch(next_step(), batch_size()).
  absl::Status Step(const torch::Tensor& batch);
  // After the last Step (or a stop_after_steps stop).
  absl::StatusOr<TrainResult> Finish(ActivationSource& source);

 private:
  TrainingRun() = default;
  const TrainerConfig& trainer() const { return result_.config.trainer(); }
  // Whether this process reads and writes the SAE's directory: rank 0, or
  // the only process.
  bool writer() const { return comm_ == nullptr || comm_->rank() == 0; }
  // Data-parallel: sums this rank's gradients, loss (*loss) and fired
  // latents (*fired, [n] bool) with every other rank's, leaving the mean
  // gradients in the grad buffers, the mean loss in *loss and the union of
  // the fired latents in *fired.
  absl::Status AllReduceStep(double* loss, torch::Tensor* fired);

  TrainOptions options_;
  absl::Time start_;
  std::string config_sha256_;
  int64_t d_in_ = 0, d_target_ = 0, total_steps_ = 0, steps_this_call_ = 0;
  bool stopped_ = false;
  std::optional<DirectoryLock> lock_;
  TrainResult result_;
  std::unique_ptr<Sae> sae_;
  std::unique_ptr<torch::optim::Adam> adam_;
  std::vector<torch::Tensor> params_;
  LoopState loop_;
  std::string state_path_;
  std::unique_ptr<Progress> progress_;
  // Data-parallel ranks (null: one process), the first error of a
  // collective made inside a loss (ShardMean returns NaN then), and the
  // gradient bucket all-reduced every step.
  Communicator* comm_ = nullptr;
  absl::Status comm_error_;
  torch::Tensor bucket_;
};

absl::StatusOr<std::unique_ptr<TrainingRun>> TrainingRun::Start(SaeConfig config,
                                                                ActivationSource& source,
                                                                uint64_t seed,
                                                                const TrainOptions& options) {
  std::unique_ptr<TrainingRun> run(new TrainingRun);
  run->options_ = options;
  run->start_ = absl::Now();
  const int64_t d_in = source.d_in();
  // A paired source's rows are [input | target] (activation_source.h).
  const int64_t d_target = source.d_target();
  run->d_in_ = d_in;
  run->d_target_ = d_target;
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
  run->config_sha256_ = ProtoSha256(config);
  const int64_t log_every = std::max<int64_t>(1, trainer.log_every_steps());
  run->total_steps_ = trainer.total_tokens() / trainer.batch_size();
  run->comm_ = options.communicator != nullptr ? options.communicator : ProcessCommunicator();
  if (run->comm_ != nullptr && run->comm_->world_size() == 1) run->comm_ = nullptr;
  Communicator* comm = run->comm_;
  if (comm != nullptr && trainer.batch_size() % comm->world_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SAE '", config.name(), "': trainer.batch_size ", trainer.batch_size(),
        " does not split into ", comm->world_size(),
        " equal shards; data-parallel training needs a multiple of the number of ranks"));
  }
  // Only the writer touches the directory; the other ranks get its state.
  const std::string dir = run->writer() ? options.dir : "";

  TrainResult& result = run->result_;
  result.config = config;
  // One process per SAE directory: two trainers would interleave checkpoints.
  if (!dir.empty()) {
    ASSIGN_OR_RETURN(DirectoryLock held, DirectoryLock::Acquire(dir));
    run->lock_.emplace(std::move(held));
  }
  // Whether rank 0 has the finished SAE on disk; every rank learns it.
  std::vector<torch::Tensor> saved_flag = {
      torch::tensor(static_cast<int64_t>(!dir.empty() && HasSavedSae(dir)), torch::kInt64)};
  if (comm != nullptr) RETURN_IF_ERROR(comm->Broadcast(saved_flag));
  if (saved_flag[0].item<int64_t>() == 1 && !run->writer()) {
    // Rank 0 loads it (below); take its tensors and curve.
    ASSIGN_OR_RETURN(result.sae, CreateSae(config, d_in, seed));
    result.loaded_from_disk = true;
    result.finished = true;
    result.steps = run->total_steps_;
    std::vector<torch::Tensor> points = {torch::zeros({}, torch::kInt64)};
    RETURN_IF_ERROR(comm->Broadcast(points));
    LoopState loop;
    loop.curve.resize(points[0].item<int64_t>());
    RETURN_IF_ERROR(BroadcastTrainingState(*comm, *result.sae, nullptr, false, &loop));
    result.curve = std::move(loop.curve);
    return run;
  }
  if (saved_flag[0].item<int64_t>() == 1) {
    SaeConfig saved;
    ASSIGN_OR_RETURN(result.sae, LoadSae(options.dir, &saved));
    if (ProtoSha256(saved) != run->config_sha256_) {
      return absl::FailedPreconditionError(absl::StrCat(
          options.dir, " holds an SAE trained with a different config; use another run dir"));
    }
    result.loaded_from_disk = true;
    result.finished = true;
    result.steps = run->total_steps_;
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
    if (comm != nullptr) {
      std::vector<torch::Tensor> points = {
          torch::tensor(static_cast<int64_t>(result.curve.size()), torch::kInt64)};
      RETURN_IF_ERROR(comm->Broadcast(points));
      LoopState loop;
      loop.curve = result.curve;
      RETURN_IF_ERROR(BroadcastTrainingState(*comm, *result.sae, nullptr, false, &loop));
    }
    return run;
  }

  ASSIGN_OR_RETURN(run->sae_, CreateSae(config, d_in, seed));
  Sae& sae = *run->sae_;
  run->adam_ = std::make_unique<torch::optim::Adam>(
      sae.parameters(), torch::optim::AdamOptions(trainer.lr())
                            .betas(std::make_tuple(trainer.adam_beta1(), trainer.adam_beta2()))
                            .eps(trainer.adam_eps()));
  run->loop_.tokens_since_fired = torch::zeros({sae.n_latents()}, torch::kInt64);

  run->state_path_ = dir.empty() ? "" : dir + kStateFile;
  if (!run->state_path_.empty()) {
    ASSIGN_OR_RETURN(result.resumed,
                     LoadState(run->state_path_, sae, *run->adam_, &run->loop_,
                               run->config_sha256_, run->total_steps_, log_every));
  }
  // [resumed, curve points] of rank 0, which every rank then starts from.
  std::vector<torch::Tensor> resume = {
      torch::tensor({static_cast<int64_t>(result.resumed),
                     static_cast<int64_t>(run->loop_.curve.size())},
                    torch::kInt64)};
  if (comm != nullptr) {
    RETURN_IF_ERROR(comm->Broadcast(resume));
    result.resumed = resume[0][0].item<int64_t>() == 1;
    run->loop_.curve.resize(resume[0][1].item<int64_t>());
  }
  if (!result.resumed) {
    ASSIGN_OR_RETURN(torch::Tensor sample, source.InitSample(trainer.init_sample_tokens()));
    RETURN_IF_ERROR(CheckBatch(sample, trainer.init_sample_tokens(), d_in + d_target, -1));
    const torch::Tensor inputs = sample.narrow(1, 0, d_in);
    if (config.normalize_input()) sae.set_input_scale(EstimateInputScale(inputs));
    // What the SAE reconstructs: the target half of a transcoder's rows.
    sae.InitFromSample((d_target > 0 ? sample.narrow(1, d_in, d_target) : inputs) *
                       sae.input_scale());
  }
  if (comm != nullptr) {
    // Rank 0's weights (initialised from the same sample and seed, but a
    // host with another BLAS could round differently), and the optimiser
    // and loop state it resumed from.
    std::vector<torch::Tensor> next = {torch::tensor(run->loop_.next_step, torch::kInt64)};
    RETURN_IF_ERROR(comm->Broadcast(next));
    run->loop_.next_step = next[0].item<int64_t>();
    RETURN_IF_ERROR(
        BroadcastTrainingState(*comm, sae, run->adam_.get(), result.resumed, &run->loop_));
  }
  if (!dir.empty()) RETURN_IF_ERROR(MakeDirs(dir));

  run->params_ = sae.parameters();
  run->progress_ = std::make_unique<Progress>(options.label.empty() ? config.name() : options.label,
                                              run->total_steps_ * trainer.batch_size(), "tokens");
  // stop_after_steps stops the loop as a kill would: before a step it
  // still has to run (a run whose last step is done finishes normally).
  run->stopped_ = options.stop_after_steps == 0 && run->loop_.next_step < run->total_steps_;
  return run;
}

absl::Status TrainingRun::Step(const torch::Tensor& batch) {
  const TrainerConfig& trainer = this->trainer();
  const SaeConfig& config = result_.config;
  Sae& sae = *sae_;
  const int64_t step = loop_.next_step, batch_size = trainer.batch_size();
  const int64_t log_every = std::max<int64_t>(1, trainer.log_every_steps());
  RETURN_IF_ERROR(CheckBatch(batch, batch_size, d_in_ + d_target_, step));
  TrainStepInfo info;
  info.step = step;
  info.total_steps = total_steps_;
  info.dead_mask = loop_.tokens_since_fired >= trainer.dead_after_tokens();
  // Data-parallel: this rank's equal shard of the batch's rows.
  const torch::Tensor rows =
      comm_ == nullptr ? batch
                       : batch.narrow(0, comm_->rank() * (batch_size / comm_->world_size()),
                                      batch_size / comm_->world_size());
  if (comm_ != nullptr) {
    info.shard_mean = [this](double value) {
      if (!comm_error_.ok()) return std::numeric_limits<double>::quiet_NaN();
      absl::StatusOr<double> sum = comm_->AllReduceSum(value);
      if (!sum.ok()) {
        comm_error_ = sum.status();
        return std::numeric_limits<double>::quiet_NaN();
      }
      return *sum / comm_->world_size();
    };
    info.shard_sum = [this](const torch::Tensor& value) {
      std::vector<torch::Tensor> sum = {value.detach().contiguous().clone()};
      if (comm_error_.ok()) comm_error_ = comm_->AllReduceSum(sum);
      if (!comm_error_.ok()) sum[0].fill_(std::numeric_limits<double>::quiet_NaN());
      return sum[0];
    };
    info.shard_gather.rank = comm_->rank();
    info.shard_gather.count = comm_->world_size();
    info.shard_gather.gather = [this](const torch::Tensor& value) {
      if (comm_error_.ok()) {
        absl::StatusOr<torch::Tensor> all = comm_->AllGatherRagged(value.detach().contiguous());
        if (all.ok()) return *all;
        comm_error_ = all.status();
      }
      // After a failed collective: a rank's own part, NaN-filled, so the
      // step runs on to the check below without another collective.
      return torch::full_like(value, std::numeric_limits<double>::quiet_NaN());
    };
  }
  if (d_target_ > 0) info.target = rows.narrow(1, d_in_, d_target_) * sae.input_scale();

  // The architecture's sparse step writes the gradients itself; otherwise
  // autograd differentiates TrainForward's loss (below).
  const torch::Tensor x = (d_target_ > 0 ? rows.narrow(1, 0, d_in_) : rows) * sae.input_scale();
  TrainOutput out;
  const bool gradients_written = sae.TrainStepGradients(x, info, &out);
  if (!gradients_written) out = sae.TrainForward(x, info);
  double loss = out.loss.item<double>();
  // [n] bool: the latents active on some row of the batch (every rank's
  // rows, after the all-reduce).
  torch::Tensor fired = out.fired.defined() ? out.fired : (out.f != 0).any(0);
  if (comm_ != nullptr) {
    RETURN_IF_ERROR(comm_error_);
    // Every rank reaches the all-reduce, whatever its shard's loss; the
    // check below then stops all of them on the mean.
    if (!gradients_written) {
      adam_->zero_grad();
      out.loss.backward();
    }
    RETURN_IF_ERROR(AllReduceStep(&loss, &fired));
  }
  // A non-finite loss (finite but huge activations, a too large learning
  // rate) would poison every weight: stop before the update; the last
  // checkpoint on disk stays as it was.
  if (!std::isfinite(loss)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "SAE '", config.name(), "': the training loss is ", loss, " at step ", step, " of ",
        total_steps_, " (batch max |x| ", batch.abs().max().item<float>(), ", lr ",
        LearningRateAt(trainer, step, total_steps_),
        "); nothing after the last checkpoint was written"));
  }
  if (!gradients_written && comm_ == nullptr) {
    adam_->zero_grad();
    out.loss.backward();
  }
  sae.BeforeOptimizerStep();
  if (trainer.grad_clip_norm() > 0) ClipGradientNorm(params_, trainer.grad_clip_norm());
  for (auto& group : adam_->param_groups()) {
    static_cast<torch::optim::AdamOptions&>(group.options())
        .lr(LearningRateAt(trainer, step, total_steps_));
  }
  FusedAdamStep(*adam_);  // Adam::step's update without its per-step temporaries
  sae.AfterOptimizerStep();

  {
    torch::NoGradGuard no_grad;
    loop_.tokens_since_fired.add_(batch_size).masked_fill_(fired, 0);
  }
  loop_.next_step = step + 1;
  ++steps_this_call_;
  result_.last_terms = out.terms;
  result_.last_terms["loss"] = loss;
  if (step % log_every == 0 || step + 1 == total_steps_) {
    loop_.curve.push_back(
        {(step + 1) * batch_size, loss,
         (loop_.tokens_since_fired >= trainer.dead_after_tokens()).to(torch::kFloat64).mean()
             .item<double>()});
    progress_->Update((step + 1) * batch_size,
                      absl::StrFormat("loss %.5g", result_.last_terms["loss"]));
  }
  // (state_path_ is empty on every rank but 0.)
  if (!state_path_.empty() && trainer.checkpoint_every_steps() > 0 &&
      loop_.next_step % trainer.checkpoint_every_steps() == 0 && loop_.next_step < total_steps_) {
    RETURN_IF_ERROR(CheckWeightsFinite(sae, config.name(), step));
    RETURN_IF_ERROR(SaveState(state_path_, sae, *adam_, loop_, config_sha256_));
  }
  // As if killed here: nothing more is written.
  if (options_.stop_after_steps >= 0 && steps_this_call_ == options_.stop_after_steps &&
      loop_.next_step < total_steps_) {
    stopped_ = true;
  }
  return absl::OkStatus();
}

absl::Status TrainingRun::AllReduceStep(double* loss, torch::Tensor* fired) {
  torch::NoGradGuard no_grad;
  const int world = comm_->world_size();
  int64_t total = 0;
  for (const torch::Tensor& p : params_) total += p.numel();
  if (!bucket_.defined() || bucket_.numel() != total) bucket_ = torch::empty({total});
  int64_t offset = 0;
  for (const torch::Tensor& p : params_) {
    torch::Tensor slice = bucket_.narrow(0, offset, p.numel());
    if (p.grad().defined()) {
      slice.copy_(p.grad().reshape({-1}));
    } else {
      slice.zero_();
    }
    offset += p.numel();
  }
  // [loss, fired_0 .. fired_{n-1}] in float64, so the loss keeps its digits.
  torch::Tensor stats =
      torch::cat({torch::tensor({*loss}, torch::kFloat64), fired->to(torch::kFloat64)});
  std::vector<torch::Tensor> tensors = {bucket_, stats};
  RETURN_IF_ERROR(comm_->AllReduceSum(tensors));
  // The ranks' mean gradient. Gloo's reduction gives every rank the same
  // sum, so every rank applies the same update.
  bucket_.div_(world);
  offset = 0;
  for (torch::Tensor& p : params_) {
    if (!p.grad().defined()) p.mutable_grad() = torch::zeros_like(p);
    p.mutable_grad().view({-1}).copy_(bucket_.narrow(0, offset, p.numel()));
    offset += p.numel();
  }
  *loss = stats[0].item<double>() / world;
  *fired = stats.narrow(0, 1, stats.numel() - 1) > 0;
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> TrainingRun::Finish(ActivationSource& source) {
  TrainResult result = std::move(result_);
  if (result.loaded_from_disk) return result;
  if (stopped_) {
    result.sae = std::move(sae_);
    result.steps = loop_.next_step;
    result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start_);
    return result;
  }
  const SaeConfig& config = result.config;
  const int64_t batch_size = config.trainer().batch_size();
  Sae& sae = *sae_;
  progress_->Finish(absl::StrFormat("loss %.5g", result.last_terms["loss"]));
  if (const int64_t calibration = sae.CalibrationBatches(); calibration > 0) {
    // The last batches again, as the loop read them (TrainBatch is a pure
    // function of the step), so a resumed run calibrates on the same ones.
    std::vector<torch::Tensor> batches;
    for (int64_t step = std::max<int64_t>(0, total_steps_ - calibration); step < total_steps_;
         ++step) {
      ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(step, batch_size));
      batches.push_back(batch.narrow(1, 0, d_in_) * sae.input_scale());
    }
    torch::NoGradGuard no_grad;
    sae.Calibrate(batches);
  }
  RETURN_IF_ERROR(CheckWeightsFinite(sae, config.name(), total_steps_ - 1));
  if (writer() && !options_.dir.empty()) {
    // The curve first: a kill between the two leaves a train state to resume.
    RETURN_IF_ERROR(
        WriteSafetensors(options_.dir + kCurveFile, {{"curve", CurveTensor(loop_.curve)}}));
    RETURN_IF_ERROR(SaveSae(options_.dir, sae, config));
    // The final SAE supersedes the training state.
    RemoveTrainState(state_path_);
  }
  result.curve = std::move(loop_.curve);
  result.sae = std::move(sae_);
  result.steps = total_steps_;
  result.finished = true;
  result.wall_seconds = absl::ToDoubleSeconds(absl::Now() - start_);
  return result;
}

}  // namespace

absl::StatusOr<TrainResult> TrainSae(SaeConfig config, ActivationSource& source, uint64_t seed,
                                     const TrainOptions& options) {
  // Training needs autograd even when the caller holds a NoGradGuard (as
  // code that has just run a model for activations often does).
  torch::AutoGradMode grad_mode(true);
  ASSIGN_OR_RETURN(std::unique_ptr<TrainingRun> run,
                   TrainingRun::Start(std::move(config), source, seed, options));
  while (run->training()) {
    ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(run->next_step(), run->batch_size()));
    RETURN_IF_ERROR(run->Step(batch));
  }
  return run->Finish(source);
}

absl::StatusOr<std::vector<TrainResult>> TrainSaes(const std::vector<TrainJob>& jobs,
                                                   ActivationSource& source) {
  torch::AutoGradMode grad_mode(true);
  if (jobs.empty()) return absl::InvalidArgumentError("TrainSaes: no SAEs to train");
  std::vector<std::unique_ptr<TrainingRun>> runs;
  for (const TrainJob& job : jobs) {
    ASSIGN_OR_RETURN(std::unique_ptr<TrainingRun> run,
                     TrainingRun::Start(job.config, source, job.seed, job.options));
    runs.push_back(std::move(run));
  }
  // One batch serves every run still training, so they must agree on its size.
  const TrainingRun* first = nullptr;
  for (const auto& run : runs) {
    if (!run->training()) continue;
    if (first == nullptr) first = run.get();
    if (run->batch_size() != first->batch_size()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "TrainSaes: SAE '", run->name(), "' has trainer.batch_size ", run->batch_size(),
          " but '", first->name(), "' has ", first->batch_size(),
          "; SAEs trained from one stream share each batch, so their batch sizes must match"));
    }
  }
  // Runs resumed at different steps: the earliest step first, each batch
  // read once for all the runs at that step.
  while (true) {
    int64_t step = -1;
    for (const auto& run : runs) {
      if (run->training() && (step < 0 || run->next_step() < step)) step = run->next_step();
    }
    if (step < 0) break;
    ASSIGN_OR_RETURN(torch::Tensor batch, source.TrainBatch(step, first->batch_size()));
    for (const auto& run : runs) {
      if (run->training() && run->next_step() == step) RETURN_IF_ERROR(run->Step(batch));
    }
  }
  std::vector<TrainResult> results;
  for (const auto& run : runs) {
    ASSIGN_OR_RETURN(TrainResult result, run->Finish(source));
    results.push_back(std::move(result));
  }
  return results;
}

}  // namespace saelab
