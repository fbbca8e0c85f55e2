// Writes the seed corpora of every fuzz target into fuzz/corpus/<target>/:
// valid files made by saelab's own writers (so the seeds are what saelab
// really writes), the tree's fixtures, truncated copies of them, and JSON
// and textproto inputs nested ~100,000 levels deep (which once overflowed the
// stack). Deterministic: rerunning rewrites the same bytes.
//
//   bazel run //fuzz:make_seed_corpora -- $PWD $PWD/fuzz/corpus
//
// Arguments: the repository root (fixtures are read from it) and the output
// folder. Each target's input layout is described in its <target>_fuzzer.cc.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "data/activations/activation_store.pb.h"
#include "data/activations/store_format.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "data/text/token_shard.h"
#include "fuzz/fuzz_support.h"
#include "harness/file_io.h"
#include "harness/npy.h"
#include "harness/safetensors.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"
#include "nlohmann/json.hpp"
#include "sae/factory.h"
#include "sae/interchange/saelens.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using fuzz::JoinParts;

// Seeds of one target, written as <out>/<target>/<name>.
class Corpus {
 public:
  Corpus(const std::string& out, const std::string& target) : dir_(out + "/" + target) {
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  absl::Status Add(const std::string& name, const std::string& bytes) {
    return AtomicWriteFile(dir_ + "/" + name, bytes);
  }
  // The seed and a copy cut at half its length (a truncated file).
  absl::Status AddWithTruncated(const std::string& name, const std::string& bytes) {
    RETURN_IF_ERROR(Add(name, bytes));
    return Add(name + ".truncated", bytes.substr(0, bytes.size() / 2));
  }

 private:
  std::string dir_;
};

std::string Repeat(const std::string& s, int n) {
  std::string out;
  out.reserve(s.size() * n);
  for (int i = 0; i < n; ++i) out += s;
  return out;
}

constexpr int kDeep = 100000;
// [[[[... unclosed, and {"":{"":... unclosed, 100,000 levels each.
const std::string kDeepArray = Repeat("[", kDeep);
const std::string kDeepObject = Repeat("{\"\":", kDeep);
// Closed: valid JSON if the depth were allowed.
const std::string kDeepArrayClosed = Repeat("[", kDeep) + Repeat("]", kDeep);

std::string Le64(int64_t v) {
  std::string out(8, '\0');
  std::memcpy(out.data(), &v, 8);
  return out;
}

absl::StatusOr<std::string> Read(const std::string& repo, const std::string& path) {
  return ReadFile(repo + "/" + path);
}

// ---- json, hf_config, safetensors ------------------------------------------

absl::Status JsonSeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "json");
  RETURN_IF_ERROR(c.Add("object.json", R"({"d_in": 4, "k": 2.0, "name": "x", "ok": true, "none": null})"));
  RETURN_IF_ERROR(c.Add("numbers.json", R"([0, -1, 1.5e3, 18446744073709551615, -9223372036854775808, 9e15, 1e308])"));
  RETURN_IF_ERROR(c.Add("strings.json", R"(["\u00e9\ud83d\ude00", "\\\"\/\b\f\n\r\t", "\u0000"])"));
  RETURN_IF_ERROR(c.Add("nested_256.json", Repeat("[", 256) + Repeat("]", 256)));
  RETURN_IF_ERROR(c.Add("nested_257.json", Repeat("[", 257) + Repeat("]", 257)));
  RETURN_IF_ERROR(c.Add("brackets_in_string.json", "[\"" + Repeat("[", 300) + "\"]"));
  ASSIGN_OR_RETURN(std::string cfg, Read(repo, "sae/interchange/testdata/saelens_fixture/topk/cfg.json"));
  RETURN_IF_ERROR(c.AddWithTruncated("saelens_cfg.json", cfg));
  RETURN_IF_ERROR(c.Add("deep_array.json", kDeepArray));
  RETURN_IF_ERROR(c.Add("deep_array_closed.json", kDeepArrayClosed));
  return c.Add("deep_object.json", kDeepObject);
}

