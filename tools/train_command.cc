// saelab train: an SAE on activations from a file.
#include <torch/types.h>

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "data/activations/activation_files.h"
#include "harness/distributed.h"
#include "harness/file_io.h"
#include "harness/provenance.h"
#include "harness/result.pb.h"
#include "harness/seed.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "harness/train_state.h"
#include "sae/checkpoint.h"
#include "sae/factory.h"
#include "sae/interchange/saelens.h"
#include "sae/latent_sharding.h"
#include "sae/sae_config.pb.h"
#include "sae/trainer.h"
#include "tools/command.h"
#include "tools/command_util.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab train --activations=FILE --out=DIR [--config=SAE.textproto] [flags]

Trains one SAE on activations from a .npy file ([..., d] float32/float16,
memory-mapped), a tensor of a .safetensors file (--tensor), or an activation
store directory (saelab harvest --format=store). The last rows (--eval_rows,
default the last 10%, at most 65536) are held out and the SAE's reconstruction
metrics on them are printed and recorded. The SAE is given by a SaeConfig
textproto (--config; sae/sae_config.proto documents every field) or by the
flags below for the common fields; flags given override the file.

--out receives:
  sae.safetensors, sae_config.textproto   the SAE (saelab evaluate/export read it)
  saelens/                                 the same SAE in SAELens's layout
  result.pb, result.textproto              metrics and provenance (saelab inspect)
  train_state.safetensors                  while training: rerun the same command
                                           after a crash to resume bit-identically

Example:
  saelab train --activations=acts.npy --architecture=topk --k=32 \
      --n_latents=16384 --tokens=50000000 --out=runs/topk_k32
  # Python: sae = sae_lens.SAE.load_from_disk("runs/topk_k32/saelens"))";

absl::StatusOr<SaeConfig> BuildConfig(const CommandLine& flags) {
  SaeConfig config;
  if (!flags.String("config").empty()) {
    RETURN_IF_ERROR(ParseTextProtoFile(flags.String("config"), &config));
  }
  if (flags.Given("architecture") ||
      config.architecture_case() == SaeConfig::ARCHITECTURE_NOT_SET) {
    const SaeArchitecture* arch = FindArchitecture(flags.String("architecture"));
    if (arch == nullptr) {
      std::string names;
      for (const SaeArchitecture* a : SaeArchitectures()) absl::StrAppend(&names, " ", a->name);
      return UsageError(
          absl::StrCat("--architecture=", flags.String("architecture"), " is not one of:", names));
    }
    // The oneof field of that name, set with its defaults unless already set.
    if (FindArchitecture(config) != arch) config.clear_architecture();
    config.GetReflection()->MutableMessage(&config,
                                           config.GetDescriptor()->FindFieldByName(arch->name));
  }
  if (flags.Given("k") && flags.Given("sparsity_coefficient")) {
    return UsageError(
        "give --k (TopK, BatchTopK) or --sparsity_coefficient (the others), not both");
  }
  if (flags.Given("k")) {
    if (!SparsityKnobIsK(config)) {
      return UsageError(absl::StrCat("--k: a ", ArchitectureName(config),
                                     " SAE has no k; its sparsity is --sparsity_coefficient"));
    }
    if (flags.Int("k") < 1) return UsageError("--k must be at least 1");
    SetSparsityKnob(&config, static_cast<double>(flags.Int("k")));
  }
  if (flags.Given("sparsity_coefficient")) {
    if (SparsityKnobIsK(config)) {
      return UsageError(absl::StrCat("--sparsity_coefficient: a ", ArchitectureName(config),
                                     " SAE's sparsity is --k"));
    }
    SetSparsityKnob(&config, flags.Double("sparsity_coefficient"));
  }
  if (flags.Given("name") || config.name().empty()) {
    config.set_name(flags.Given("name") ? flags.String("name") : ArchitectureName(config));
  }
  if (flags.Given("n_latents")) config.set_n_latents(flags.Int("n_latents"));
  TrainerConfig* trainer = config.mutable_trainer();
  if (flags.Given("tokens")) trainer->set_total_tokens(flags.Int("tokens"));
  if (flags.Given("batch_size")) trainer->set_batch_size(flags.Int("batch_size"));
  if (flags.Given("lr")) trainer->set_lr(flags.Double("lr"));
  if (!trainer->has_checkpoint_every_steps() || flags.Given("checkpoint_every_steps")) {
    trainer->set_checkpoint_every_steps(flags.Int("checkpoint_every_steps"));
  }
  return config;
}

