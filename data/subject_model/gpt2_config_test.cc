#include "data/subject_model/gpt2_config.h"

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

using ::testing::TempDir;

// The config.json transformers publishes for GPT-2 small (openai-community/gpt2).
constexpr char kGpt2SmallConfig[] = R"({
  "activation_function": "gelu_new",
  "architectures": ["GPT2LMHeadModel"],
  "attn_pdrop": 0.1,
  "bos_token_id": 50256,
  "embd_pdrop": 0.1,
  "eos_token_id": 50256,
  "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05,
  "model_type": "gpt2",
  "n_ctx": 1024,
  "n_embd": 768,
  "n_head": 12,
  "n_layer": 12,
  "n_positions": 1024,
  "resid_pdrop": 0.1,
  "summary_activation": null,
  "summary_first_dropout": 0.1,
  "summary_proj_to_labels": true,
  "summary_type": "cls_index",
  "summary_use_proj": true,
  "task_specific_params": {"text-generation": {"do_sample": true, "max_length": 50}},
  "vocab_size": 50257
})";

TEST(Gpt2ConfigTest, DeeplyNestedConfigIsAnErrorNotACrash) {
  const std::string text = "{\"n_embd\": " + std::string(100000, '[') + "}";
  const absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(text, "model/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find("model/config.json: not valid JSON: nested deeper"),
            std::string::npos)
      << config.status();
}

TEST(Gpt2ConfigTest, ReadsTheTransformersGpt2SmallConfig) {
  absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(kGpt2SmallConfig, "gpt2/config.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->n_layer, 12);
  EXPECT_EQ(config->n_head, 12);
  EXPECT_EQ(config->n_embd, 768);
  EXPECT_EQ(config->n_positions, 1024);
  EXPECT_EQ(config->vocab_size, 50257);
  EXPECT_EQ(config->d_mlp(), 3072);
  EXPECT_EQ(config->d_head(), 64);
  EXPECT_DOUBLE_EQ(config->layer_norm_epsilon, 1e-5);
  EXPECT_EQ(config->activation_function, "gelu_new");
  EXPECT_EQ(config->bos_token_id, 50256);
  EXPECT_EQ(config->eos_token_id, 50256);
}

TEST(Gpt2ConfigTest, WrittenConfigReadsBackEqual) {
  Gpt2Config config;
  config.n_layer = 3;
  config.n_head = 2;
  config.n_embd = 16;
  config.n_inner = 40;
  config.n_positions = 24;
  config.vocab_size = 300;
  config.layer_norm_epsilon = 1e-6;
  config.eos_token_id = 299;
  const std::string path = TempDir() + "/roundtrip_config.json";
  ASSERT_TRUE(WriteGpt2Config(path, config).ok());
  absl::StatusOr<Gpt2Config> back = ReadGpt2Config(path);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->n_layer, 3);
  EXPECT_EQ(back->n_head, 2);
  EXPECT_EQ(back->n_embd, 16);
  EXPECT_EQ(back->n_inner, 40);
  EXPECT_EQ(back->d_mlp(), 40);
  EXPECT_EQ(back->n_positions, 24);
  EXPECT_EQ(back->vocab_size, 300);
  EXPECT_DOUBLE_EQ(back->layer_norm_epsilon, 1e-6);
  EXPECT_EQ(back->bos_token_id, -1);
  EXPECT_EQ(back->eos_token_id, 299);
  // transformers needs model_type to pick GPT2Config.
  absl::StatusOr<std::string> text = ReadFile(path);
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, AllOf(HasSubstr("\"model_type\": \"gpt2\""),
                           HasSubstr("\"GPT2LMHeadModel\""), HasSubstr("\"n_ctx\": 24")));
}

TEST(Gpt2ConfigTest, DefaultMlpWidthIsWrittenAsNullNInner) {
  Gpt2Config config;
  config.n_embd = 8;
  config.n_head = 2;
  EXPECT_THAT(Gpt2ConfigToJson(config), HasSubstr("\"n_inner\": null"));
  absl::StatusOr<Gpt2Config> back = ParseGpt2ConfigJson(Gpt2ConfigToJson(config), "c.json");
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->d_mlp(), 32);
}