absl::Status HfConfigSeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "hf_config");
  // A tiny model, saved as saelab saves models.
  Gpt2Config config;
  config.n_layer = 1;
  config.n_head = 2;
  config.n_embd = 4;
  config.n_positions = 8;
  config.vocab_size = 16;
  config.eos_token_id = 15;
  ASSIGN_OR_RETURN(Gpt2Model model, Gpt2Model::RandomInit(config, /*seed=*/1));
  const std::string dir = (fs::temp_directory_path() / "saelab-seed-hf").string();
  RETURN_IF_ERROR(model.SaveHfDirectory(dir));
  ASSIGN_OR_RETURN(std::string config_json, ReadFile(dir + "/config.json"));
  ASSIGN_OR_RETURN(std::string weights, ReadFile(dir + "/model.safetensors"));
  fs::remove_all(dir);
  RETURN_IF_ERROR(c.AddWithTruncated("tiny_model", JoinParts({config_json, weights})));
  // The same weights under transformers' GPT2LMHeadModel names, with the
  // tied lm_head.weight and the old causal-mask buffers.
  {
    ASSIGN_OR_RETURN(SafetensorsContents contents, ParseSafetensors(weights, "tiny"));
    TensorMap renamed;
    for (const auto& [name, tensor] : contents.tensors) renamed["transformer." + name] = tensor;
    renamed["lm_head.weight"] = contents.tensors.at("wte.weight");
    renamed["transformer.h.0.attn.bias"] = torch::ones({1, 1, 8, 8});
    ASSIGN_OR_RETURN(std::string hf, SerializeSafetensors(renamed, {{"format", "pt"}}));
    RETURN_IF_ERROR(c.Add("tiny_model_transformers_names", JoinParts({config_json, hf})));
  }
  // The reference model's config.json (its 5 MB weights are not a seed).
  ASSIGN_OR_RETURN(std::string ref, Read(repo, "data/models/saelab-ref-lm/config.json"));
  RETURN_IF_ERROR(c.AddWithTruncated("ref_lm_config_only", JoinParts({ref, ""})));
  // GPT-2 small's config.json as transformers ships it.
  RETURN_IF_ERROR(c.Add("gpt2_small_config_only", JoinParts({R"({
  "activation_function": "gelu_new", "architectures": ["GPT2LMHeadModel"], "attn_pdrop": 0.1,
  "bos_token_id": 50256, "embd_pdrop": 0.1, "eos_token_id": 50256, "initializer_range": 0.02,
  "layer_norm_epsilon": 1e-05, "model_type": "gpt2", "n_ctx": 1024, "n_embd": 768, "n_head": 12,
  "n_layer": 12, "n_positions": 1024, "resid_pdrop": 0.1, "summary_activation": null,
  "summary_first_dropout": 0.1, "summary_proj_to_labels": true, "summary_type": "cls_index",
  "summary_use_proj": true, "task_specific_params": {"text-generation": {"do_sample": true,
  "max_length": 50}}, "vocab_size": 50257})", ""})));
  RETURN_IF_ERROR(c.Add("deep_array_closed", JoinParts({kDeepArrayClosed, weights})));
  return c.Add("deep_object", JoinParts({kDeepObject, ""}));
}

absl::Status SafetensorsSeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "safetensors");
  TensorMap every_dtype;
  const torch::Tensor base = torch::arange(6, torch::kFloat).reshape({2, 3});
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, torch::ScalarType>>{
           {"f64", torch::kDouble}, {"f32", torch::kFloat}, {"f16", torch::kHalf},
           {"bf16", torch::kBFloat16}, {"i64", torch::kLong}, {"i32", torch::kInt},
           {"i16", torch::kShort}, {"i8", torch::kChar}, {"u8", torch::kByte}}) {
    every_dtype[name] = base.to(dtype);
  }
  every_dtype["bool"] = torch::tensor({true, false, true});
  every_dtype["scalar"] = torch::tensor(3.5f);
  every_dtype["empty"] = torch::zeros({0, 4});
  ASSIGN_OR_RETURN(std::string all, SerializeSafetensors(every_dtype, {{"format", "pt"}, {"k", "32"}}));
  RETURN_IF_ERROR(c.AddWithTruncated("every_dtype.safetensors", all));
  ASSIGN_OR_RETURN(std::string none, SerializeSafetensors({}));
  RETURN_IF_ERROR(c.Add("no_tensors.safetensors", none));
  for (const char* fixture : {"sae/interchange/testdata/saelens_fixture/jumprelu/sae_weights.safetensors",
                              "sae/interchange/testdata/sparsify_fixture/sae.safetensors"}) {
    ASSIGN_OR_RETURN(std::string bytes, Read(repo, fixture));
    RETURN_IF_ERROR(c.AddWithTruncated(fs::path(fixture).parent_path().filename().string() +
                                           ".safetensors",
                                       bytes));
  }
  for (const auto& [name, header] : std::map<std::string, std::string>{
           {"deep_array", kDeepArray}, {"deep_object", kDeepObject}}) {
    RETURN_IF_ERROR(c.Add(name + ".safetensors", Le64(header.size()) + header));
  }
  return absl::OkStatus();
}

