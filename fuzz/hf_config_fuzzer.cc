// Fuzzes the reading of a Hugging Face GPT-2 directory
// (data/subject_model/gpt2_config.h ParseGpt2ConfigJson on config.json, and
// gpt2_model.h Gpt2Model::LoadHfDirectory on config.json + model.safetensors).
// The input is split into the two files (fuzz_support.h SplitParts: a
// 4-byte length, then config.json, then the rest is model.safetensors).
//
// Asserts, beyond "no crash" (and no allocation sized by an unchecked
// config value: ASan's allocation limits report those):
//  - errors name the file (config.json) or the directory;
//  - an accepted config.json is valid (ValidateGpt2Config) and round-trips:
//    Gpt2ConfigToJson parses back to the same config;
//  - a loaded model has the config that config.json holds.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "data/subject_model/gpt2_config.h"
#include "data/subject_model/gpt2_model.h"
#include "fuzz/fuzz_support.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

bool SameConfig(const saelab::Gpt2Config& a, const saelab::Gpt2Config& b) {
  return a.n_layer == b.n_layer && a.n_head == b.n_head && a.n_embd == b.n_embd &&
         a.n_inner == b.n_inner && a.n_positions == b.n_positions &&
         a.vocab_size == b.vocab_size && a.layer_norm_epsilon == b.layer_norm_epsilon &&
         a.activation_function == b.activation_function && a.bos_token_id == b.bos_token_id &&
         a.eos_token_id == b.eos_token_id;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = saelab::fuzz::ScratchPath("hf_model");
  static const bool made = (saelab::fuzz::MakeDirOrDie(dir), true);
  (void)made;
  const std::string config_path = dir + "/config.json";
  const std::vector<absl::string_view> parts =
      saelab::fuzz::SplitParts(saelab::fuzz::AsStringView(data, size), 2);

  absl::StatusOr<saelab::Gpt2Config> config = saelab::ParseGpt2ConfigJson(parts[0], config_path);
  CheckErrorNames(config.status(), config_path, "ParseGpt2ConfigJson");
  if (config.ok()) {
    const absl::Status valid = saelab::ValidateGpt2Config(*config, config_path);
    FuzzCheck(valid.ok(), absl::StrCat("an accepted config.json is invalid: ", valid.ToString()));
    const std::string json = saelab::Gpt2ConfigToJson(*config);
    absl::StatusOr<saelab::Gpt2Config> again = saelab::ParseGpt2ConfigJson(json, config_path);
    FuzzCheck(again.ok() && SameConfig(*again, *config),
              absl::StrCat("Gpt2ConfigToJson does not round-trip: ", json));
  }

  saelab::fuzz::WriteFileOrDie(config_path, parts[0]);
  saelab::fuzz::WriteFileOrDie(dir + "/model.safetensors", parts[1]);
  absl::StatusOr<saelab::Gpt2Model> model = saelab::Gpt2Model::LoadHfDirectory(dir);
  CheckErrorNames(model.status(), dir, "Gpt2Model::LoadHfDirectory");
  if (model.ok()) {
    FuzzCheck(config.ok() && SameConfig(model->config(), *config),
              "LoadHfDirectory loaded a model whose config differs from config.json's");
  }
  return 0;
}
