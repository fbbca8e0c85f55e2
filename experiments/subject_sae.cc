#include "experiments/subject_sae.h"

#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activation_store.h"
#include "data/bpe_tokenizer.h"
#include "data/corpus.h"
#include "data/text_dataset.h"
#include "data/token_shard.h"
#include "eval/gpt2_model.h"
#include "experiments/sae_sweep.h"
#include "harness/file_io.h"
#include "harness/provenance.h"
#include "harness/runfiles.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// A workspace-relative model dir resolves against the working directory
// first (bazel run starts in the runfiles tree), then the runfiles roots.
absl::StatusOr<std::string> ResolveModelDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("activations.model_dir is empty");
  if (dir[0] == '/' || PathExists(dir + "/config.json")) return dir;
  absl::StatusOr<std::string> found = FindRunfile("saelab/" + dir);
  if (found.ok()) return found;
  return absl::NotFoundError(absl::StrCat("activations.model_dir '", dir,
                                          "': no config.json there or in the runfiles"));
}

StoreDtype ToStoreDtype(SubjectActivationsConfig::Dtype dtype) {
  switch (dtype) {
    case SubjectActivationsConfig::FLOAT16:
      return StoreDtype::kFloat16;
    case SubjectActivationsConfig::BFLOAT16:
      return StoreDtype::kBFloat16;
    case SubjectActivationsConfig::FLOAT32:
      break;
  }
  return StoreDtype::kFloat32;
}

// The hook's activations over `contexts` in batches of 32 contexts, as
// store rows (HookRows): [N * rows_per_context, d] float32.
absl::StatusOr<torch::Tensor> HookActivations(const Gpt2Model& model, const torch::Tensor& contexts,
                                              const std::string& hook, bool drop_bos) {
  std::vector<torch::Tensor> rows;
  constexpr int64_t kBatch = 32;
  for (int64_t begin = 0; begin < contexts.size(0); begin += kBatch) {
    torch::Tensor batch = contexts.slice(0, begin, std::min(contexts.size(0), begin + kBatch));
    ASSIGN_OR_RETURN(torch::Tensor batch_rows, HookRows(model, batch, hook, drop_bos));
    rows.push_back(std::move(batch_rows));
  }
  return torch::cat(rows, 0);
}

}  // namespace

std::string SaelabCacheDir(const std::string& configured) {
  if (!configured.empty()) return configured;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return absl::StrCat(xdg, "/saelab");
  }
  const char* home = std::getenv("HOME");
  return absl::StrCat(home != nullptr ? home : "/tmp", "/.cache/saelab");
}