// ---- saelens, sparsify -----------------------------------------------------

absl::Status SaeLensSeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "saelens");
  const std::string fixtures = "sae/interchange/testdata/saelens_fixture/";
  for (const char* architecture : {"standard", "topk", "jumprelu", "gated"}) {
    ASSIGN_OR_RETURN(std::string cfg, Read(repo, fixtures + architecture + "/cfg.json"));
    ASSIGN_OR_RETURN(std::string weights,
                     Read(repo, fixtures + architecture + "/sae_weights.safetensors"));
    RETURN_IF_ERROR(c.AddWithTruncated(absl::StrCat("fixture_", architecture),
                                       JoinParts({cfg, weights})));
  }
  // Every saelab architecture as ExportSaeLens writes it (with the "saelab"
  // object in cfg.json).
  const std::string dir = (fs::temp_directory_path() / "saelab-seed-saelens").string();
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    SaeConfig config;
    config.set_name("seed");
    config.set_n_latents(8);
    SelectArchitecture(*architecture, &config);
    if (architecture->sparsity_knob_is_k) architecture->set_sparsity_knob(&config, 2);
    RETURN_IF_ERROR(ResolveSaeConfig(/*d_in=*/4, &config));
    ASSIGN_OR_RETURN(std::unique_ptr<Sae> sae, CreateSae(config, 4, /*seed=*/1));
    RETURN_IF_ERROR(ExportSaeLens(*sae, config, dir));
    ASSIGN_OR_RETURN(std::string cfg, ReadFile(dir + "/cfg.json"));
    ASSIGN_OR_RETURN(std::string weights, ReadFile(dir + "/sae_weights.safetensors"));
    RETURN_IF_ERROR(c.Add(absl::StrCat("exported_", architecture->name), JoinParts({cfg, weights})));
  }
  fs::remove_all(dir);
  ASSIGN_OR_RETURN(std::string weights, Read(repo, fixtures + "topk/sae_weights.safetensors"));
  RETURN_IF_ERROR(c.Add("deep_array_closed", JoinParts({kDeepArrayClosed, weights})));
  return c.Add("deep_object", JoinParts({kDeepObject, weights}));
}

absl::Status SparsifySeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "sparsify");
  const std::string fixture = "sae/interchange/testdata/sparsify_fixture/";
  ASSIGN_OR_RETURN(std::string cfg_text, Read(repo, fixture + "cfg.json"));
  ASSIGN_OR_RETURN(std::string weights, Read(repo, fixture + "sae.safetensors"));
  RETURN_IF_ERROR(c.AddWithTruncated("fixture", JoinParts({cfg_text, weights})));
  // The ways sparsify configs give the sizes: num_latents, or
  // d_in * expansion_factor, or neither (read off encoder.weight).
  const Json cfg = Json::parse(cfg_text);
  Json with_num_latents = cfg;
  with_num_latents["num_latents"] = 12;
  with_num_latents["multi_topk"] = true;
  RETURN_IF_ERROR(c.Add("num_latents", JoinParts({with_num_latents.dump(), weights})));
  Json sizes_from_weights = {{"k", 3}, {"activation", "topk"}};
  RETURN_IF_ERROR(c.Add("sizes_from_weights", JoinParts({sizes_from_weights.dump(), weights})));
  RETURN_IF_ERROR(c.Add("deep_array_closed", JoinParts({kDeepArrayClosed, weights})));
  return c.Add("deep_object", JoinParts({kDeepObject, weights}));
}