absl::Status Run(const CommandLine& flags, const Invocation& invocation) {
  RETURN_IF_ERROR(flags.Require("activations"));
  RETURN_IF_ERROR(flags.Require("out"));
  ASSIGN_OR_RETURN(SaeConfig config, BuildConfig(flags));
  ASSIGN_OR_RETURN(ActivationFiles acts,
                   ActivationFiles::Open(flags.String("activations"), flags.String("tensor")));
  std::fprintf(stderr, "activations: %s\n", acts.Describe().c_str());

  std::string eval_slice = flags.String("eval_rows");
  if (eval_slice.empty()) {
    eval_slice =
        absl::StrCat("-", std::max<int64_t>(1, std::min<int64_t>(acts.rows() / 10, 65536)), ":");
  }
  ASSIGN_OR_RETURN(RowRange eval_range, acts.Range(eval_slice));
  RowRange train_range{0, eval_range.begin};
  if (flags.Given("train_rows")) {
    ASSIGN_OR_RETURN(train_range, acts.Range(flags.String("train_rows")));
  } else if (train_range.size() <= 0) {
    return UsageError(absl::StrCat("--eval_rows=", eval_slice,
                                   " leaves no row before it to train "
                                   "on; give --train_rows"));
  }
  if (train_range.begin < eval_range.end && eval_range.begin < train_range.end) {
    std::fprintf(stderr,
                 "warning: training rows [%lld, %lld) overlap the held-out rows [%lld, %lld)\n",
                 static_cast<long long>(train_range.begin), static_cast<long long>(train_range.end),
                 static_cast<long long>(eval_range.begin), static_cast<long long>(eval_range.end));
  }
  RETURN_IF_ERROR(ResolveSaeConfig(acts.d(), &config));
  // Every held-out row is checked finite before anything is written.
  ASSIGN_OR_RETURN(torch::Tensor eval_x, acts.Rows(eval_range));
  ASSIGN_OR_RETURN(std::string acts_sha256, acts.Sha256());

  const std::string out = flags.String("out");
  if (HasSavedSae(out)) {
    SaeConfig saved;
    RETURN_IF_ERROR(ParseTextProtoFile(out + "/sae_config.textproto", &saved));
    if (ProtoSha256(saved) != ProtoSha256(config)) {
      return absl::FailedPreconditionError(absl::StrCat(
          out,
          " already holds an SAE trained with another config (its sae_config.textproto); "
          "choose another --out or remove it"));
    }
  }

  const uint64_t seed = flags.Int("seed");
  SeedTree seeds(seed);
  const uint64_t data_seed = seeds.Derive("data/train");
  const uint64_t sae_seed = seeds.Derive(absl::StrCat("sae/", config.name()));
  std::unique_ptr<ActivationSource> source =
      acts.Source(data_seed, train_range.begin, train_range.end);

  ExperimentResult result;
  result.set_name(config.name());
  result.set_experiment("saelab_train");
  *result.mutable_provenance() =
      CollectProvenance(ProtoSha256(config), seed, invocation.argc, invocation.argv);
  RecordInput(absl::StrCat("activations ", acts.path()), acts_sha256, result.mutable_provenance());
  SetRecoverCorruptTrainState(flags.Bool("recover_train_state"));
  TrainOptions options;
  options.dir = out;
  TrainResult trained;
  Communicator* comm = ProcessCommunicator();
  if (flags.Bool("shard_latents") && !HasSavedSae(out)) {
    if (comm == nullptr) {
      return UsageError(
          "--shard_latents splits the latents over workers: give --nproc=N > 1 "
          "(or start the workers with torchrun or Slurm)");
    }
    // Each rank trains its block of latents (resumable from
    // <out>/shard_states); rank 0 assembles and saves the whole SAE.
    PhaseClock clock;
    ASSIGN_OR_RETURN(SavedShardedTraining sharded,
                     TrainLatentShardedTopKAndSave(config, *source, sae_seed, *comm, out));
    if (comm->rank() > 0) return absl::OkStatus();
    trained.sae = std::move(sharded.sae);
    trained.config = sharded.trained.config;
    trained.steps = sharded.trained.steps;
    trained.finished = true;
    trained.wall_seconds = clock.Seconds();
  } else {
    ASSIGN_OR_RETURN(trained, TrainSae(config, *source, sae_seed, options));
  }
  // Data-parallel (--nproc, torchrun, Slurm): rank 0 evaluates, writes and
  // reports; the evaluation has no collectives, so the others stop here.
  if (comm != nullptr && comm->rank() > 0) return absl::OkStatus();
  RecordPhase("train", trained.wall_seconds, result.mutable_provenance());
  RecordSeeds(seeds, result.mutable_provenance());

  PhaseClock eval_clock;
  ASSIGN_OR_RETURN(SaeResult sae_result, EvaluateToResult(*trained.sae, trained.config, eval_x));
  sae_result.set_seed(sae_seed);
  sae_result.set_checkpoint(".");
  sae_result.set_train_tokens(trained.config.trainer().total_tokens() /
                              trained.config.trainer().batch_size() *
                              trained.config.trainer().batch_size());
  sae_result.set_train_wall_seconds(trained.wall_seconds);
  for (const TrainingCurvePoint& point : trained.curve) {
    TrainingCurveSample* sample = sae_result.add_training_curve();
    sample->set_tokens(point.tokens);
    sample->set_loss(point.loss);
    sample->set_dead_fraction(point.dead_fraction);
  }
  RecordPhase("eval", eval_clock.Seconds(), result.mutable_provenance());
  *result.add_saes() = sae_result;
  if (comm != nullptr) result.mutable_provenance()->set_data_parallel_ranks(comm->world_size());

  // A rerun that found the SAE keeps the first run's result (its timings
  // and command line are those of the training).
  if (!trained.loaded_from_disk || !PathExists(out + "/result.pb")) {
    RETURN_IF_ERROR(ExportSaeLens(*trained.sae, trained.config, out + "/saelens"));
    RETURN_IF_ERROR(WriteTextProtoFile(out + "/result.textproto", result));
    RETURN_IF_ERROR(WriteBinaryProtoFile(out + "/result.pb", result));
  }
  std::printf("%s (%s, n_latents %lld) %s; held-out rows [%lld, %lld):\n%s", config.name().c_str(),
              ArchitectureName(trained.config).c_str(),
              static_cast<long long>(trained.config.n_latents()),
              trained.loaded_from_disk ? "was already trained" : "trained",
              static_cast<long long>(eval_range.begin), static_cast<long long>(eval_range.end),
              FormatMetrics(sae_result).c_str());
  std::printf("wrote %s (saelab), %s/saelens (SAELens), %s/result.pb\n", out.c_str(), out.c_str(),
              out.c_str());
  return absl::OkStatus();
}

}  // namespace

