#include "sae/interchange/internal/testing.h"

#include <cstdlib>

#include "gtest/gtest.h"
#include "harness/file_io.h"

namespace saelab {
namespace interchange_internal {

nlohmann::json ReadJson(const std::string& path) { return nlohmann::json::parse(*ReadFile(path)); }

void WriteJson(const std::string& path, const nlohmann::json& json) {
  ASSERT_TRUE(AtomicWriteFile(path, json.dump(2)).ok());
}

void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, double rtol,
                 const std::string& what) {
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  double scale = b.abs().max().item<double>();
  double error = (a - b).abs().max().item<double>();
  EXPECT_LE(error, rtol * scale) << what << ": max error " << error << " at scale " << scale;
}

}  // namespace interchange_internal
}  // namespace saelab