// ---- textproto, tokenizer --------------------------------------------------

absl::Status TextprotoSeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "textproto");
  for (const char* name : {"quickstart", "synthetic_recovery", "frontier", "subject_sae",
                           "scaling", "train_subject_lm", "feature_splitting", "l1_vs_topk"}) {
    ASSIGN_OR_RETURN(std::string text, Read(repo, absl::StrCat("experiments/", name, ".textproto")));
    RETURN_IF_ERROR(c.Add(absl::StrCat(name, ".textproto"), text));
  }
  ASSIGN_OR_RETURN(std::string quickstart, Read(repo, "experiments/quickstart.textproto"));
  RETURN_IF_ERROR(c.Add("quickstart.textproto.truncated", quickstart.substr(0, quickstart.size() / 2)));
  for (const SaeArchitecture* architecture : SaeArchitectures()) {
    SaeConfig config;
    config.set_name("seed");
    config.set_n_latents(64);
    SelectArchitecture(*architecture, &config);
    RETURN_IF_ERROR(ResolveSaeConfig(/*d_in=*/64, &config));
    RETURN_IF_ERROR(c.Add(absl::StrCat("sae_", architecture->name, ".textproto"),
                          ToTextProto(config)));
  }
  return c.Add("deep_braces.textproto", Repeat("a { ", kDeep));
}

absl::Status TokenizerSeeds(const std::string& out) {
  Corpus c(out, "tokenizer");
  // The 256 byte tokens in GPT-2's order, a few merges, and <|endoftext|>.
  std::vector<std::string> tokens;
  for (uint8_t b : Gpt2ByteTokenOrder()) tokens.push_back(std::string(1, static_cast<char>(b)));
  auto add = [&](const std::string& token) {
    tokens.push_back(token);
    return static_cast<int32_t>(tokens.size() - 1);
  };
  auto id = [&](const std::string& token) {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), token) - tokens.begin());
  };
  std::vector<std::pair<int32_t, int32_t>> merges;
  for (const auto& [left, right] : std::vector<std::pair<std::string, std::string>>{
           {"t", "h"}, {"th", "e"}, {" ", "the"}, {"l", "l"}, {"e", "ll"}, {"h", "ell"},
           {"hell", "o"}, {" ", "w"}, {"o", "r"}, {" w", "or"}, {"\xc3", "\xa9"}}) {
    const int32_t l = id(left), r = id(right);
    add(left + right);
    merges.push_back({l, r});
  }
  add(std::string(BpeTokenizer::kEndOfText));
  ASSIGN_OR_RETURN(BpeTokenizer tokenizer, BpeTokenizer::FromTokens(tokens, merges));
  const std::string text = "Hello world, the theory<|endoftext|>caf\xc3\xa9  \t\n 123 's\xff\xfe";
  RETURN_IF_ERROR(c.AddWithTruncated(
      "small", JoinParts({tokenizer.VocabJson(), tokenizer.MergesTxt(), text})));
  // No merges, Windows line ends, a blank line.
  RETURN_IF_ERROR(c.Add("no_merges", JoinParts({tokenizer.VocabJson(), "#version: 0.2\r\n\r\n", "the"})));
  // A long piece (MergeLong's heap).
  RETURN_IF_ERROR(c.Add("long_piece", JoinParts({tokenizer.VocabJson(), tokenizer.MergesTxt(),
                                                 Repeat("hellothe", 20)})));
  RETURN_IF_ERROR(c.Add("deep_array_closed", JoinParts({kDeepArrayClosed, "", "x"})));
  return c.Add("deep_object", JoinParts({kDeepObject, tokenizer.MergesTxt(), "x"}));
}

// ---- token_shard, store_chunk, store_manifest, npy --------------------------

