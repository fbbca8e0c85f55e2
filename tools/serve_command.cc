// saelab serve: the interactive viewer (tools/viewer) on 127.0.0.1.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "data/subject_model/gpt2_model.h"
#include "data/subject_model/hooks.h"
#include "data/activations/subject_data.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/text_dataset.h"
#include "data/text/token_shard.h"
#include "harness/status_macros.h"
#include "sae/interchange/sae_directory.h"
#include "tools/command.h"
#include "tools/command_util.h"
#include "tools/viewer/viewer_server.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab serve --model_dir=DIR (--saes=HOOK=DIR,... | --run_dir=RUN) [--port=N]

Starts the interactive viewer on http://127.0.0.1:PORT/, for this machine
only (requests from other addresses are refused): type a prompt and see
each SAE's top latents at every token, the next-token logits and a greedy
continuation; ablate a latent, clamp it to twice its activation, patch it
from a second prompt, or ablate or scale an attention head, and see them
change. Click a next token to see which latents, SAE error terms and
heads drive it (attribution patching), and a latent's "card" for its
dashboard: its top-activating contexts among --dashboard_contexts
validation contexts of the pinned corpora (--dashboard_corpus). The page
keeps its state in the URL, so a view is a link. Runs until interrupted.

--saes lists SAE directories (saelab, SAELens or sparsify layout), each
with the hook it reads. --run_dir takes the SAEs of an experiment run
whose names start with their hook (<RUN>/saes/<hook>.<name>, as runs over
several hooks, such as //experiments:circuits, name them), the first in
name order at each hook.

Example:
  saelab serve --model_dir=data/models/saelab-ref-lm \
      --run_dir=results/runs/circuits/<time>-<hash> --port=8080)";

// (hook, directory) pairs from --saes or --run_dir.
absl::StatusOr<std::vector<std::pair<std::string, std::string>>> SaeSources(
    const CommandLine& flags, int64_t n_layer) {
  std::vector<std::pair<std::string, std::string>> sources;
  if (!flags.String("saes").empty()) {
    for (absl::string_view item : absl::StrSplit(flags.String("saes"), ',', absl::SkipEmpty())) {
      std::vector<std::string> parts = absl::StrSplit(item, absl::MaxSplits('=', 1));
      if (parts.size() != 2 || parts[0].empty() || parts[1].empty()) {
        return UsageError(absl::StrCat("--saes: \"", item, "\" is not HOOK=DIR"));
      }
      RETURN_IF_ERROR(ParseHookName(parts[0], n_layer).status());
      sources.push_back({parts[0], parts[1]});
    }
    return sources;
  }
  const std::string saes_dir = flags.String("run_dir") + "/saes";
  std::error_code error;
  std::vector<std::string> names;
  for (const auto& entry : std::filesystem::directory_iterator(saes_dir, error)) {
    if (entry.is_directory()) names.push_back(entry.path().filename().string());
  }
  if (error) {
    return absl::NotFoundError(absl::StrCat("--run_dir: cannot list ", saes_dir, ": ", error.message()));
  }
  std::sort(names.begin(), names.end());
  absl::flat_hash_set<std::string> taken;
  for (const std::string& name : names) {
    // "<hook>.<sae name>": the hook is everything before the last '.' that
    // parses as a hook name.
    for (size_t dot = name.rfind('.'); dot != std::string::npos && dot > 0;
         dot = name.rfind('.', dot - 1)) {
      const std::string hook = name.substr(0, dot);
      if (!ParseHookName(hook, n_layer).ok()) continue;
      if (taken.insert(hook).second) sources.push_back({hook, saes_dir + "/" + name});
      break;
    }
  }
  // In forward order, as the page lists them.
  std::stable_sort(sources.begin(), sources.end(), [n_layer](const auto& a, const auto& b) {
    return ParseHookName(a.first, n_layer)->index() < ParseHookName(b.first, n_layer)->index();
  });
  if (sources.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "--run_dir: no SAE directory in ", saes_dir, " is named <hook>.<name>; use --saes"));
  }
  return sources;
}