absl::Status RunSubjectSae(const SubjectSaeConfig& config, const std::string& run_dir,
                           SeedTree* seeds, ExperimentResult* result) {
  const SubjectActivationsConfig& acts = config.activations();
  Provenance* provenance = result->mutable_provenance();
  ActivationDataResult* data = result->mutable_activation_data();

  PhaseClock clock;
  ASSIGN_OR_RETURN(std::string model_dir, ResolveModelDir(acts.model_dir()));
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(model_dir));
  ASSIGN_OR_RETURN(std::string model_sha256, Sha256File(model_dir + "/model.safetensors"));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(model_dir));
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat(model_dir, ": the tokenizer has no <|endoftext|> token to use as BOS"));
  }
  const int32_t eot = *tokenizer.eos_id();
  RecordInput(absl::StrCat("model ", acts.model_dir()), model_sha256, provenance);
  RecordInput("tokenizer", tokenizer.Sha256(), provenance);
  if (acts.context_length() < 2 || acts.context_length() > model.config().n_positions) {
    return absl::InvalidArgumentError(absl::StrCat("activations.context_length ", acts.context_length(),
                                                   " must be in [2, n_positions = ",
                                                   model.config().n_positions, "]"));
  }

  ASSIGN_OR_RETURN(TextDataset text, LoadTextDataset(acts.data()));
  for (const Corpus& corpus : text.corpora) {
    RecordInput(absl::StrCat("corpus/", corpus.name, " (", corpus.version, ")"), corpus.sha256,
                provenance);
  }
  const std::string cache = SaelabCacheDir(acts.cache_dir());
  const std::string shard_prefix = absl::StrCat(cache, "/shards/", text.sha256.substr(0, 16), "-",
                                                tokenizer.Sha256().substr(0, 16));
  ASSIGN_OR_RETURN(TokenShard train_shard,
                   TokenizeSplit(text, Split::kTrain, tokenizer, shard_prefix + "-train.tokshard"));
  ASSIGN_OR_RETURN(TokenShard val_shard,
                   TokenizeSplit(text, Split::kVal, tokenizer, shard_prefix + "-val.tokshard"));
  RecordInput("token_shard/train", train_shard.sha256(), provenance);
  RecordInput("token_shard/val", val_shard.sha256(), provenance);
  ASSIGN_OR_RETURN(torch::Tensor train_contexts,
                   PackContexts(train_shard, acts.context_length(), eot, eot, acts.train_contexts()));
  ASSIGN_OR_RETURN(torch::Tensor val_contexts,
                   PackContexts(val_shard, acts.context_length(), eot, eot, acts.eval_contexts()));
  if (train_contexts.size(0) == 0 || val_contexts.size(0) == 0) {
    return absl::InvalidArgumentError("the train or validation split packs into no contexts");
  }
  RecordPhase("load_model_and_text", clock.Seconds(), provenance);

  clock = PhaseClock();
  ASSIGN_OR_RETURN(torch::Tensor eval_set,
                   HookActivations(model, val_contexts, acts.hook(), acts.drop_bos()));
  RecordPhase("eval_activations", clock.Seconds(), provenance);

  // The training stream: a store harvested once (and reused by every later
  // run with the same key), or the model itself.
  std::unique_ptr<ActivationSource> source;
  std::unique_ptr<ActivationStore> store;
  const uint64_t data_seed = seeds->Derive("data/train_stream");
  if (acts.use_store()) {
    ActivationStoreKey key;
    key.model_sha256 = model_sha256;
    key.hook_name = acts.hook();
    key.shard_sha256 = train_shard.sha256();
    key.context_begin = 0;
    key.context_end = train_contexts.size(0);
    key.context_length = acts.context_length();
    key.dtype = ToStoreDtype(acts.dtype());
    key.drop_bos = acts.drop_bos();
    const std::string store_dir = absl::StrCat(cache, "/activations/", key.Sha256().substr(0, 24));
    HarvestOptions harvest;
    harvest.contexts_per_chunk = acts.contexts_per_chunk();
    harvest.label = acts.hook();
    clock = PhaseClock();
    ASSIGN_OR_RETURN(ActivationStore opened, HarvestActivations(model, train_contexts, key, store_dir, harvest));
    const double harvest_seconds = clock.Seconds();
    RecordPhase("harvest_or_open_store", harvest_seconds, provenance);
    store = std::make_unique<ActivationStore>(std::move(opened));
    RecordInput("activation_store", key.Sha256(), provenance);
    data->set_store_dir(store_dir);
    data->set_harvest_seconds(harvest_seconds);
    data->set_train_rows(store->num_rows());
    data->set_mean_norm(store->mean_norm());
    source = std::make_unique<StoreActivationSource>(*store, data_seed, acts.shuffle_buffer_chunks());
  } else {
    auto streaming = std::make_unique<ModelActivationSource>(model, train_contexts, acts.hook(),
                                                             acts.drop_bos(), data_seed);
    data->set_train_rows(streaming->epoch_rows());
    source = std::move(streaming);
  }
  data->set_model_sha256(model_sha256);
  data->set_hook(acts.hook());
  data->set_d_in(model.config().n_embd);
  data->set_context_length(acts.context_length());
  data->set_eval_rows(eval_set.size(0));
  std::fprintf(stderr, "subject_sae: %s, %lld train rows, %lld eval rows, d %lld\n",
               acts.hook().c_str(), static_cast<long long>(data->train_rows()),
               static_cast<long long>(eval_set.size(0)), static_cast<long long>(data->d_in()));

  const double train_rows = static_cast<double>(data->train_rows());
  return RunSweeps(config.sweeps(), *source, eval_set, run_dir, {"nmse", "dead_fraction"}, seeds,
                   result, [&](TrainedSae& trained) {
                     // Training tokens relative to one pass over the training rows.
                     (*trained.result->mutable_metrics())["epochs"] =
                         static_cast<double>(trained.result->train_tokens()) / train_rows;
                   });
}

}  // namespace saelab