absl::Status TokenShardSeeds(const std::string& out) {
  Corpus c(out, "token_shard");
  const std::string path = (fs::temp_directory_path() / "saelab-seed.tokens").string();
  const TokenShardKey key{std::string(64, 'a'), std::string(64, 'b'), "train"};
  struct Shard {
    const char* name;
    int64_t vocab_size;
    std::vector<std::vector<int32_t>> documents;
  };
  for (const Shard& shard : std::vector<Shard>{
           {"small", 50, {{1, 2, 3}, {}, {4, 5, 49, 0}}},
           {"uint32_ids", 70000, {{69999, 65536, 1}, {2}}},
           {"no_documents", 10, {}},
           {"empty_documents", 10, {{}, {}}}}) {
    RETURN_IF_ERROR(WriteTokenShard(path, key, shard.vocab_size, shard.documents));
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    // Flag byte 0: as it is; 1: checksums rewritten by the target.
    RETURN_IF_ERROR(c.AddWithTruncated(absl::StrCat(shard.name, ".raw"), std::string(1, '\0') + bytes));
    RETURN_IF_ERROR(c.Add(absl::StrCat(shard.name, ".resealed"), std::string(1, '\1') + bytes));
  }
  fs::remove(path);
  return absl::OkStatus();
}

// A store key and its chunk spec inputs, as harvesting writes them.
ActivationStoreKey SeedKey(ActivationStoreKey::Dtype dtype) {
  ActivationStoreKey key;
  key.set_model_sha256(std::string(64, 'm'));
  key.set_hook_name("blocks.0.hook_resid_post");
  key.set_shard_sha256(std::string(64, 's'));
  key.set_context_begin(0);
  key.set_context_end(3);
  key.set_context_length(3);
  key.set_dtype(dtype);
  key.set_drop_bos(true);
  return key;
}

absl::Status StoreChunkSeeds(const std::string& out) {
  Corpus c(out, "store_chunk");
  const std::string path = (fs::temp_directory_path() / "saelab-seed-chunk.bin").string();
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, ActivationStoreKey::Dtype>>{
           {"float32", ActivationStoreKey::FLOAT32},
           {"float16", ActivationStoreKey::FLOAT16},
           {"bfloat16", ActivationStoreKey::BFLOAT16}}) {
    const ChunkSpec spec{1, 3, 4, dtype, StoreKeySha256(SeedKey(dtype))};
    const torch::Tensor values =
        torch::linspace(-2, 2, 12).reshape({3, 4}).to(StoreTorchDtype(dtype));
    RETURN_IF_ERROR(WriteChunk(path, values, spec).status());
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
    for (const uint8_t flags : {0, 3}) {
      std::string spec_bytes = Le64(spec.index) + Le64(spec.rows) + Le64(spec.d);
      spec_bytes.push_back(static_cast<char>(dtype));
      spec_bytes.push_back(static_cast<char>(flags));
      RETURN_IF_ERROR(c.AddWithTruncated(absl::StrCat(name, ".flags", int{flags}),
                                         JoinParts({spec_bytes, spec.key_sha256, bytes})));
    }
  }
  fs::remove(path);
  return absl::OkStatus();
}

