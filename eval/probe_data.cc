#include "eval/probe_data.h"

#include <torch/types.h>
#include <torch/utils.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/subject_model/hooks.h"
#include "data/text/corpus.h"
#include "harness/seed.h"
#include "harness/status_macros.h"
#include "re2/re2.h"

namespace saelab {
namespace {

constexpr const char* kBinaryTasks[] = {"brown_noun",    "digit_token",     "capitalized_token",
                                        "in_quotation",  "brown_fiction",   "fortunes_german",
                                        "kjv_scripture"};
constexpr const char* kMulticlassTasks[] = {"brown_genre", "fortunes_language"};

// Brown's fiction categories (cats.txt); the other seven are non-fiction.
bool IsFictionGenre(const std::string& genre) {
  static const absl::flat_hash_set<std::string>* fiction = new absl::flat_hash_set<std::string>{
      "fiction", "mystery", "science_fiction", "adventure", "romance", "humor"};
  return fiction->contains(genre);
}

// A Brown word as it reads in text: `` and '' are quotation marks.
std::string BrownWordText(const std::string& word) {
  return word == "``" || word == "''" ? std::string("\"") : word;
}

// A Brown document's words tokenised one by one: [word][token].
using WordTokens = std::vector<std::vector<int32_t>>;

WordTokens TokenizeWords(const Document& doc, const BpeTokenizer& tokenizer) {
  WordTokens words(doc.words.size());
  for (size_t w = 0; w < doc.words.size(); ++w) {
    words[w] = tokenizer.Encode((w == 0 ? "" : " ") + BrownWordText(doc.words[w]));
  }
  return words;
}

// Brown documents tokenised word by word. token_labels from `label_of`:
// called per (word index, token index within the word, token id).
template <typename LabelFn>
LabelledSequence BrownWordSequence(const Document& doc, const WordTokens& words,
                                   LabelFn label_of) {
  LabelledSequence seq;
  seq.document_id = doc.id;
  for (size_t w = 0; w < words.size(); ++w) {
    const std::vector<int32_t>& ids = words[w];
    for (size_t t = 0; t < ids.size(); ++t) {
      seq.tokens.push_back(ids[t]);
      seq.token_labels.push_back(label_of(w, t, ids.size(), ids[t]));
    }
  }
  return seq;
}

// Bytes of text read per token wanted: BPE tokens of these corpora average
// under 5 bytes; 16 leaves room for long tokens of any language.
constexpr size_t kBytesPerToken = 16;

// A document's first `max_tokens` tokens (all if max_tokens < 0). Only a
// prefix of the text is tokenised, cut at whitespace so no word is split.
LabelledSequence DocumentSequence(const Document& doc, const BpeTokenizer& tokenizer,
                                  int64_t label, int64_t max_tokens) {
  LabelledSequence seq;
  seq.document_id = doc.id;
  absl::string_view text = doc.text;
  if (max_tokens >= 0 && text.size() > kBytesPerToken * static_cast<size_t>(max_tokens)) {
    text = text.substr(0, kBytesPerToken * static_cast<size_t>(max_tokens));
    const size_t space = text.find_last_of(" \n");
    if (space != absl::string_view::npos && space > 0) text = text.substr(0, space);
  }
  seq.tokens = tokenizer.Encode(text);
  if (max_tokens >= 0 && static_cast<int64_t>(seq.tokens.size()) > max_tokens) {
    seq.tokens.resize(max_tokens);
  }
  seq.label = label;
  return seq;
}

// Corpora loaded (and Brown tokenised word by word) once per
// BuildProbeTaskTexts call: the four Brown token tasks share the work.
class CorpusCache {
 public:
  absl::StatusOr<const std::vector<WordTokens>*> BrownWords(const BpeTokenizer& tokenizer) {
    if (brown_words_.empty()) {
      ASSIGN_OR_RETURN(const Corpus* brown, Get("brown"));
      for (const Document& doc : brown->documents) {
        brown_words_.push_back(TokenizeWords(doc, tokenizer));
      }
    }
    return &brown_words_;
  }

  absl::StatusOr<const Corpus*> Get(const std::string& name) {
    auto it = corpora_.find(name);
    if (it == corpora_.end()) {
      ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(name));
      it = corpora_.emplace(name, std::make_unique<Corpus>(std::move(corpus))).first;
    }
    return it->second.get();
  }

