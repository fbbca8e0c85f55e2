// Test helpers shared by saelens_test and sparsify_test: scratch
// directories, cfg.json edits and tolerance checks.
#ifndef SAELAB_SAE_INTERCHANGE_INTERNAL_TESTING_H_
#define SAELAB_SAE_INTERCHANGE_INTERNAL_TESTING_H_

#include <torch/types.h>

#include <string>

#include "nlohmann/json.hpp"

namespace saelab {
namespace interchange_internal {

// The JSON in the file at `path` (which must exist and parse).
nlohmann::json ReadJson(const std::string& path);

// Writes `json` to `path`; a failed write fails the test.
void WriteJson(const std::string& path, const nlohmann::json& json);

// |a - b| <= rtol * max|b| elementwise: relative to the tensor's scale, so
// entries that are 0 in one and 1e-9 in the other do not count as errors.
void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, double rtol,
                 const std::string& what);

}  // namespace interchange_internal
}  // namespace saelab

#endif  // SAELAB_SAE_INTERCHANGE_INTERNAL_TESTING_H_