absl::Status StoreManifestSeeds(const std::string& out) {
  Corpus c(out, "store_manifest");
  // A complete store: contexts [0, 3) of 3 tokens without BOS -> 2 rows each,
  // 2 contexts per chunk -> chunk 0 has 4 rows, chunk 1 has 2; d = 4.
  const std::string dir = (fs::temp_directory_path() / "saelab-seed-store").string();
  fs::create_directories(dir);
  for (const auto& [name, dtype] : std::vector<std::pair<std::string, ActivationStoreKey::Dtype>>{
           {"float32", ActivationStoreKey::FLOAT32}, {"float16", ActivationStoreKey::FLOAT16}}) {
    ActivationStoreManifest m;
    m.set_version(kStoreFormatVersion);
    *m.mutable_key() = SeedKey(dtype);
    m.set_key_sha256(StoreKeySha256(m.key()));
    m.set_d(4);
    m.set_contexts_per_chunk(2);
    m.set_rows_per_context(RowsPerContext(m.key()));
    m.set_num_rows(3 * m.rows_per_context());
    std::vector<std::string> chunk_bytes;
    for (int64_t i = 0; i < 2; ++i) {
      const int64_t rows = i == 0 ? 4 : 2;
      const ChunkSpec spec{i, rows, 4, dtype, m.key_sha256()};
      const torch::Tensor values =
          torch::arange(rows * 4, torch::kFloat).reshape({rows, 4}).to(StoreTorchDtype(dtype));
      const std::string path = dir + "/" + ChunkFileName(i);
      ASSIGN_OR_RETURN(std::string sha, WriteChunk(path, values, spec));
      ActivationStoreManifest::Chunk* chunk = m.add_chunks();
      chunk->set_file(ChunkFileName(i));
      chunk->set_rows(rows);
      chunk->set_sha256(sha);
      ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
      chunk_bytes.push_back(bytes);
    }
    m.set_complete(true);
    for (int i = 0; i < 4; ++i) m.mutable_stats()->add_mean(0.5 * i);
    m.mutable_stats()->set_mean_norm(2.0);
    const std::string text = ToTextProto(m);
    for (const uint8_t flags : {0, 8, 15}) {
      RETURN_IF_ERROR(c.Add(absl::StrCat(name, ".flags", int{flags}),
                            JoinParts({std::string(1, static_cast<char>(flags)), text,
                                       chunk_bytes[0], chunk_bytes[1]})));
    }
    RETURN_IF_ERROR(c.Add(absl::StrCat(name, ".truncated_chunk"),
                          JoinParts({std::string(1, '\0'), text, chunk_bytes[0],
                                     chunk_bytes[1].substr(0, chunk_bytes[1].size() / 2)})));
    ActivationStoreManifest incomplete = m;
    incomplete.set_complete(false);
    incomplete.clear_stats();
    incomplete.mutable_chunks()->RemoveLast();
    RETURN_IF_ERROR(c.Add(absl::StrCat(name, ".incomplete"),
                          JoinParts({std::string(1, '\0'), ToTextProto(incomplete),
                                     chunk_bytes[0], ""})));
  }
  fs::remove_all(dir);
  RETURN_IF_ERROR(c.Add("json_manifest_v1", JoinParts({std::string(1, '\0'), R"({"version": 1})", "", ""})));
  return c.Add("deep_braces", JoinParts({std::string(1, '\1'), Repeat("key { ", kDeep), "", ""}));
}

absl::Status NpySeeds(const std::string& repo, const std::string& out) {
  Corpus c(out, "npy");
  for (const auto& entry : fs::directory_iterator(repo + "/harness/testdata/npy")) {
    if (entry.path().extension() != ".npy") continue;
    ASSIGN_OR_RETURN(std::string bytes, ReadFile(entry.path().string()));
    RETURN_IF_ERROR(c.AddWithTruncated(entry.path().filename().string(), bytes));
  }
  for (const auto& [name, tensor] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"f16_2x2x2", torch::arange(8, torch::kFloat).reshape({2, 2, 2}).to(torch::kHalf)},
           {"i32_0", torch::zeros({0}, torch::kInt)},
           {"i64_3x1", torch::arange(3, torch::kLong).reshape({3, 1})}}) {
    ASSIGN_OR_RETURN(std::string bytes, SerializeNpy(tensor));
    RETURN_IF_ERROR(c.Add(name + ".npy", bytes));
  }
  return absl::OkStatus();
}

absl::Status Main(const std::string& repo, const std::string& out) {
  RETURN_IF_ERROR(JsonSeeds(repo, out));
  RETURN_IF_ERROR(HfConfigSeeds(repo, out));
  RETURN_IF_ERROR(SafetensorsSeeds(repo, out));
  RETURN_IF_ERROR(SaeLensSeeds(repo, out));
  RETURN_IF_ERROR(SparsifySeeds(repo, out));
  RETURN_IF_ERROR(TextprotoSeeds(repo, out));
  RETURN_IF_ERROR(TokenizerSeeds(out));
  RETURN_IF_ERROR(TokenShardSeeds(out));
  RETURN_IF_ERROR(StoreChunkSeeds(out));
  RETURN_IF_ERROR(StoreManifestSeeds(out));
  return NpySeeds(repo, out);
}

}  // namespace
}  // namespace saelab

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: make_seed_corpora REPO_ROOT OUT_DIR\n");
    return 2;
  }
  const absl::Status status = saelab::Main(argv[1], argv[2]);
  if (!status.ok()) {
    std::fprintf(stderr, "make_seed_corpora: %s\n", status.ToString().c_str());
    return 1;
  }
  return 0;
}
