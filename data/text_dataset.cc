#include "data/text_dataset.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {

std::vector<std::string> TextDataset::Texts(Split split) const {
  std::vector<std::string> texts;
  for (const Corpus& corpus : corpora) {
    for (const Document* document : DocumentsInSplit(corpus, split, fractions)) {
      texts.push_back(document->text);
    }
  }
  return texts;
}

absl::StatusOr<TextDataset> LoadTextDataset(const CorpusSelection& selection) {
  TextDataset dataset;
  dataset.fractions.val = selection.val_fraction();
  dataset.fractions.test = selection.test_fraction();
  if (dataset.fractions.val < 0 || dataset.fractions.test < 0 ||
      dataset.fractions.val + dataset.fractions.test >= 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CorpusSelection: val_fraction ", dataset.fractions.val, " and test_fraction ",
        dataset.fractions.test, " must be >= 0 and sum to < 1"));
  }
  std::vector<std::string> names(selection.corpora().begin(), selection.corpora().end());
  if (names.empty()) names = KnownCorpora();
  std::string identity = absl::StrFormat("val=%.17g test=%.17g\n", dataset.fractions.val,
                                         dataset.fractions.test);
  for (const std::string& name : names) {
    ASSIGN_OR_RETURN(Corpus corpus, LoadCorpus(name));
    absl::StrAppend(&identity, corpus.name, " ", corpus.sha256, "\n");
    dataset.corpora.push_back(std::move(corpus));
  }
  dataset.sha256 = Sha256Hex(identity);
  return dataset;
}

absl::StatusOr<TokenShard> TokenizeSplit(const TextDataset& dataset, Split split,
                                         const BpeTokenizer& tokenizer, const std::string& path) {
  TokenShardKey key;
  key.tokenizer_sha256 = tokenizer.Sha256();
  key.corpus_sha256 = dataset.sha256;
  key.split = std::string(SplitName(split));
  return OpenOrBuildTokenShard(
      path, key, tokenizer.vocab_size(),
      [&]() -> absl::StatusOr<std::vector<std::vector<int32_t>>> {
        std::vector<std::vector<int32_t>> documents;
        for (const std::string& text : dataset.Texts(split)) {
          documents.push_back(tokenizer.Encode(text));
        }
        return documents;
      });
}

}  // namespace saelab
