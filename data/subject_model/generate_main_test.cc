// End to end: runs the generate binary on a tiny random model directory
// (written here: config.json + model.safetensors by SaveHfDirectory,
// vocab.json + merges.txt by the BPE tokenizer) and checks that it prints
// exactly what the library calls give: Decode(Generate(Encode(prompt))).

#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "data/text/bpe_tokenizer.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/gpt2_model.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/internal/child_process.h"

namespace saelab {
namespace {

using ::testing::HasSubstr;

using ::testing::TempDir;

std::string GenerateBinary() { return Runfile("data/subject_model/generate"); }

// A byte-level vocabulary: the 256 bytes, a few merges, <|endoftext|>.
BpeTokenizer TinyTokenizer() {
  std::vector<std::string> tokens;
  for (uint8_t byte : Gpt2ByteTokenOrder()) tokens.push_back(std::string(1, static_cast<char>(byte)));
  auto id = [&](const std::string& token) {
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (tokens[i] == token) return static_cast<int32_t>(i);
    }
    return -1;
  };
  std::vector<std::pair<int32_t, int32_t>> merges;
  for (auto [left, right] : std::vector<std::pair<std::string, std::string>>{
           {" ", "t"}, {"h", "e"}, {" t", "he"}, {"e", "r"}}) {
    merges.push_back({id(left), id(right)});
    tokens.push_back(left + right);
  }
  tokens.push_back(std::string(BpeTokenizer::kEndOfText));
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromTokens(tokens, merges);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

// Writes the tiny model directory; returns it.
std::string WriteTinyModelDir(const std::string& name, const BpeTokenizer& tokenizer) {
  Gpt2Config config;
  config.n_layer = 2;
  config.n_head = 4;
  config.n_embd = 32;
  config.n_positions = 32;
  config.vocab_size = tokenizer.vocab_size();
  config.eos_token_id = *tokenizer.eos_id();
  absl::StatusOr<Gpt2Model> model = Gpt2Model::RandomInit(config, /*seed=*/3);
  EXPECT_TRUE(model.ok()) << model.status();
  const std::string dir = TempDir() + "/" + name;
  EXPECT_TRUE(model->SaveHfDirectory(dir).ok());
  EXPECT_TRUE(tokenizer.WriteFiles(dir).ok());
  return dir;
}

TEST(GenerateMainTest, PrintsTheDecodedContinuationTheLibraryGenerates) {
  const BpeTokenizer tokenizer = TinyTokenizer();
  const std::string dir = WriteTinyModelDir("generate_e2e", tokenizer);
  const std::string prompt = "the weather there";

  for (const char* sampling : {"--temperature=0", "--temperature=1.2 --top_k=40 --seed=5"}) {
    CommandResult run = RunCommand(
        absl::StrCat(GenerateBinary(), " --model_dir=", dir, " --prompt='", prompt,
                     "' --max_new_tokens=12 ", sampling));
    ASSERT_EQ(run.exit_code, 0) << run.err;

    absl::StatusOr<Gpt2Model> model = Gpt2Model::LoadHfDirectory(dir);
    ASSERT_TRUE(model.ok());
    std::vector<int64_t> ids;
    for (int32_t id : tokenizer.Encode(prompt)) ids.push_back(id);
    GenerateOptions options;
    options.max_new_tokens = 12;
    options.stop_token = *tokenizer.eos_id();
    if (std::string(sampling) != "--temperature=0") {
      options.temperature = 1.2;
      options.top_k = 40;
      options.seed = 5;
    } else {
      options.temperature = 0;
    }
    absl::StatusOr<GenerateResult> expected = model->Generate(ids, options);
    ASSERT_TRUE(expected.ok());
    std::vector<int32_t> out(expected->tokens.begin(), expected->tokens.end());
    if (!out.empty() && out.back() == *tokenizer.eos_id()) out.pop_back();
    EXPECT_EQ(run.out, tokenizer.Decode(out) + "\n") << sampling;
    EXPECT_GT(run.out.size(), 1u);
  }
}

TEST(GenerateMainTest, TooManyNewTokensAreReducedToTheContext) {
  const BpeTokenizer tokenizer = TinyTokenizer();
  const std::string dir = WriteTinyModelDir("generate_long", tokenizer);
  CommandResult run = RunCommand(absl::StrCat(GenerateBinary(), " --model_dir=", dir,
                                              " --prompt=xyz --max_new_tokens=1000"));
  ASSERT_EQ(run.exit_code, 0) << run.err;
  EXPECT_THAT(run.err, HasSubstr("reduced to 29"));  // 32 - 3 prompt tokens
}

TEST(GenerateMainTest, MissingWeightsFileFailsNamingIt) {
  const std::string dir = TempDir() + "/no_model_here";
  CommandResult run = RunCommand(
      absl::StrCat("mkdir -p ", dir, " && ", GenerateBinary(), " --model_dir=", dir, " --prompt=x"));
  EXPECT_EQ(run.exit_code, 1);
  EXPECT_THAT(run.err, HasSubstr(dir + "/config.json"));
}

}  // namespace
}  // namespace saelab
