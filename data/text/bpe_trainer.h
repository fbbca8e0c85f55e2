// Trains a byte-level BPE vocabulary, GPT-2 style, for saelab's own small
// reference subject model.
//
// The corpus is split with GPT-2's pre-tokenisation (Gpt2PreTokenize), so
// merges never cross a piece boundary (e.g. never join a word and the
// punctuation after it), exactly as BpeTokenizer will later split text.
// Starting from the 256 single bytes, each step merges the most frequent
// adjacent pair of tokens over all pieces (weighted by how often each piece
// occurs) into a new token, until the vocabulary has `vocab_size` tokens.
//
//   BpeTrainerOptions options;
//   options.vocab_size = 8192;
//   ASSIGN_OR_RETURN(BpeTokenizer tokenizer, TrainBpe(documents, options));
//   RETURN_IF_ERROR(tokenizer.WriteFiles(model_dir));   // vocab.json + merges.txt
//
// The result is deterministic: the same documents and options give the same
// files, bit for bit (nothing depends on hash order or threads). Ties in pair
// count go to the pair whose left token's bytes are lexicographically smallest
// (bytewise, unsigned), then the right token's.
//
// Vocabulary layout: ids 0..255 are the single bytes in GPT-2's order
// (Gpt2ByteTokenOrder, so byte tokens have GPT-2's ids), then the merged
// tokens in the order they were learned, then `<|endoftext|>` as the last id.
// A merge whose result already exists (e.g. "abc" as a+bc and later ab+c)
// adds a merge but no token, as in Hugging Face's trainer.
#ifndef SAELAB_DATA_TEXT_BPE_TRAINER_H_
#define SAELAB_DATA_TEXT_BPE_TRAINER_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "data/text/bpe_tokenizer.h"

namespace saelab {

struct BpeTrainerOptions {
  // Total tokens wanted: 256 bytes + learned tokens + `<|endoftext|>`.
  // At least 257. An upper bound: training stops early when no pair occurs
  // min_pair_count times (vocab_size() of the result says what was reached).
  int32_t vocab_size = 8192;
  // A pair is merged only if it occurs at least this many times in the corpus.
  int64_t min_pair_count = 2;
};

// Learns merges from `documents` (UTF-8 text; each document is pre-tokenised
// on its own). InvalidArgument if vocab_size < 257 or min_pair_count < 1.
absl::StatusOr<BpeTokenizer> TrainBpe(absl::Span<const std::string> documents,
                                      const BpeTrainerOptions& options);

}  // namespace saelab

#endif  // SAELAB_DATA_TEXT_BPE_TRAINER_H_
