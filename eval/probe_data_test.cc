#include "eval/probe_data.h"

#include <torch/types.h>

#include <cctype>
#include <set>

#include "absl/strings/match.h"
#include "data/text/corpus.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

constexpr int64_t kVocab = 30, kEmbd = 8, kBos = 29;
constexpr char kHook[] = "blocks.0.hook_resid_post";

Gpt2Model TinyModel() { return TinyGpt2(kVocab, kEmbd, /*positions=*/16, /*seed=*/5); }

// Token level: token t is labelled t % 2 when t < 20, else not an example.
ProbeTaskText ParityTask(int documents) {
  ProbeTaskText task;
  task.name = "parity";
  task.class_names = {"even", "odd"};
  for (int d = 0; d < documents; ++d) {
    LabelledSequence seq;
    seq.document_id = "doc/" + std::to_string(d);
    for (int i = 0; i < 23; ++i) {
      const int32_t t = (d * 7 + i * 3) % 28;
      seq.tokens.push_back(t);
      seq.token_labels.push_back(t < 20 ? t % 2 : -1);
    }
    task.sequences.push_back(seq);
  }
  return task;
}

ProbeEvalConfig SmallConfig() {
  ProbeEvalConfig config;
  config.set_context_length(8);
  config.set_train_examples_per_class(40);
  config.set_test_examples_per_class(20);
  config.set_batch_contexts(3);
  return config;
}

// Each example's row must be the hook activation of its token in its
// context, recomputed here with RunWithCache; the label must be the token's.
TEST(ProbeDataTest, TokenExamplesAreTheHookActivationsOfTheirTokens) {
  const Gpt2Model model = TinyModel();
  const ProbeTaskText task = ParityTask(40);
  const absl::StatusOr<ProbeDataset> data =
      BuildProbeDataset(model, kHook, kBos, task, SmallConfig(), 11);
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_FALSE(data->pooled);
  for (const auto* split : {&data->train, &data->test}) {
    EXPECT_EQ(split->rows.size(0), split->examples());
    // Balanced up to the caps.
    const int64_t positives = split->labels.sum().item<int64_t>();
    EXPECT_EQ(positives, split->examples() - positives);
  }
  EXPECT_EQ(data->train.examples(), 80);
  EXPECT_EQ(data->test.examples(), 40);
  // Every row is the activation of some labelled token in some context:
  // rebuild all contexts of the task and look each row up.
  std::vector<torch::Tensor> candidates;
  std::vector<int64_t> candidate_labels;
  for (const LabelledSequence& seq : task.sequences) {
    for (size_t begin = 0; begin < seq.tokens.size(); begin += 7) {
      std::vector<int64_t> tokens = {kBos};
      for (size_t i = begin; i < std::min(seq.tokens.size(), begin + 7); ++i) {
        tokens.push_back(seq.tokens[i]);
      }
      auto cache = model.RunWithCache(torch::tensor(tokens).unsqueeze(0), {kHook});
      ASSERT_TRUE(cache.ok());
      for (size_t i = 1; i < tokens.size(); ++i) {
        const int64_t label = seq.token_labels[begin + i - 1];
        if (label < 0) continue;
        candidates.push_back(cache->at(kHook)[0][i]);
        candidate_labels.push_back(label);
      }
    }
  }
  const torch::Tensor all = torch::stack(candidates);
  for (int64_t r = 0; r < data->train.rows.size(0); ++r) {
    const torch::Tensor distance = (all - data->train.rows[r]).abs().amax(1);
    const int64_t match = distance.argmin().item<int64_t>();
    ASSERT_LT(distance[match].item<double>(), 1e-5) << "row " << r;
    EXPECT_EQ(candidate_labels[match], data->train.labels[r].item<int64_t>());
  }
}

TEST(ProbeDataTest, DocumentExamplesPoolTheirContext) {
  const Gpt2Model model = TinyModel();
  ProbeTaskText task;
  task.name = "first_token_small";
  task.pooled = true;
  task.class_names = {"large", "small"};
  for (int d = 0; d < 60; ++d) {
    LabelledSequence seq;
    seq.document_id = "doc/" + std::to_string(d);
    seq.tokens = {d % 28, (d * 5) % 28, 3, 4};  // shorter than a context
    seq.label = d % 28 < 14 ? 1 : 0;
    task.sequences.push_back(seq);
  }
  const absl::StatusOr<ProbeDataset> data =
      BuildProbeDataset(model, kHook, kBos, task, SmallConfig(), 3);
  ASSERT_TRUE(data.ok()) << data.status();
  // Four rows (positions 1..4) per example, pooled to their mean.
  EXPECT_EQ(data->train.rows.size(0), 4 * data->train.examples());
  const torch::Tensor pooled = PoolByExample(data->train.rows, data->train);
  EXPECT_TRUE(torch::allclose(pooled[0], data->train.rows.slice(0, 0, 4).mean(0)));
  EXPECT_TRUE(torch::allclose(pooled[2], data->train.rows.slice(0, 8, 12).mean(0)));
}