 private:
  std::map<std::string, std::unique_ptr<Corpus>> corpora_;
  std::vector<WordTokens> brown_words_;
};

// Negatives for kjv_scripture: this many nlp-corpus sentences (the corpus has
// 100000; the Brown documents are the other half of the negatives).
constexpr size_t kNlpCorpusNegatives = 3000;

absl::StatusOr<ProbeTaskText> BuildTask(const std::string& name, const BpeTokenizer& tokenizer,
                                        int64_t max_document_tokens, CorpusCache& corpora) {
  ProbeTaskText task;
  task.name = name;
  if (name == "brown_noun" || name == "digit_token" || name == "capitalized_token" ||
      name == "in_quotation") {
    ASSIGN_OR_RETURN(const Corpus* brown, corpora.Get("brown"));
    ASSIGN_OR_RETURN(const std::vector<WordTokens>* brown_words, corpora.BrownWords(tokenizer));
    static const RE2* digit = new RE2("[0-9]");
    static const RE2* capitalized = new RE2("^ ?[A-Z]");
    if (name == "brown_noun") {
      task.description = "Brown words tagged nn* (common nouns) vs other words, last token";
      task.class_names = {"other word", "noun"};
    } else if (name == "digit_token") {
      task.description = "tokens whose text contains a digit [0-9] vs other tokens";
      task.class_names = {"other token", "digit"};
    } else if (name == "capitalized_token") {
      task.description = "tokens whose text is ^ ?[A-Z] (capitalised) vs other tokens";
      task.class_names = {"other token", "capitalized"};
    } else {
      task.description = "tokens of words between Brown's `` and '' vs other tokens";
      task.class_names = {"outside quotes", "inside quotes"};
    }
    for (size_t d = 0; d < brown->documents.size(); ++d) {
      const Document& doc = brown->documents[d];
      const WordTokens& words = (*brown_words)[d];
      if (name == "brown_noun") {
        task.sequences.push_back(BrownWordSequence(
            doc, words, [&](size_t w, size_t t, size_t n, int32_t) -> int64_t {
              if (t + 1 != n) return -1;
              return absl::StartsWith(doc.pos_tags[w], "nn") ? 1 : 0;
            }));
      } else if (name == "digit_token" || name == "capitalized_token") {
        const RE2& pattern = name == "digit_token" ? *digit : *capitalized;
        task.sequences.push_back(BrownWordSequence(
            doc, words, [&](size_t, size_t, size_t, int32_t id) -> int64_t {
              const absl::string_view bytes = tokenizer.TokenBytes(id);
              return RE2::PartialMatch(re2::StringPiece(bytes.data(), bytes.size()), pattern) ? 1
                                                                                              : 0;
            }));
      } else {
        // Quote state per word: inside between `` and ''; the marks are not examples.
        std::vector<int64_t> word_label(doc.words.size(), 0);
        bool inside = false;
        for (size_t w = 0; w < doc.words.size(); ++w) {
          if (doc.words[w] == "``") {
            inside = true;
            word_label[w] = -1;
          } else if (doc.words[w] == "''") {
            inside = false;
            word_label[w] = -1;
          } else {
            word_label[w] = inside ? 1 : 0;
          }
        }
        task.sequences.push_back(BrownWordSequence(
            doc, words,
            [&](size_t w, size_t, size_t, int32_t) -> int64_t { return word_label[w]; }));
      }
    }
    return task;
  }
  task.pooled = true;
  // Document-level tasks over one label of one corpus: a one-vs-rest binary
  // task (`positive` says which values are positive) or every value a class.
  auto label_task = [&](const char* corpus, const char* key, bool binary,
                        const std::function<bool(const std::string&)>& positive)
      -> absl::StatusOr<ProbeTaskText> {
    ASSIGN_OR_RETURN(const Corpus* source, corpora.Get(corpus));
    std::vector<std::string> values;
    for (const Document& doc : source->documents) values.push_back(doc.labels.at(key));
    std::sort(values.begin(), values.end());
    values.erase(std::unique(values.begin(), values.end()), values.end());
    if (!binary) task.class_names = values;
    for (const Document& doc : source->documents) {
      const std::string& value = doc.labels.at(key);
      const int64_t label =
          binary ? (positive(value) ? 1 : 0)
                 : std::lower_bound(values.begin(), values.end(), value) - values.begin();
      task.sequences.push_back(DocumentSequence(doc, tokenizer, label, max_document_tokens));
    }
    return task;
  };
  if (name == "brown_fiction") {
    task.description = "Brown documents of the fiction genres vs the non-fiction ones";
    task.class_names = {"non-fiction", "fiction"};
    return label_task("brown", "genre", true, IsFictionGenre);
  }
  if (name == "brown_genre") {
    task.description = "Brown's genre (cats.txt), 15 classes";
    return label_task("brown", "genre", false, {});
  }
  if (name == "fortunes_german") {
    task.description = "German fortunes vs fortunes in the seven other languages";
    task.class_names = {"other language", "german"};
    return label_task("fortunes", "language", true,
                      [](const std::string& language) { return language == "de"; });
  }
  if (name == "fortunes_language") {
    task.description = "the fortune's language (ISO 639-1), 8 classes";
    return label_task("fortunes", "language", false, {});
  }
  if (name == "kjv_scripture") {
    task.description = "KJV chapters vs Brown documents and nlp-corpus sentences";
    task.class_names = {"modern english", "scripture"};
    ASSIGN_OR_RETURN(const Corpus* kjv, corpora.Get("kjv"));
    ASSIGN_OR_RETURN(const Corpus* brown, corpora.Get("brown"));
    ASSIGN_OR_RETURN(const Corpus* sentences, corpora.Get("nlp-corpus"));
    for (const Document& doc : kjv->documents) {
      task.sequences.push_back(DocumentSequence(doc, tokenizer, 1, max_document_tokens));
    }
    for (const Document& doc : brown->documents) {
      task.sequences.push_back(DocumentSequence(doc, tokenizer, 0, max_document_tokens));
    }
    for (size_t i = 0; i < std::min(kNlpCorpusNegatives, sentences->documents.size()); ++i) {
      task.sequences.push_back(
          DocumentSequence(sentences->documents[i], tokenizer, 0, max_document_tokens));
    }
    return task;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown probe task \"", name, "\"; known tasks: ",
                   absl::StrJoin(BuiltinProbeTasks(/*include_multiclass=*/true), ", ")));
}