Command TrainCommand() {
  return {
      "train",
      "Train an SAE on activations from a .npy, .safetensors or store",
      kUsage,
      {
          {"activations", FlagType::kString, "",
           "Activations: a .npy file, a .safetensors file or an activation store directory."},
          {"tensor", FlagType::kString, "",
           "The tensor of a .safetensors file to read (default: its only tensor)."},
          {"out", FlagType::kString, "", "SAE directory to write (an existing one resumes)."},
          {"config", FlagType::kString, "",
           "SaeConfig textproto; the flags below override its fields."},
          {"architecture", FlagType::kString, "topk",
           "relu_l1, topk, batch_topk, matryoshka_batch_topk, jumprelu or gated."},
          {"name", FlagType::kString, "", "The SAE's name (default: the architecture)."},
          {"n_latents", FlagType::kInt, "", "Dictionary size (default 4096)."},
          {"k", FlagType::kInt, "", "Active latents per token (the TopK family; default 32)."},
          {"sparsity_coefficient", FlagType::kDouble, "",
           "L1 / L0 penalty coefficient (relu_l1, jumprelu, gated)."},
          {"tokens", FlagType::kInt, "", "Training tokens (default 100M; epochs repeat the rows)."},
          {"batch_size", FlagType::kInt, "", "Tokens per step (default 4096)."},
          {"lr", FlagType::kDouble, "", "Adam learning rate (default: the architecture's)."},
          {"checkpoint_every_steps", FlagType::kInt, "1000",
           "Steps between resumable train states (0: none)."},
          {"eval_rows", FlagType::kString, "",
           "Held-out rows as a slice a:b (default: the last 10%, at most 65536)."},
          {"train_rows", FlagType::kString, "",
           "Training rows as a slice (default: every row before the held-out ones)."},
          {"seed", FlagType::kInt, "0", "Root seed (data order and SAE initialisation)."},
          {"shard_latents", FlagType::kBool, "false",
           "With --nproc=N (or torchrun/Slurm workers): split the latents of a TopK SAE over "
           "the workers instead of the batch, each holding 1/N of the weights "
           "(docs/scaling.md); rank 0 assembles the SAE at the end. No train states yet: a "
           "killed run starts over."},
          {"recover_train_state", FlagType::kBool, "false",
           "Set a corrupted train state aside (kept as .corrupt) and resume from the previous "
           "checkpoint, or from the start."},
      },
      &Run,
  };
}

}  // namespace saelab
