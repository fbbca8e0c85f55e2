// The register-blocked row ops against the plain loops they replace: the
// same bits, for widths with and without 64- and 8-float tails.
#include "sae/kernels/internal/row_ops.h"

#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace saelab {
namespace kernels_internal {
namespace {

std::vector<float> Random(int64_t count, std::mt19937* rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(count);
  for (float& x : v) x = normal(*rng);
  return v;
}

bool SameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

class RowOpsTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(RowOpsTest, AxpyEntriesEqualsAxpyPerEntry) {
  const int64_t d = GetParam(), count = 37;
  std::mt19937 rng(static_cast<uint32_t>(d));
  const std::vector<float> rows = Random(count * d, &rng);
  std::vector<float> coefs = Random(count, &rng);
  for (int64_t e = 0; e < count; e += 5) coefs[e] = 0.0f;  // the entries SkipZero leaves out
  const std::vector<float> start = Random(d, &rng);
  for (bool skip_zero : {false, true}) {
    std::vector<float> expected = start, actual = start;
    for (int64_t e = 0; e < count; ++e) {
      if (skip_zero && coefs[e] == 0.0f) continue;
      Axpy(d, coefs[e], rows.data() + e * d, expected.data());
    }
    auto coef = [&](int64_t e) { return coefs[e]; };
    auto row = [&](int64_t e) { return rows.data() + e * d; };
    if (skip_zero) {
      AxpyEntries<true>(d, count, coef, row, actual.data());
    } else {
      AxpyEntries(d, count, coef, row, actual.data());
    }
    EXPECT_TRUE(SameBits(expected, actual)) << "d " << d << " skip_zero " << skip_zero;
  }
}

TEST_P(RowOpsTest, DotEntriesEqualsDot) {
  const int64_t d = GetParam();
  std::mt19937 rng(static_cast<uint32_t>(d) + 2);
  for (int64_t count : {1, 4, 6, 13}) {
    const std::vector<float> a = Random(d, &rng), rows = Random(count * d, &rng);
    std::vector<float> expected(count), actual(count, -1.0f);
    for (int64_t e = 0; e < count; ++e) expected[e] = Dot(d, a.data(), rows.data() + e * d);
    DotEntries(
        d, a.data(), count, [&](int64_t e) { return rows.data() + e * d; },
        [&](int64_t e, float value) { actual[e] = value; });
    EXPECT_TRUE(SameBits(expected, actual)) << "d " << d << " count " << count;
  }
}

INSTANTIATE_TEST_SUITE_P(Widths, RowOpsTest, ::testing::Values(1, 7, 8, 32, 40, 64, 77, 100, 512, 768, 771));

}  // namespace
}  // namespace kernels_internal
}  // namespace saelab