// A context to run: BOS + tokens, and where its examples sit.
struct PendingContext {
  std::vector<int64_t> tokens;         // BOS first
  std::vector<int64_t> positions;      // example positions (token level), or all >= 1
  std::vector<int64_t> labels;         // per position (token level) or one (document)
};

// Runs contexts (any lengths <= L) through the model to the hook, right-
// padded with BOS (causal attention: padding never reaches earlier
// positions), and returns the activation rows of each context's positions.
absl::StatusOr<std::vector<torch::Tensor>> RunContexts(const Gpt2Model& model,
                                                       HookLocation location,
                                                       const std::vector<PendingContext>& contexts,
                                                       int64_t bos, int64_t batch) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> out;
  for (size_t begin = 0; begin < contexts.size(); begin += batch) {
    const size_t end = std::min(contexts.size(), begin + static_cast<size_t>(batch));
    size_t length = 0;
    for (size_t c = begin; c < end; ++c) length = std::max(length, contexts[c].tokens.size());
    torch::Tensor tokens =
        torch::full({static_cast<int64_t>(end - begin), static_cast<int64_t>(length)}, bos,
                    torch::kLong);
    for (size_t c = begin; c < end; ++c) {
      const auto& t = contexts[c].tokens;
      tokens[c - begin].slice(0, 0, t.size()).copy_(torch::tensor(t, torch::kLong));
    }
    ASSIGN_OR_RETURN(torch::Tensor acts, model.RunToHook(tokens, location));  // [B, L, d]
    for (size_t c = begin; c < end; ++c) {
      out.push_back(acts[c - begin].index_select(
          0, torch::tensor(contexts[c].positions, torch::kLong)));
    }
  }
  return out;
}

