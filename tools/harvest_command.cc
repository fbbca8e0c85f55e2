// saelab harvest: a model's activations at one or more hooks, to files.
#include <torch/types.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "data/activations/activation_store.pb.h"
#include "data/activations/harvest.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/text_dataset.h"
#include "data/text/token_shard.h"
#include "harness/file_io.h"
#include "harness/npy.h"
#include "harness/progress.h"
#include "harness/safetensors.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "tools/command.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab harvest --model_dir=DIR (--text=FILES | --corpus=NAMES) --hooks=HOOKS --out=DIR

Runs the GPT-2 model in DIR over text and keeps the activations at each hook
(TransformerLens names: blocks.L.hook_resid_pre, hook_attn_out,
hook_resid_mid, hook_mlp_in (after LayerNorm 2), hook_mlp_out,
hook_resid_post). The text is tokenized with
the model's tokenizer, each file (or corpus document) followed by
<|endoftext|>, and packed into contexts of --context_length tokens that each
start with <|endoftext|> (as SAELens packs them); that first position is left
out (--drop_bos). Rows are context by context, positions in order.

--format decides what --out receives:
  npy          <hook>.npy per hook, float32 [rows, d]; all hooks in one pass
  safetensors  activations.safetensors, one tensor per hook; one pass
  store        <hook>/ per hook: saelab's chunked, checksummed activation
               store, all hooks in one pass, resumed chunk by chunk after a kill
plus tokens.npy (int32 [contexts, context_length]: the token of every row)
and tokens.tokshard (the tokenized text, reused by a rerun). npy and
safetensors files are written whole at the end (atomically); a rerun finds
them and stops. saelab train reads all three formats.

Example:
  saelab harvest --model_dir=/models/gpt2 --text=a.txt,b.txt \
      --hooks=blocks.6.hook_resid_post,blocks.6.hook_mlp_out --out=acts
  saelab train --activations=acts/blocks.6.hook_resid_post.npy --out=sae6)";

absl::StatusOr<torch::Tensor> PackText(const CommandLine& flags, const BpeTokenizer& tokenizer,
                                       const std::string& out, std::string* shard_sha256) {
  std::vector<std::string> texts;
  std::string source_hashes;
  if (!flags.String("text").empty()) {
    for (absl::string_view path : absl::StrSplit(flags.String("text"), ',', absl::SkipEmpty())) {
      ASSIGN_OR_RETURN(std::string text, ReadFile(std::string(path)));
      absl::StrAppend(&source_hashes, Sha256Hex(text), "\n");
      texts.push_back(std::move(text));
    }
  } else {
    CorpusSelection selection;
    for (absl::string_view name : absl::StrSplit(flags.String("corpus"), ',', absl::SkipEmpty())) {
      selection.add_corpora(std::string(name));
    }
    ASSIGN_OR_RETURN(TextDataset dataset, LoadTextDataset(selection));
    texts = dataset.Texts(Split::kTrain);
    source_hashes = dataset.sha256;
  }
  const TokenShardKey key{tokenizer.Sha256(), Sha256Hex(source_hashes), "harvest"};
  ASSIGN_OR_RETURN(TokenShard shard,
                   OpenOrBuildTokenShard(
                       out + "/tokens.tokshard", key, tokenizer.vocab_size(),
                       [&]() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
                         std::vector<std::vector<int32_t>> docs;
                         for (const std::string& text : texts) docs.push_back(tokenizer.Encode(text));
                         return docs;
                       }));
  *shard_sha256 = shard.sha256();
  const int32_t eos = *tokenizer.eos_id();
  ASSIGN_OR_RETURN(torch::Tensor contexts, PackContexts(shard, flags.Int("context_length"), eos, eos,
                                                        flags.Int("max_contexts")));
  if (contexts.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the text is ", shard.num_tokens(), " tokens, less than one context of ",
        flags.Int("context_length"), "; lower --context_length or give more text"));
  }
  return contexts;
}

