#include "data/activations/subject_data.h"

#include <cstdio>
#include <cstdlib>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/activations/harvest.h"
#include "data/activations/hook_rows.h"
#include "data/activations/model_source.h"
#include "data/activations/store_format.h"
#include "data/activations/store_source.h"
#include "data/text/text_dataset.h"
#include "harness/distributed.h"
#include "harness/file_io.h"
#include "harness/log.h"
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
  return absl::NotFoundError(
      absl::StrCat("activations.model_dir '", dir, "': no config.json there or in the runfiles"));
}

ActivationStoreKey::Dtype ToStoreDtype(SubjectActivationsConfig::Dtype dtype) {
  switch (dtype) {
    case SubjectActivationsConfig::FLOAT16:
      return ActivationStoreKey::FLOAT16;
    case SubjectActivationsConfig::BFLOAT16:
      return ActivationStoreKey::BFLOAT16;
    case SubjectActivationsConfig::FLOAT32:
      break;
  }
  return ActivationStoreKey::FLOAT32;
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

absl::StatusOr<SubjectData> OpenSubjectData(const SubjectActivationsConfig& config,
                                            uint64_t data_seed, Provenance* provenance,
                                            const std::vector<std::string>& harvest_also) {
  PhaseClock clock;
  ASSIGN_OR_RETURN(std::string model_dir, ResolveModelDir(config.model_dir()));
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(model_dir));
  ASSIGN_OR_RETURN(std::string model_sha256, Sha256File(model_dir + "/model.safetensors"));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(model_dir));
  SubjectData data{model_dir, model_sha256, std::move(model), std::move(tokenizer)};
  RecordInput(absl::StrCat("model ", config.model_dir()), model_sha256, provenance);
  RecordInput("tokenizer", data.tokenizer.Sha256(), provenance);
  const int64_t n_positions = data.model.config().n_positions;
  if (config.context_length() < 2 || config.context_length() > n_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("activations.context_length ", config.context_length(),
                     " must be in [2, n_positions = ", n_positions, "]"));
  }
  data.hook_name = config.hook_name();
  {
    absl::StatusOr<HookLocation> hook = ParseHookName(data.hook_name, data.model.config().n_layer);
    if (!hook.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("activations.hook_name: ", hook.status().message()));
    }
    data.hook_location = *hook;
  }
  if (config.has_target_hook_name()) {
    data.target_hook_name = config.target_hook_name();
    absl::StatusOr<HookLocation> target =
        ParseHookName(data.target_hook_name, data.model.config().n_layer);
    if (!target.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("activations.target_hook_name: ", target.status().message()));
    }
    if (target->index() <= data.hook_location.index()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "activations.target_hook_name ", data.target_hook_name,
          " must come after hook_name ", data.hook_name, " in the forward pass"));
    }
    data.target_location = *target;
  }
  std::vector<HookLocation> locations = {data.hook_location};
  if (data.target_location) locations.push_back(*data.target_location);

  ASSIGN_OR_RETURN(TextDataset text, LoadTextDataset(config.data()));
  const std::string cache = SaelabCacheDir(config.cache_dir());
  const std::string shard_prefix = absl::StrCat(cache, "/shards/", text.sha256.substr(0, 16), "-",
                                                data.tokenizer.Sha256().substr(0, 16), "-");
  // Data-parallel workers (harness/distributed.h) share the cache: rank 0
  // tokenises, the others then read its shards.
  absl::StatusOr<PackedSplits> splits = absl::UnknownError("not packed");
  RETURN_IF_ERROR(RankZeroFirst(ProcessCommunicator(), [&] {
    splits = PackTrainAndVal(text, data.tokenizer, shard_prefix, config.context_length(),
                             config.train_contexts(), config.eval_contexts(), provenance);
    return absl::OkStatus();
  }));
  if (!splits.ok()) {
    return absl::Status(splits.status().code(),
                        absl::StrCat(model_dir, ": ", splits.status().message()));
  }
  data.train_contexts = splits->train_contexts;
  data.val_contexts = splits->val_contexts;
  RecordPhase("load_model_and_text", clock.Seconds(), provenance);

  clock = PhaseClock();
  ASSIGN_OR_RETURN(data.eval_rows,
                   HookActivationRows(data.model, data.val_contexts, locations, config.drop_bos()));
  RecordPhase("eval_activations", clock.Seconds(), provenance);

  // The training stream: a store harvested once (and reused by every later
  // run with the same key), or the model itself.
  ActivationDataResult& summary = data.summary;
  if (config.use_store()) {
    auto key_for = [&](const std::string& hook_name) {
      ActivationStoreKey key;
      key.set_model_sha256(model_sha256);
      key.set_hook_name(hook_name);
      key.set_target_hook_name(data.target_hook_name);
      key.set_shard_sha256(splits->train_shard.sha256());
      key.set_context_begin(0);
      key.set_context_end(data.train_contexts.size(0));
      key.set_context_length(config.context_length());
      key.set_dtype(ToStoreDtype(config.dtype()));
      key.set_drop_bos(config.drop_bos());
      return key;
    };
    auto dir_for = [&](const ActivationStoreKey& key) {
      return absl::StrCat(cache, "/activations/", StoreKeySha256(key).substr(0, 24));
    };
    // This hook's store first, then those harvested in the same pass.
    std::vector<ActivationStoreKey> keys = {key_for(data.hook_name)};
    for (const std::string& hook : harvest_also) {
      if (hook != data.hook_name) keys.push_back(key_for(hook));
    }
    std::vector<std::string> dirs;
    for (const ActivationStoreKey& key : keys) dirs.push_back(dir_for(key));
    const std::string key_sha256 = StoreKeySha256(keys[0]);
    const std::string& store_dir = dirs[0];
    HarvestOptions harvest;
    harvest.contexts_per_chunk = config.contexts_per_chunk();
    if (keys.size() == 1) harvest.label = data.hook_name;
    clock = PhaseClock();
    // Data-parallel workers harvest the store together: each its share of
    // the chunks, then rank 0 verifies them and writes the manifest, then
    // the others open the complete store.
    Communicator* comm = ProcessCommunicator();
    if (comm != nullptr && comm->world_size() > 1) {
      HarvestOptions share = harvest;
      share.shard_rank = comm->rank();
      share.shard_count = comm->world_size();
      RETURN_IF_ERROR(
          HarvestActivationsAtHooks(data.model, data.train_contexts, keys, dirs, share).status());
      RETURN_IF_ERROR(comm->Barrier());
    }
    std::vector<ActivationStore> stores;
    RETURN_IF_ERROR(RankZeroFirst(comm, [&]() -> absl::Status {
      ASSIGN_OR_RETURN(stores,
                       HarvestActivationsAtHooks(data.model, data.train_contexts, keys, dirs, harvest));
      return absl::OkStatus();
    }));
    ActivationStore store = std::move(stores.front());
    const double harvest_seconds = clock.Seconds();
    RecordPhase("harvest_or_open_store", harvest_seconds, provenance);
    RecordInput("activation_store", key_sha256, provenance);
    data.store = std::make_unique<ActivationStore>(std::move(store));
    summary.set_store_dir(store_dir);
    summary.set_harvest_seconds(harvest_seconds);
    summary.set_train_rows(data.store->num_rows());
    summary.set_mean_norm(data.store->mean_norm());
    data.source = std::make_unique<StoreActivationSource>(*data.store, data_seed,
                                                          config.shuffle_buffer_chunks());
  } else {
    auto streaming = std::make_unique<ModelActivationSource>(
        data.model, data.train_contexts, data.hook_location, config.drop_bos(), data_seed,
        /*batch_contexts=*/32, data.target_location);
    summary.set_train_rows(streaming->epoch_rows());
    data.source = std::move(streaming);
  }
  summary.set_model_sha256(model_sha256);
  summary.set_hook_name(data.hook_name);
  if (data.target_location) summary.set_target_hook_name(data.target_hook_name);
  summary.set_d_in(data.model.config().n_embd);
  summary.set_context_length(config.context_length());
  summary.set_eval_rows(data.eval_rows.size(0));
  Log("activations: %s, %lld train rows, %lld eval rows, d %lld", data.hook_name.c_str(),
      static_cast<long long>(summary.train_rows()), static_cast<long long>(summary.eval_rows()),
      static_cast<long long>(summary.d_in()));
  return data;
}

}  // namespace saelab
