// Typed reads of JSON config fields (HF config.json, SAELens/sparsify
// cfg.json) with errors that name the file and the key.
//
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