TEST(Gpt2ConfigTest, OldConfigWithOnlyNCtxTakesTheContextFromIt) {
  absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(
      R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_ctx": 8, "vocab_size": 10})", "c.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->n_positions, 8);
  EXPECT_DOUBLE_EQ(config->layer_norm_epsilon, 1e-5);
}

TEST(Gpt2ConfigTest, GeluPytorchTanhIsReadAsGeluNew) {
  absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(
      R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
          "activation_function": "gelu_pytorch_tanh"})",
      "c.json");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->activation_function, "gelu_new");
}

TEST(Gpt2ConfigTest, MissingNLayerIsAnErrorNamingTheFileAndKey) {
  const std::string path = TempDir() + "/missing_n_layer.json";
  ASSERT_TRUE(AtomicWriteFile(path, R"({"n_head": 2, "n_embd": 8, "n_positions": 8,
                                        "vocab_size": 10})")
                  .ok());
  absl::StatusOr<Gpt2Config> config = ReadGpt2Config(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr(path), HasSubstr("'n_layer'"), HasSubstr("missing")));
}

TEST(Gpt2ConfigTest, MissingContextIsAnErrorNamingBothKeys) {
  absl::StatusOr<Gpt2Config> config =
      ParseGpt2ConfigJson(R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "vocab_size": 10})", "c.json");
  ASSERT_FALSE(config.ok());
  EXPECT_THAT(config.status().message(),
              AllOf(HasSubstr("c.json"), HasSubstr("n_positions"), HasSubstr("n_ctx")));
}

TEST(Gpt2ConfigTest, InvalidValuesAreErrorsNamingTheKey) {
  struct Case {
    const char* json;
    const char* key;
  };
  const Case cases[] = {
      {R"({"n_layer": "2", "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10})",
       "'n_layer'"},
      {R"({"n_layer": 0, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10})",
       "'n_layer'"},
      {R"({"n_layer": 1, "n_head": 1.5, "n_embd": 4, "n_positions": 8, "vocab_size": 10})",
       "'n_head'"},
      {R"({"n_layer": 1, "n_head": 3, "n_embd": 4, "n_positions": 8, "vocab_size": 10})",
       "n_embd"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "layer_norm_epsilon": -1})",
       "'layer_norm_epsilon'"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "activation_function": "relu"})",
       "'activation_function'"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "tie_word_embeddings": false})",
       "'tie_word_embeddings'"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "scale_attn_by_inverse_layer_idx": true})",
       "'scale_attn_by_inverse_layer_idx'"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "model_type": "llama"})",
       "'model_type'"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_positions": 8, "vocab_size": 10,
           "eos_token_id": 10})",
       "eos_token_id"},
      // Beyond kMaxGpt2Size: 4 * n_embd overflowed int64 (fuzz/crashes/hf_config/).
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4611686018427387904, "n_positions": 8,
           "vocab_size": 10})",
       "n_embd"},
      {R"({"n_layer": 1, "n_head": 1, "n_embd": 4, "n_inner": 2147483648, "n_positions": 8,
           "vocab_size": 10})",
       "'n_inner'"},
  };
  for (const Case& c : cases) {
    absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(c.json, "dir/config.json");
    ASSERT_FALSE(config.ok()) << c.json;
    EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument) << c.json;
    EXPECT_THAT(config.status().message(), AllOf(HasSubstr("dir/config.json"), HasSubstr(c.key)))
        << c.json;
  }
}

TEST(Gpt2ConfigTest, NotJsonOrNotAnObjectIsAnErrorNamingTheFile) {
  for (const char* text : {"{\"n_layer\": ", "[1, 2]"}) {
    absl::StatusOr<Gpt2Config> config = ParseGpt2ConfigJson(text, "dir/config.json");
    ASSERT_FALSE(config.ok());
    EXPECT_THAT(config.status().message(), HasSubstr("dir/config.json"));
  }
}

TEST(Gpt2ConfigTest, MissingFileIsNotFoundNamingIt) {
  absl::StatusOr<Gpt2Config> config = ReadGpt2Config(TempDir() + "/no/such/config.json");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(config.status().message(), HasSubstr("no/such/config.json"));
}

}  // namespace
}  // namespace saelab