// Seeded sample of at most `cap` indices of each class, in ascending order.
std::vector<int64_t> SampleBalanced(const std::vector<int64_t>& labels, int64_t classes,
                                    int64_t cap, uint64_t seed) {
  std::vector<int64_t> chosen;
  auto generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (int64_t c = 0; c < classes; ++c) {
    std::vector<int64_t> members;
    for (size_t i = 0; i < labels.size(); ++i) {
      if (labels[i] == c) members.push_back(static_cast<int64_t>(i));
    }
    const torch::Tensor order =
        torch::randperm(static_cast<int64_t>(members.size()), generator, torch::kLong);
    for (int64_t i = 0; i < std::min<int64_t>(cap, order.numel()); ++i) {
      chosen.push_back(members[order[i].item<int64_t>()]);
    }
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

absl::StatusOr<ProbeDataset::Split> BuildSplit(const Gpt2Model& model, HookLocation location,
                                               int64_t bos, const ProbeTaskText& task,
                                               const std::vector<const LabelledSequence*>& docs,
                                               const ProbeEvalConfig& config, int64_t cap,
                                               const std::string& split_name, uint64_t seed) {
  const int64_t classes = static_cast<int64_t>(task.class_names.size());
  const int64_t body = config.context_length() - 1;
  std::vector<PendingContext> contexts;
  if (!task.pooled) {
    // Pack documents in order into [BOS, body tokens] contexts until every
    // class has `cap` candidates or the context budget is spent.
    std::vector<int64_t> seen(classes, 0);
    auto enough = [&] {
      return std::all_of(seen.begin(), seen.end(), [&](int64_t s) { return s >= cap; });
    };
    for (const LabelledSequence* seq : docs) {
      for (size_t begin = 0; begin < seq->tokens.size() && !enough() &&
                             static_cast<int64_t>(contexts.size()) < config.max_contexts_per_split();
           begin += body) {
        PendingContext context;
        context.tokens.push_back(bos);
        const size_t end = std::min(seq->tokens.size(), begin + body);
        for (size_t i = begin; i < end; ++i) {
          context.tokens.push_back(seq->tokens[i]);
          if (seq->token_labels[i] >= 0) {
            context.positions.push_back(static_cast<int64_t>(i - begin + 1));
            context.labels.push_back(seq->token_labels[i]);
            ++seen[seq->token_labels[i]];
          }
        }
        if (!context.positions.empty()) contexts.push_back(std::move(context));
      }
    }
  } else {
    for (const LabelledSequence* seq : docs) {
      for (int64_t k = 0; k < config.contexts_per_document(); ++k) {
        const size_t begin = static_cast<size_t>(k * body);
        if (begin >= seq->tokens.size()) break;
        PendingContext context;
        context.tokens.push_back(bos);
        const size_t end = std::min(seq->tokens.size(), begin + body);
        for (size_t i = begin; i < end; ++i) {
          context.tokens.push_back(seq->tokens[i]);
          context.positions.push_back(static_cast<int64_t>(i - begin + 1));
        }
        context.labels.push_back(seq->label);
        contexts.push_back(std::move(context));
      }
    }
  }
  // Candidate examples: (context, index into its positions) with labels.
  std::vector<std::pair<int64_t, int64_t>> candidates;
  std::vector<int64_t> candidate_labels;
  for (size_t c = 0; c < contexts.size(); ++c) {
    for (size_t i = 0; i < contexts[c].labels.size(); ++i) {
      candidates.emplace_back(static_cast<int64_t>(c), static_cast<int64_t>(i));
      candidate_labels.push_back(contexts[c].labels[i]);
    }
  }
  const std::vector<int64_t> chosen = SampleBalanced(candidate_labels, classes, cap, seed);
  for (int64_t c = 0; c < classes; ++c) {
    if (std::none_of(chosen.begin(), chosen.end(),
                     [&](int64_t i) { return candidate_labels[i] == c; })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "probe task ", task.name, ": class \"", task.class_names[c], "\" has no example in the ",
          split_name, " split (", chosen.size(),
          " examples, all of other classes); a probe needs every class"));
    }
  }
  // Run only the contexts that hold a chosen example.
  std::vector<PendingContext> needed;
  std::vector<int64_t> needed_index(contexts.size(), -1);
  for (int64_t i : chosen) {
    const int64_t c = candidates[i].first;
    if (needed_index[c] < 0) {
      needed_index[c] = static_cast<int64_t>(needed.size());
      needed.push_back(contexts[c]);
    }
  }
  ASSIGN_OR_RETURN(std::vector<torch::Tensor> rows,
                   RunContexts(model, location, needed, bos, config.batch_contexts()));
  std::vector<torch::Tensor> split_rows;
  std::vector<int64_t> example_of_row, labels;
  for (int64_t i : chosen) {
    const auto [c, k] = candidates[i];
    const torch::Tensor& context_rows = rows[needed_index[c]];
    const torch::Tensor example = task.pooled ? context_rows : context_rows.slice(0, k, k + 1);
    split_rows.push_back(example);
    example_of_row.insert(example_of_row.end(), example.size(0),
                          static_cast<int64_t>(labels.size()));
    labels.push_back(candidate_labels[i]);
  }
  ProbeDataset::Split split;
  split.rows = torch::cat(split_rows).contiguous();
  split.example_of_row = torch::tensor(example_of_row, torch::kLong);
  split.labels = torch::tensor(labels, torch::kLong);
  return split;
}

}  // namespace

torch::Tensor PoolByExample(const torch::Tensor& features, const ProbeDataset::Split& split) {
  const int64_t n = split.examples();
  if (features.size(0) == n) return features;  // one row per example
  torch::Tensor sums = torch::zeros({n, features.size(1)}, features.options());
  sums.index_add_(0, split.example_of_row, features);
  const torch::Tensor counts =
      torch::bincount(split.example_of_row, {}, n).to(features.scalar_type()).unsqueeze(1);
  return sums / counts;
}

