#include "data/subject_model/gpt2_config.h"

#include <cmath>
#include <utility>

#include "absl/strings/str_cat.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using Json = nlohmann::json;
// Written files keep transformers' key order, readable and diffable.
using OrderedJson = nlohmann::ordered_json;

// The integer at `key`, or `fallback` when absent or null.
absl::StatusOr<int64_t> OptionalInteger(const Json& object, const std::string& path,
                                        const std::string& key, int64_t fallback) {
  const Json* value = FindKey(object, key);
  if (value == nullptr || value->is_null()) return fallback;
  return IntegerValue(*value, path, key);
}

absl::Status RequireBoolIfPresent(const Json& object, const std::string& path,
                                  const std::string& key, bool required, absl::string_view why) {
  const Json* value = FindKey(object, key);
  if (value == nullptr || value->is_null()) return absl::OkStatus();
  if (!value->is_boolean()) {
    return KeyError(path, key, absl::StrCat("must be true or false, got ", value->dump()));
  }
  if (value->get<bool>() != required) {
    return KeyError(path, key,
                    absl::StrCat("is ", value->dump(), "; saelab's GPT-2 supports only ",
                                 required ? "true" : "false", " (", why, ")"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateGpt2Config(const Gpt2Config& config, const std::string& name_for_errors) {
  auto bad = [&](absl::string_view field, absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(name_for_errors, ": ", field, " ", what));
  };
  const std::pair<const char*, int64_t> positives[] = {
      {"n_layer", config.n_layer},         {"n_head", config.n_head},
      {"n_embd", config.n_embd},           {"n_positions", config.n_positions},
      {"vocab_size", config.vocab_size},
  };
  for (const auto& [name, value] : positives) {
    if (value < 1) return bad(name, absl::StrCat("must be >= 1, got ", value));
    // Sizes come from config.json: an unbounded n_embd overflowed 4 * n_embd
    // (fuzz/crashes/hf_config/).
    if (value > kMaxGpt2Size) {
      return bad(name, absl::StrCat("must be at most ", kMaxGpt2Size, ", got ", value));
    }
  }
  if (config.n_embd % config.n_head != 0) {
    return bad("n_embd", absl::StrCat("(", config.n_embd, ") must be a multiple of n_head (",
                                      config.n_head, ")"));
  }
  if (config.n_inner < 0 || config.n_inner > kMaxGpt2Size) {
    return bad("n_inner", absl::StrCat("must be in [0, ", kMaxGpt2Size, "] (0: 4 * n_embd), got ",
                                       config.n_inner));
  }
  if (!(std::isfinite(config.layer_norm_epsilon) && config.layer_norm_epsilon > 0)) {
    return bad("layer_norm_epsilon",
               absl::StrCat("must be finite and > 0, got ", config.layer_norm_epsilon));
  }
  if (config.activation_function != "gelu_new") {
    return bad("activation_function",
               absl::StrCat("is '", config.activation_function,
                            "'; saelab's GPT-2 supports only 'gelu_new' (GELU, tanh "
                            "approximation; 'gelu_pytorch_tanh' is read as it)"));
  }
  for (const auto& [name, id] : {std::pair<const char*, int64_t>{"bos_token_id", config.bos_token_id},
                                 std::pair<const char*, int64_t>{"eos_token_id", config.eos_token_id}}) {
    if (id < -1 || id >= config.vocab_size) {
      return bad(name, absl::StrCat("must be in [0, vocab_size = ", config.vocab_size,
                                    ") or absent, got ", id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<Gpt2Config> ParseGpt2ConfigJson(absl::string_view text,
                                               const std::string& path_for_errors) {
  const std::string& path = path_for_errors;
  ASSIGN_OR_RETURN(Json json, ParseJson(text, path));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": not a JSON object"));
  }

  if (const Json* model_type = FindKey(json, "model_type");
      model_type != nullptr && !model_type->is_null()) {
    if (!model_type->is_string() || model_type->get<std::string>() != "gpt2") {
      return KeyError(path, "model_type",
                      absl::StrCat("is ", model_type->dump(),
                                   "; saelab reads only GPT-2-architecture models (\"gpt2\")"));
    }
  }

  Gpt2Config config;
  ASSIGN_OR_RETURN(config.n_layer, RequiredPositiveInteger(json, path, "n_layer"));
  ASSIGN_OR_RETURN(config.n_head, RequiredPositiveInteger(json, path, "n_head"));
  ASSIGN_OR_RETURN(config.n_embd, RequiredPositiveInteger(json, path, "n_embd"));
  ASSIGN_OR_RETURN(config.vocab_size, RequiredPositiveInteger(json, path, "vocab_size"));
  // transformers reads n_positions; n_ctx is the name in the oldest configs.
  const Json* n_positions = FindKey(json, "n_positions");
  if (n_positions != nullptr && !n_positions->is_null()) {
    ASSIGN_OR_RETURN(config.n_positions, RequiredPositiveInteger(json, path, "n_positions"));
  } else if (const Json* n_ctx = FindKey(json, "n_ctx"); n_ctx != nullptr && !n_ctx->is_null()) {
    ASSIGN_OR_RETURN(config.n_positions, RequiredPositiveInteger(json, path, "n_ctx"));
  } else {
    return KeyError(path, "n_positions", "is missing (and so is its old name 'n_ctx')");
  }
  ASSIGN_OR_RETURN(config.n_inner, OptionalInteger(json, path, "n_inner", 0));
  if (config.n_inner < 0 || config.n_inner > kMaxGpt2Size) {
    return KeyError(path, "n_inner",
                    absl::StrCat("must be in [1, ", kMaxGpt2Size, "] or null, got ", config.n_inner));
  }

  if (const Json* eps = FindKey(json, "layer_norm_epsilon"); eps != nullptr && !eps->is_null()) {
    if (!eps->is_number()) {
      return KeyError(path, "layer_norm_epsilon", absl::StrCat("must be a number, got ", eps->dump()));
    }
    config.layer_norm_epsilon = eps->get<double>();
    if (!(std::isfinite(config.layer_norm_epsilon) && config.layer_norm_epsilon > 0)) {
      return KeyError(path, "layer_norm_epsilon", absl::StrCat("must be > 0, got ", eps->dump()));
    }
  }
  if (const Json* act = FindKey(json, "activation_function"); act != nullptr && !act->is_null()) {
    if (!act->is_string()) {
      return KeyError(path, "activation_function",
                      absl::StrCat("must be a string, got ", act->dump()));
    }
    std::string name = act->get<std::string>();
    // transformers' "gelu_pytorch_tanh" is the same function as "gelu_new".
    if (name != "gelu_new" && name != "gelu_pytorch_tanh") {
      return KeyError(path, "activation_function",
                      absl::StrCat("is '", name,
                                   "'; saelab's GPT-2 supports only 'gelu_new' and "
                                   "'gelu_pytorch_tanh' (GELU, tanh approximation)"));
    }
  }
  ASSIGN_OR_RETURN(config.bos_token_id, OptionalInteger(json, path, "bos_token_id", -1));
  ASSIGN_OR_RETURN(config.eos_token_id, OptionalInteger(json, path, "eos_token_id", -1));

  RETURN_IF_ERROR(RequireBoolIfPresent(json, path, "tie_word_embeddings", true,
                                       "the unembedding is the token embedding"));
  RETURN_IF_ERROR(RequireBoolIfPresent(json, path, "scale_attn_weights", true,
                                       "attention scores are scaled by 1/sqrt(d_head)"));
  RETURN_IF_ERROR(RequireBoolIfPresent(json, path, "scale_attn_by_inverse_layer_idx", false,
                                       "no per-layer attention scaling"));
  RETURN_IF_ERROR(RequireBoolIfPresent(json, path, "reorder_and_upcast_attn", false,
                                       "attention is computed in the model's dtype"));
  RETURN_IF_ERROR(ValidateGpt2Config(config, path));
  return config;
}

absl::StatusOr<Gpt2Config> ReadGpt2Config(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseGpt2ConfigJson(text, path);
}

std::string Gpt2ConfigToJson(const Gpt2Config& config) {
  OrderedJson json;
  json["architectures"] = OrderedJson::array({"GPT2LMHeadModel"});
  json["model_type"] = "gpt2";
  json["vocab_size"] = config.vocab_size;
  json["n_positions"] = config.n_positions;
  json["n_ctx"] = config.n_positions;
  json["n_embd"] = config.n_embd;
  json["n_layer"] = config.n_layer;
  json["n_head"] = config.n_head;
  json["n_inner"] = config.n_inner > 0 ? OrderedJson(config.n_inner) : OrderedJson(nullptr);
  json["activation_function"] = config.activation_function;
  json["layer_norm_epsilon"] = config.layer_norm_epsilon;
  json["tie_word_embeddings"] = true;
  json["scale_attn_weights"] = true;
  json["scale_attn_by_inverse_layer_idx"] = false;
  json["reorder_and_upcast_attn"] = false;
  if (config.bos_token_id >= 0) json["bos_token_id"] = config.bos_token_id;
  if (config.eos_token_id >= 0) json["eos_token_id"] = config.eos_token_id;
  json["torch_dtype"] = "float32";
  return json.dump(2) + "\n";
}

absl::Status WriteGpt2Config(const std::string& path, const Gpt2Config& config) {
  RETURN_IF_ERROR(ValidateGpt2Config(config, path));
  return AtomicWriteFile(path, Gpt2ConfigToJson(config));
}

}  // namespace saelab
