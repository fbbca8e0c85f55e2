#include "harness/seed.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

// Golden values computed independently with Python from the definition
// (FNV-1a 64 of the name, SplitMix64 finaliser, shift right by one):
//   def fnv(s): h=0xcbf29ce484222325
//     for c in s.encode(): h=((h^c)*0x100000001b3)&M
//   def sm(x): x=(x+0x9e3779b97f4a7c15)&M; x=((x^(x>>30))*0xbf58476d1ce4e5b9)&M
//     x=((x^(x>>27))*0x94d049bb133111eb)&M; return x^(x>>31)
//   sm(sm(root) ^ fnv(name)) >> 1
TEST(SeedTest, DerivedSeedsMatchTheDefinition) {
  EXPECT_EQ(DeriveSeed(0, "data"), uint64_t{5476729001359050424u});
  EXPECT_EQ(DeriveSeed(12345, "sae/topk_k8"), uint64_t{4109336522814622137u});
}

TEST(SeedTest, DistinctComponentsAndRootsGiveDistinctSeeds) {
  std::set<uint64_t> seen;
  for (int root = 0; root < 10; ++root) {
    for (int c = 0; c < 100; ++c) seen.insert(DeriveSeed(root, absl::StrCat("component", c)));
  }
  EXPECT_EQ(seen.size(), 1000u);
}

TEST(SeedTest, SeedTreeRecordsEachComponentOnceInOrder) {
  SeedTree seeds(42);
  uint64_t a = seeds.Derive("a");
  seeds.Derive("b");
  EXPECT_EQ(seeds.Derive("a"), a);
  ASSERT_EQ(seeds.records().size(), 2u);
  EXPECT_EQ(seeds.records()[0].first, "a");
  EXPECT_EQ(seeds.records()[1].first, "b");
  EXPECT_LT(a, uint64_t{1} << 63);
}

}  // namespace
}  // namespace saelab
