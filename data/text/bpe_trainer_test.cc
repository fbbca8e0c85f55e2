#include "data/text/bpe_trainer.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + name;
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

std::vector<std::string> Repeat(const std::string& text, int times) {
  return std::vector<std::string>(times, text);
}

// The merges learned, as strings "left right" of raw bytes.
std::vector<std::string> Merges(const BpeTokenizer& tokenizer) {
  std::vector<std::string> out;
  const std::string txt = tokenizer.MergesTxt();
  size_t start = txt.find('\n') + 1;  // skip "#version: 0.2"
  while (start < txt.size()) {
    const size_t end = txt.find('\n', start);
    out.push_back(txt.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// Real English text from the tokenizer goldens (licences, documentation,
// code; data/text/testdata/tokenizer/english.json).
std::vector<std::string> EnglishCorpus() {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  const std::string path = absl::StrCat(srcdir != nullptr ? srcdir : ".",
                                        "/saelab/data/text/testdata/tokenizer/english.json");
  absl::StatusOr<std::string> text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status();
  const nlohmann::json golden = nlohmann::json::parse(text.value_or("{\"cases\":[]}"));
  std::vector<std::string> documents;
  for (const auto& c : golden["cases"]) {
    documents.push_back(c["text"].get<std::string>());
  }
  EXPECT_GT(documents.size(), 5u);
  return documents;
}

TEST(BpeTrainerTest, FirstMergesAreTheHandCountedOnes) {
  // Pieces (one word a document, no spaces): hug x10, pug x5, pun x12, bun x4,
  // hugs x5. Pair counts over the corpus:
  //   u g: 10 + 5 + 5 = 20   p u: 5 + 12 = 17   u n: 12 + 4 = 16
  //   h u: 10 + 5 = 15       g s: 5             b u: 4
  // 1. "u g" (20). Now h ug, p ug, p u n, b u n, h ug s:
  //   u n: 16  h ug: 15  p u: 12  p ug: 5  ug s: 5  b u: 4
  // 2. "u n" (16). Now h ug, p ug, p un, b un, h ug s:
  //   h ug: 15  p un: 12  p ug: 5  ug s: 5  b un: 4
  // 3. "h ug" (15).  4. "p un" (12). Now hug, p ug, pun, b un, hug s:
  //   p ug: 5  hug s: 5  b un: 4
  // 5. A tie at 5: "hug" < "p", so "hug s".  6. "p ug" (5).  7. "b un" (4).
  // Then every piece is one token and nothing is left to merge.
  std::vector<std::string> documents;
  for (const auto& [word, count] : std::vector<std::pair<std::string, int>>{
           {"hug", 10}, {"pug", 5}, {"pun", 12}, {"bun", 4}, {"hugs", 5}}) {
    for (const std::string& d : Repeat(word, count)) documents.push_back(d);
  }
  BpeTrainerOptions options;
  options.vocab_size = 1000;
  absl::StatusOr<BpeTokenizer> tokenizer = TrainBpe(documents, options);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(Merges(*tokenizer),
              ElementsAre("u g", "u n", "h ug", "p un", "hug s", "p ug", "b un"));
  // 256 bytes + 7 tokens + <|endoftext|>, which is the last id.
  EXPECT_EQ(tokenizer->vocab_size(), 264);
  EXPECT_EQ(tokenizer->eos_id(), 263);
  EXPECT_EQ(tokenizer->TokenBytes(256), "ug");
  // "hugs" is one token (260); " pug" is the space byte (GPT-2's id 220) + "pug" (261).
  EXPECT_THAT(tokenizer->Encode("hugs pug"), ElementsAre(260, 220, 261));
}

TEST(BpeTrainerTest, LeadingSpacesAndTiesFollowTheDocumentedRules) {
  // "the cat the hat" pre-tokenises to "the", " cat", " the", " hat" (G = the
  // space below). Pair counts: t h 2, h e 2, a t 2; G c, c a, G t, G h, h a 1.
  // 1. Tie at 2, smallest left bytes: "a t".  Then t h 2, h e 2 (G at ... 1):
  // 2. Tie at 2: "h" < "t", so "h e".  Then t he 2:
  // 3. "t he".  Every other pair occurs once: below min_pair_count = 2, stop.
  BpeTrainerOptions options;
  options.vocab_size = 1000;
  absl::StatusOr<BpeTokenizer> tokenizer = TrainBpe({"the cat the hat"}, options);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(Merges(*tokenizer), ElementsAre("a t", "h e", "t he"));
  // Written in GPT-2's alphabet, a space is 'Ġ'; check one merge in the file.
  options.min_pair_count = 1;
  absl::StatusOr<BpeTokenizer> all = TrainBpe({"the cat the hat"}, options);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(all->MergesTxt(), HasSubstr("\nĠ "));
}

TEST(BpeTrainerTest, StopsAtTheRequestedVocabularySize) {
  BpeTrainerOptions options;
  options.vocab_size = 300;
  absl::StatusOr<BpeTokenizer> tokenizer = TrainBpe(EnglishCorpus(), options);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_EQ(tokenizer->vocab_size(), 300);
  EXPECT_EQ(tokenizer->eos_id(), 299);
  EXPECT_EQ(tokenizer->TokenBytes(299), "<|endoftext|>");
  // Byte tokens carry GPT-2's ids.
  EXPECT_EQ(tokenizer->TokenBytes(0), "!");
}

TEST(BpeTrainerTest, TrainingTwiceGivesBitIdenticalFiles) {
  BpeTrainerOptions options;
  options.vocab_size = 1200;
  const std::vector<std::string> corpus = EnglishCorpus();
  absl::StatusOr<BpeTokenizer> first = TrainBpe(corpus, options);
  absl::StatusOr<BpeTokenizer> second = TrainBpe(corpus, options);
  ASSERT_TRUE(first.ok() && second.ok());
  const std::string a = TempDir("trained_a"), b = TempDir("trained_b");
  ASSERT_TRUE(first->WriteFiles(a).ok());
  ASSERT_TRUE(second->WriteFiles(b).ok());
  for (const char* file : {"/vocab.json", "/merges.txt"}) {
    absl::StatusOr<std::string> x = ReadFile(a + file), y = ReadFile(b + file);
    ASSERT_TRUE(x.ok() && y.ok());
    EXPECT_TRUE(*x == *y) << file;
    EXPECT_GT(x->size(), 1000u);
  }
  EXPECT_EQ(first->Sha256(), second->Sha256());
}

TEST(BpeTrainerTest, TrainedFilesLoadRoundTripAndCompress) {
  BpeTrainerOptions options;
  options.vocab_size = 1200;
  const std::vector<std::string> corpus = EnglishCorpus();
  absl::StatusOr<BpeTokenizer> trained = TrainBpe(corpus, options);
  ASSERT_TRUE(trained.ok()) << trained.status();
  const std::string dir = TempDir("trained_load");
  ASSERT_TRUE(trained->WriteFiles(dir).ok());
  absl::StatusOr<BpeTokenizer> loaded = BpeTokenizer::FromDir(dir);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Sha256(), trained->Sha256());

  size_t bytes = 0, tokens = 0;
  for (const std::string& document : corpus) {
    const std::vector<int32_t> ids = loaded->Encode(document);
    EXPECT_EQ(loaded->Decode(ids), document);
    bytes += document.size();
    tokens += ids.size();
  }
  // ~940 merges learned from ~20 KB of English: under 0.4 tokens per byte
  // where the byte vocabulary needs 1 (measured 0.35; GPT-2's 50k vocabulary
  // gets 0.29 on the same text).
  EXPECT_LT(tokens * 5, bytes * 2) << tokens << " tokens for " << bytes << " bytes";

  // Unseen text in other scripts still round-trips through the byte tokens.
  const std::string unseen = "Ünïcödé, 日本語, עברית, emoji 👍🏽 and\ttabs  \n\n";
  EXPECT_EQ(loaded->Decode(loaded->Encode(unseen)), unseen);
  EXPECT_THAT(loaded->EncodeWithSpecialTokens("a<|endoftext|>b"),
              ElementsAre(*loaded->TokenId("a"), *loaded->eos_id(), *loaded->TokenId("b")));
}

TEST(BpeTrainerTest, RejectsAVocabularyTooSmallForTheBytes) {
  BpeTrainerOptions options;
  options.vocab_size = 256;
  EXPECT_THAT(TrainBpe({"text"}, options).status().message(), HasSubstr("at least 257"));
  options.vocab_size = 257;
  absl::StatusOr<BpeTokenizer> bytes_only = TrainBpe({"text text"}, options);
  ASSERT_TRUE(bytes_only.ok());
  EXPECT_EQ(bytes_only->num_merges(), 0);
  EXPECT_EQ(bytes_only->vocab_size(), 257);
}

TEST(BpeTrainerTest, EmptyCorpusGivesTheByteVocabulary) {
  absl::StatusOr<BpeTokenizer> tokenizer = TrainBpe({}, BpeTrainerOptions());
  ASSERT_TRUE(tokenizer.ok());
  EXPECT_EQ(tokenizer->vocab_size(), 257);
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode("still works")), "still works");
}

}  // namespace
}  // namespace saelab