TEST(ProbeDataTest, AOneClassTaskIsAClearError) {
  const Gpt2Model model = TinyModel();
  ProbeTaskText task = ParityTask(20);
  for (LabelledSequence& seq : task.sequences) {
    for (int64_t& label : seq.token_labels) label = label >= 0 ? 1 : -1;
  }
  const absl::StatusOr<ProbeDataset> data =
      BuildProbeDataset(model, kHook, kBos, task, SmallConfig(), 3);
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(data.status().message(),
                                "probe task parity: class \"even\" has no example"))
      << data.status();
  // An unknown hook names the problem too.
  EXPECT_FALSE(BuildProbeDataset(model, "blocks.7.hook_resid_post", kBos, ParityTask(20),
                                 SmallConfig(), 3)
                   .ok());
}

// The built-in tasks' labels, checked against the corpora by other means.
TEST(ProbeDataTest, BuiltinTaskLabelsFollowTheCorpora) {
  const absl::StatusOr<BpeTokenizer> tokenizer =
      BpeTokenizer::FromDir("data/models/saelab-ref-lm");
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  const absl::StatusOr<std::vector<ProbeTaskText>> tasks = BuildProbeTaskTexts(
      *tokenizer, {"brown_noun", "digit_token", "capitalized_token", "in_quotation",
                   "kjv_scripture", "fortunes_language"});
  ASSERT_TRUE(tasks.ok()) << tasks.status();
  const absl::StatusOr<Corpus> brown = LoadCorpus("brown");
  ASSERT_TRUE(brown.ok());
  // brown_noun: one example per word; positives = words whose tag starts "nn".
  const ProbeTaskText& noun = (*tasks)[0];
  ASSERT_EQ(noun.sequences.size(), brown->documents.size());
  for (int d : {0, 123, 499}) {
    const Document& doc = brown->documents[d];
    int64_t nouns = 0, examples = 0, positives = 0;
    for (const std::string& tag : doc.pos_tags) nouns += tag.rfind("nn", 0) == 0;
    for (int64_t label : noun.sequences[d].token_labels) {
      examples += label >= 0;
      positives += label == 1;
    }
    EXPECT_EQ(examples, static_cast<int64_t>(doc.words.size())) << doc.id;
    EXPECT_EQ(positives, nouns) << doc.id;
  }
  // digit_token and capitalized_token: the decoded token text decides.
  for (int t : {1, 2}) {
    const LabelledSequence& seq = (*tasks)[t].sequences[7];
    for (size_t i = 0; i < seq.tokens.size(); ++i) {
      const std::string text = tokenizer->Decode({seq.tokens[i]});
      bool expected = false;
      if (t == 1) {
        for (char c : text) expected |= std::isdigit(static_cast<unsigned char>(c)) != 0;
      } else {
        const size_t start = !text.empty() && text[0] == ' ' ? 1 : 0;
        expected = text.size() > start && std::isupper(static_cast<unsigned char>(text[start]));
      }
      EXPECT_EQ(seq.token_labels[i], expected ? 1 : 0) << "token \"" << text << "\"";
    }
  }
  // in_quotation: the words between `` and '' of ca01, counted here.
  {
    const Document& doc = brown->documents[0];
    int64_t inside_words = 0;
    bool inside = false;
    for (const std::string& w : doc.words) {
      if (w == "``") inside = true;
      else if (w == "''") inside = false;
      else inside_words += inside;
    }
    ASSERT_GT(inside_words, 0);
    // Count the words whose tokens are labelled 1 by re-tokenising word by word.
    const LabelledSequence& seq = (*tasks)[3].sequences[0];
    int64_t labelled_words = 0;
    size_t token = 0;
    for (size_t w = 0; w < doc.words.size(); ++w) {
      const std::string word = doc.words[w] == "``" || doc.words[w] == "''" ? "\"" : doc.words[w];
      const size_t n = tokenizer->Encode((w == 0 ? "" : " ") + word).size();
      labelled_words += seq.token_labels[token] == 1;
      token += n;
    }
    EXPECT_EQ(token, seq.tokens.size());
    EXPECT_EQ(labelled_words, inside_words);
  }
  // kjv_scripture: 1189 chapters are the positives.
  int64_t scripture = 0;
  for (const LabelledSequence& seq : (*tasks)[4].sequences) scripture += seq.label == 1;
  EXPECT_EQ(scripture, 1189);
  // fortunes_language: 8 languages, every fortune labelled with its own.
  const ProbeTaskText& language = (*tasks)[5];
  ASSERT_EQ(language.class_names.size(), 8u);
  const absl::StatusOr<Corpus> fortunes = LoadCorpus("fortunes");
  ASSERT_TRUE(fortunes.ok());
  for (size_t i = 0; i < fortunes->documents.size(); i += 997) {
    EXPECT_EQ(language.class_names[language.sequences[i].label],
              fortunes->documents[i].labels.at("language"));
  }
  EXPECT_FALSE(BuildProbeTaskTexts(*tokenizer, {"no_such_task"}).ok());
}

}  // namespace
}  // namespace saelab