absl::Status Run(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("model_dir"));
  RETURN_IF_ERROR(flags.Require("hooks"));
  RETURN_IF_ERROR(flags.Require("out"));
  if (flags.String("text").empty() == flags.String("corpus").empty()) {
    return UsageError("give the text as --text=FILES or --corpus=NAMES (one of the two)");
  }
  const std::string format = flags.String("format");
  if (format != "npy" && format != "safetensors" && format != "store") {
    return UsageError(absl::StrCat("--format=", format, " is not npy, safetensors or store"));
  }
  if (flags.Int("batch_contexts") < 1) return UsageError("--batch_contexts must be at least 1");
  const std::string dir = flags.String("model_dir"), out = flags.String("out");
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(dir));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(dir));
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(dir, ": the tokenizer has no <|endoftext|>"));
  }
  std::vector<std::string> hooks = absl::StrSplit(flags.String("hooks"), ',', absl::SkipEmpty());
  for (const std::string& hook : hooks) {
    RETURN_IF_ERROR(ParseHookName(hook, model.config().n_layer).status());
  }
  ASSIGN_OR_RETURN(std::string model_sha256, Sha256File(dir + "/model.safetensors"));
  RETURN_IF_ERROR(MakeDirs(out));
  std::string shard_sha256;
  ASSIGN_OR_RETURN(torch::Tensor contexts, PackText(flags, tokenizer, out, &shard_sha256));
  const int64_t n = contexts.size(0), length = contexts.size(1);
  const bool drop_bos = flags.Bool("drop_bos");
  const int64_t per_context = length - (drop_bos ? 1 : 0);
  const int64_t d = model.config().n_embd;
  ASSIGN_OR_RETURN(std::string tokens_npy, SerializeNpy(contexts.to(torch::kInt).contiguous()));
  RETURN_IF_ERROR(AtomicWriteFile(out + "/tokens.npy", tokens_npy));
  std::fprintf(stderr, "%lld contexts of %lld tokens: %lld rows per hook, d %lld\n",
               static_cast<long long>(n), static_cast<long long>(length),
               static_cast<long long>(n * per_context), static_cast<long long>(d));

  if (format == "store") {
    // Every hook's store from one forward pass per chunk.
    std::vector<ActivationStoreKey> keys;
    std::vector<std::string> dirs;
    for (const std::string& hook : hooks) {
      ActivationStoreKey key;
      key.set_model_sha256(model_sha256);
      key.set_hook_name(hook);
      key.set_shard_sha256(shard_sha256);
      key.set_context_begin(0);
      key.set_context_end(n);
      key.set_context_length(length);
      key.set_drop_bos(drop_bos);
      keys.push_back(key);
      dirs.push_back(out + "/" + hook);
    }
    HarvestOptions options;
    options.batch_contexts = flags.Int("batch_contexts");
    options.contexts_per_chunk = flags.Int("contexts_per_chunk");
    RETURN_IF_ERROR(HarvestActivationsAtHooks(model, contexts, keys, dirs, options).status());
    for (const std::string& dir : dirs) std::printf("wrote %s (activation store)\n", dir.c_str());
    return absl::OkStatus();
  }

  // One forward pass per batch for every hook.
  const std::string st_path = out + "/activations.safetensors";
  bool done = format == "safetensors" ? PathExists(st_path) : true;
  if (format == "npy") {
    for (const std::string& hook : hooks) done = done && PathExists(out + "/" + hook + ".npy");
  }
  if (done) {
    std::printf("%s already holds the activations; remove them to harvest again\n", out.c_str());
    return absl::OkStatus();
  }
  TensorMap rows;
  for (const std::string& hook : hooks) rows[hook] = torch::empty({n * per_context, d});
  torch::NoGradGuard no_grad;
  Progress progress("harvest", n * length, "tokens");
  const int64_t batch = flags.Int("batch_contexts");
  for (int64_t begin = 0; begin < n; begin += batch) {
    const int64_t end = std::min(n, begin + batch);
    ASSIGN_OR_RETURN(auto cache, model.RunWithCache(contexts.slice(0, begin, end), hooks));
    for (const std::string& hook : hooks) {
      rows[hook]
          .slice(0, begin * per_context, end * per_context)
          .copy_(cache.at(hook).slice(1, drop_bos ? 1 : 0, length).reshape({-1, d}));
    }
    progress.Update(end * length);
  }
  progress.Finish();
  if (format == "safetensors") {
    RETURN_IF_ERROR(WriteSafetensors(st_path, rows, {{"model_sha256", model_sha256},
                                                     {"tokens_sha256", shard_sha256}}));
    std::printf("wrote %s (%s)\n", st_path.c_str(), absl::StrJoin(hooks, ", ").c_str());
    return absl::OkStatus();
  }
  for (const std::string& hook : hooks) {
    ASSIGN_OR_RETURN(std::string bytes, SerializeNpy(rows[hook]));
    RETURN_IF_ERROR(AtomicWriteFile(out + "/" + hook + ".npy", bytes));
    std::printf("wrote %s/%s.npy\n", out.c_str(), hook.c_str());
  }
  return absl::OkStatus();
}

}  // namespace

Command HarvestCommand() {
  return {
      "harvest",
      "A model's activations at hooks over text, to .npy, .safetensors or a store",
      kUsage,
      {
          {"model_dir", FlagType::kString, "", "GPT-2 directory (Hugging Face layout)."},
          {"text", FlagType::kString, "", "Comma-separated text files (each one document)."},
          {"corpus", FlagType::kString, "",
           "Comma-separated built-in corpora (brown, nlp-corpus, kjv, fortunes); train split."},
          {"hooks", FlagType::kString, "", "Comma-separated hook names."},
          {"out", FlagType::kString, "", "Directory to write."},
          {"format", FlagType::kString, "npy", "npy, safetensors or store."},
          {"context_length", FlagType::kInt, "128", "Tokens per context, <|endoftext|> first."},
          {"max_contexts", FlagType::kInt, "-1", "Contexts at most (-1: all the text gives)."},
          {"batch_contexts", FlagType::kInt, "32", "Contexts per forward pass."},
          {"contexts_per_chunk", FlagType::kInt, "256",
           "Contexts per chunk file of a store (the unit a killed harvest resumes by)."},
          {"drop_bos", FlagType::kBool, "true", "Leave out each context's first position."},
      },
      &Run,
  };
}

}  // namespace saelab
