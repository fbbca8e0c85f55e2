// The one guarded reader for untrusted JSON (safetensors headers, HF
// config.json and vocab.json, SAELens/sparsify cfg.json), and typed reads of
// its fields with errors that name the file and the key.
//
//   ASSIGN_OR_RETURN(nlohmann::json cfg, ParseJson(text, path));
//   ASSIGN_OR_RETURN(int64_t d_in, RequiredPositiveInteger(cfg, path, "d_in"));
//   // error: "<path>: key 'd_in' is missing" / "... must be >= 1, got 0"
#ifndef SAELAB_HARNESS_JSON_FIELDS_H_
#define SAELAB_HARNESS_JSON_FIELDS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace saelab {

// Deeper nesting than any config or header saelab reads needs.
inline constexpr int kMaxJsonDepth = 256;

// `text` as JSON, or InvalidArgument "<context>: not valid JSON: <why>".
// Nesting deeper than max_depth is refused before the JSON library sees the
// text ("... nested deeper than 256 levels at byte N"): the library recurses
// on nested values, and a crafted file ~100,000 levels deep overflowed the
// stack (a crash, not an error). The scan is linear and skips strings.
absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view context,
                                         int max_depth = kMaxJsonDepth);

// InvalidArgument "<path>: key '<key>' <what>".
absl::Status KeyError(const std::string& path, const std::string& key, absl::string_view what);

// The value at `key` of a JSON object, or nullptr if absent.
const nlohmann::json* FindKey(const nlohmann::json& object, const std::string& key);

// An integer, or a float with an integral value (JSON writers differ).
absl::StatusOr<int64_t> IntegerValue(const nlohmann::json& value, const std::string& path,
                                     const std::string& key);

// The integer >= 1 at `key`; absent or null is "is missing".
absl::StatusOr<int64_t> RequiredPositiveInteger(const nlohmann::json& object,
                                                const std::string& path, const std::string& key);

}  // namespace saelab

#endif  // SAELAB_HARNESS_JSON_FIELDS_H_