absl::Status CheckRowsWidth(const ProbeDataset& task, int64_t d_in,
                            absl::string_view evaluation) {
  for (const ProbeDataset::Split* split : {&task.train, &task.test}) {
    if (split->rows.dim() != 2 || split->rows.size(1) != d_in) {
      return absl::InvalidArgumentError(absl::StrCat(
          evaluation, " task ", task.name, ": activation rows are ",
          split->rows.dim() == 2 ? absl::StrCat(split->rows.size(1), " wide") : "not a matrix",
          " but the SAE's d_in is ", d_in));
    }
  }
  return absl::OkStatus();
}

std::vector<std::string> BuiltinProbeTasks(bool include_multiclass) {
  std::vector<std::string> names(std::begin(kBinaryTasks), std::end(kBinaryTasks));
  if (include_multiclass) names.insert(names.end(), std::begin(kMulticlassTasks),
                                       std::end(kMulticlassTasks));
  return names;
}

absl::StatusOr<std::vector<ProbeTaskText>> BuildProbeTaskTexts(
    const BpeTokenizer& tokenizer, const std::vector<std::string>& names,
    int64_t max_document_tokens) {
  CorpusCache corpora;
  std::vector<ProbeTaskText> tasks;
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(ProbeTaskText task, BuildTask(name, tokenizer, max_document_tokens, corpora));
    tasks.push_back(std::move(task));
  }
  return tasks;
}

absl::StatusOr<ProbeDataset> BuildProbeDataset(const Gpt2Model& model, const std::string& hook_name,
                                               int64_t bos_token, const ProbeTaskText& task,
                                               const ProbeEvalConfig& config, uint64_t seed) {
  if (config.context_length() < 2 || config.context_length() > model.config().n_positions) {
    return absl::InvalidArgumentError(
        absl::StrCat("probe task ", task.name, ": context_length ", config.context_length(),
                     " is outside [2, ", model.config().n_positions, "]"));
  }
  if (task.class_names.size() < 2) {
    return absl::InvalidArgumentError(absl::StrCat("probe task ", task.name, " has ",
                                                   task.class_names.size(),
                                                   " class; a probe needs two or more"));
  }
  ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
  SplitFractions fractions;
  fractions.val = 0;
  fractions.test = config.test_fraction();
  std::vector<const LabelledSequence*> train_docs, test_docs;
  for (const LabelledSequence& seq : task.sequences) {
    (SplitOf(seq.document_id, fractions) == Split::kTest ? test_docs : train_docs).push_back(&seq);
  }
  ProbeDataset dataset;
  dataset.name = task.name;
  dataset.description = task.description;
  dataset.pooled = task.pooled;
  dataset.class_names = task.class_names;
  ASSIGN_OR_RETURN(dataset.train,
                   BuildSplit(model, location, bos_token, task, train_docs, config,
                              config.train_examples_per_class(), "train",
                              DeriveSeed(seed, "train")));
  ASSIGN_OR_RETURN(dataset.test,
                   BuildSplit(model, location, bos_token, task, test_docs, config,
                              config.test_examples_per_class(), "test", DeriveSeed(seed, "test")));
  return dataset;
}

absl::StatusOr<std::vector<ProbeDataset>> BuildProbeDatasets(const Gpt2Model& model,
                                                             const BpeTokenizer& tokenizer,
                                                             const std::string& hook_name,
                                                             const ProbeEvalConfig& config,
                                                             uint64_t seed) {
  std::vector<std::string> names(config.tasks().begin(), config.tasks().end());
  if (names.empty()) names = BuiltinProbeTasks(/*include_multiclass=*/false);
  if (!tokenizer.eos_id().has_value()) {
    return absl::InvalidArgumentError("probe tasks: the tokenizer has no <|endoftext|> for BOS");
  }
  // Document-level tasks read at most contexts_per_document contexts.
  ASSIGN_OR_RETURN(std::vector<ProbeTaskText> texts,
                   BuildProbeTaskTexts(tokenizer, names,
                                       config.contexts_per_document() *
                                           (config.context_length() - 1)));
  std::vector<ProbeDataset> datasets;
  for (const ProbeTaskText& text : texts) {
    ASSIGN_OR_RETURN(ProbeDataset dataset,
                     BuildProbeDataset(model, hook_name, *tokenizer.eos_id(), text, config,
                                       DeriveSeed(seed, text.name)));
    datasets.push_back(std::move(dataset));
  }
  return datasets;
}

}  // namespace saelab