// The first `count` validation contexts of the pinned corpora named in
// `corpora` (empty: all of them), tokenized into the same cache as the
// experiments' (a run over the same corpora reuses its shard).
absl::StatusOr<torch::Tensor> DashboardContexts(const std::string& corpora,
                                                const BpeTokenizer& tokenizer,
                                                int64_t context_length, int64_t count) {
  CorpusSelection selection;
  for (absl::string_view name : absl::StrSplit(corpora, ',', absl::SkipEmpty())) {
    selection.add_corpora(std::string(name));
  }
  ASSIGN_OR_RETURN(TextDataset dataset, LoadTextDataset(selection));
  const std::string shard = absl::StrCat(SaelabCacheDir(""), "/shards/", dataset.sha256.substr(0, 16),
                                         "-", tokenizer.Sha256().substr(0, 16), "-val.tokshard");
  ASSIGN_OR_RETURN(TokenShard tokens, TokenizeSplit(dataset, Split::kVal, tokenizer, shard));
  const int32_t eos = *tokenizer.eos_id();
  ASSIGN_OR_RETURN(torch::Tensor contexts,
                   PackContexts(tokens, context_length, eos, eos, count));
  if (contexts.size(0) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--dashboard_corpus: the validation split is shorter than one context of ", context_length,
        " tokens"));
  }
  return contexts;
}

absl::Status Run(const CommandLine& flags, const Invocation&) {
  RETURN_IF_ERROR(flags.Require("model_dir"));
  if (flags.String("saes").empty() == flags.String("run_dir").empty()) {
    return UsageError("give either --saes or --run_dir");
  }
  const int64_t n_contexts = flags.Int("dashboard_contexts");
  const int64_t context_length = flags.Int("dashboard_context_length");
  if (n_contexts < 0) return UsageError("--dashboard_contexts must be >= 0 (0: no cards)");
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::LoadHfDirectory(flags.String("model_dir")));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromDir(flags.String("model_dir")));
  if (context_length < 2 || context_length > model.config().n_positions) {
    return UsageError(absl::StrCat("--dashboard_context_length must be in [2, ",
                                   model.config().n_positions, "]"));
  }
  ASSIGN_OR_RETURN(auto sources, SaeSources(flags, model.config().n_layer));
  std::vector<ViewerSae> saes;
  for (const auto& [hook, dir] : sources) {
    ASSIGN_OR_RETURN(LoadedSae loaded, LoadSaeDirectory(dir));
    saes.push_back({hook, std::filesystem::path(dir).filename().string(), std::move(loaded.sae)});
    std::fprintf(stderr, "%s: %s\n", hook.c_str(), dir.c_str());
  }
  torch::Tensor contexts;
  if (n_contexts > 0) {
    ASSIGN_OR_RETURN(contexts, DashboardContexts(flags.String("dashboard_corpus"), tokenizer,
                                                 context_length, n_contexts));
    std::fprintf(stderr, "dashboard cards scan %lld contexts of %lld tokens\n",
                 static_cast<long long>(contexts.size(0)), static_cast<long long>(context_length));
  }
  ASSIGN_OR_RETURN(ViewerSession session,
                   ViewerSession::Create(std::move(model), std::move(tokenizer), std::move(saes)));
  if (contexts.defined()) session.SetDashboardContexts(contexts);
  ViewerServer server(std::move(session));
  ASSIGN_OR_RETURN(int port, server.Start(static_cast<int>(flags.Int("port"))));
  std::fprintf(stderr, "saelab viewer: http://127.0.0.1:%d/\n", port);
  server.Wait();
  return absl::OkStatus();
}

}  // namespace

Command ServeCommand() {
  return {
      "serve",
      "The interactive viewer: latents, logits and edits in the browser",
      kUsage,
      {
          {"model_dir", FlagType::kString, "", "GPT-2 directory (Hugging Face layout)."},
          {"saes", FlagType::kString, "", "HOOK=DIR[,HOOK=DIR...]: the SAEs and their hooks."},
          {"run_dir", FlagType::kString, "", "An experiment run whose saes/ are named <hook>.<name>."},
          {"port", FlagType::kInt, "8080", "Port on 127.0.0.1 (0: any free port)."},
          {"dashboard_corpus", FlagType::kString, "",
           "Pinned corpora (comma-separated; empty: all) whose validation split the cards scan."},
          {"dashboard_contexts", FlagType::kInt, "256", "Contexts the cards scan (0: no cards)."},
          {"dashboard_context_length", FlagType::kInt, "64", "Tokens per card context."},
      },
      &Run,
  };
}

}  // namespace saelab
