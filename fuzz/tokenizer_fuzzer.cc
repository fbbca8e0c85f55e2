// Fuzzes the GPT-2 tokenizer's vocabulary reader (data/text/bpe_tokenizer.h
// BpeTokenizer::FromFiles on vocab.json + merges.txt) and then the tokenizer
// it builds. The input is split into three parts (fuzz_support.h
// SplitParts): vocab.json, merges.txt, and a text to encode.
//
// Asserts, beyond "no crash" and no uncaught exception (nlohmann-json
// throws on invalid UTF-8 when asked to print it):
//  - errors name the file at fault (vocab.json or merges.txt);
//  - an accepted vocabulary round-trips: its canonical files (VocabJson,
//    MergesTxt) load back to a tokenizer with the same Sha256;
//  - on the text, Encode and EncodeWithSpecialTokens give ids in
//    [0, vocab_size) that Decode back to the text exactly.
#include <cstddef>
#include <cstdint>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "data/text/bpe_tokenizer.h"
#include "fuzz/fuzz_support.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

void CheckIdsDecodeTo(const saelab::BpeTokenizer& tokenizer, const std::vector<int32_t>& ids,
                      absl::string_view text, absl::string_view call) {
  for (int32_t id : ids) {
    FuzzCheck(id >= 0 && id < tokenizer.vocab_size(), absl::StrCat(call, " gave id ", id));
  }
  FuzzCheck(tokenizer.Decode(ids) == text, absl::StrCat("Decode(", call, "(text)) != text"));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string vocab_path = saelab::fuzz::ScratchPath("vocab.json");
  static const std::string merges_path = saelab::fuzz::ScratchPath("merges.txt");
  const std::vector<absl::string_view> parts =
      saelab::fuzz::SplitParts(saelab::fuzz::AsStringView(data, size), 3);
  saelab::fuzz::WriteFileOrDie(vocab_path, parts[0]);
  saelab::fuzz::WriteFileOrDie(merges_path, parts[1]);

  absl::StatusOr<saelab::BpeTokenizer> tokenizer =
      saelab::BpeTokenizer::FromFiles(vocab_path, merges_path);
  saelab::fuzz::Report(tokenizer.status(), "BpeTokenizer::FromFiles");
  if (!tokenizer.ok()) {
    const absl::string_view message = tokenizer.status().message();
    FuzzCheck(absl::StrContains(message, vocab_path) || absl::StrContains(message, merges_path),
              absl::StrCat("FromFiles error names neither file: ", tokenizer.status().ToString()));
    return 0;
  }

  saelab::fuzz::WriteFileOrDie(vocab_path, tokenizer->VocabJson());
  saelab::fuzz::WriteFileOrDie(merges_path, tokenizer->MergesTxt());
  absl::StatusOr<saelab::BpeTokenizer> again =
      saelab::BpeTokenizer::FromFiles(vocab_path, merges_path);
  FuzzCheck(again.ok(), absl::StrCat("the canonical files do not load: ",
                                     again.status().ToString()));
  FuzzCheck(again->Sha256() == tokenizer->Sha256() &&
                again->vocab_size() == tokenizer->vocab_size() &&
                again->num_merges() == tokenizer->num_merges(),
            "the canonical files load as another tokenizer");

  const absl::string_view text = parts[2];
  CheckIdsDecodeTo(*tokenizer, tokenizer->Encode(text), text, "Encode");
  CheckIdsDecodeTo(*tokenizer, tokenizer->EncodeWithSpecialTokens(text), text,
                   "EncodeWithSpecialTokens");
  return 0;
}
