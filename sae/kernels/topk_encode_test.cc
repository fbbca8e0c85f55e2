// TopKEncode (blocked, fused) against TopKEncodeReference (dense addmm and
// a stable sort): values and indices exactly equal, over block shapes that
// split rows and columns unevenly, k = 1 and k = n, AuxK with some, all and
// no latents dead and over thousands of them, exact ties, and 1 vs 2
// threads.
#include "sae/kernels/topk_encode.h"

#include <algorithm>
#include <utility>
#include <vector>

#include <ATen/Parallel.h>

#include "gtest/gtest.h"

namespace saelab {
namespace {

struct Problem {
  torch::Tensor x_c, W_enc, b_enc;
};

// Gaussian values rounded to a few fractional bits (x to 1/16, W and b to
// 1/256), so that every product and partial sum of the encoder GEMM is
// exact in float32 (under 24 significant bits for d <= 64) and the GEMM
// gives the same bits in any summation order. Random floats would not do:
// OpenBLAS's AVX2 sgemm kernel (Haswell; also its pick on AVX2-only CPUs
// such as AMD EPYC) rounds an element differently (by an ulp) depending on
// its position in the product and on the product's shape, which the blocked
// encoder's smaller GEMMs expose, while what is under test is the selection.
torch::Tensor Dyadic(torch::Tensor gaussian, double scale) {
  return torch::round(gaussian * scale) / scale;
}

Problem Random(int64_t batch, int64_t d, int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  return {Dyadic(torch::randn({batch, d}), 16), Dyadic(torch::randn({d, n}), 256),
          Dyadic(torch::randn({n}), 256)};
}

void ExpectSameCode(const TopKCode& got, const TopKCode& want, const std::string& what) {
  EXPECT_TRUE(torch::equal(got.values, want.values)) << what << ": values";
  EXPECT_TRUE(torch::equal(got.indices, want.indices)) << what << ": indices";
  ASSERT_EQ(got.aux_values.defined(), want.aux_values.defined()) << what;
  if (want.aux_values.defined()) {
    EXPECT_TRUE(torch::equal(got.aux_values, want.aux_values)) << what << ": aux values";
    EXPECT_TRUE(torch::equal(got.aux_indices, want.aux_indices)) << what << ": aux indices";
  }
}

TEST(TopKEncodeTest, EqualsTheDenseReferenceForAnyBlockShape) {
  const Problem p = Random(/*batch=*/300, /*d=*/40, /*n=*/700, /*seed=*/1);
  for (int64_t k : {1, 7, 64, 700}) {
    for (auto [rows, cols] : std::vector<std::pair<int64_t, int64_t>>{
             {256, 1024}, {64, 128}, {1, 700}, {300, 1}, {37, 333}, {37, 128}, {64, 333}, {29, 64}}) {
      TopKEncodeOptions options;
      options.k = k;
      options.block_rows = rows;
      options.block_cols = cols;
      TopKEncodeWorkspace workspace;
      ExpectSameCode(TopKEncode(p.x_c, p.W_enc, p.b_enc, options, &workspace),
                     TopKEncodeReference(p.x_c, p.W_enc, p.b_enc, options),
                     "k " + std::to_string(k) + " block " + std::to_string(rows) + "x" +
                         std::to_string(cols));
    }
  }
}

TEST(TopKEncodeTest, AuxKEqualsTheReferenceWithSomeAllAndNoLatentsDead) {
  const Problem p = Random(/*batch=*/200, /*d=*/24, /*n=*/500, /*seed=*/2);
  torch::manual_seed(3);
  const torch::Tensor some = torch::rand({500}) < 0.5;
  const torch::Tensor all = torch::ones({500}, torch::kBool);
  const torch::Tensor none = torch::zeros({500}, torch::kBool);
  const torch::Tensor few = torch::arange(500) % 100 == 7;  // 5 dead: k_aux' = 5
  for (const auto& [name, mask] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"some", some}, {"all", all}, {"none", none}, {"few", few}}) {
    TopKEncodeOptions options;
    options.k = 16;
    options.k_aux = 32;
    options.dead_mask = mask;
    options.block_rows = 64;
    options.block_cols = 96;
    TopKEncodeWorkspace workspace;
    const TopKCode got = TopKEncode(p.x_c, p.W_enc, p.b_enc, options, &workspace);
    ExpectSameCode(got, TopKEncodeReference(p.x_c, p.W_enc, p.b_enc, options), name);
    if (name == "none") EXPECT_FALSE(got.aux_values.defined());
    if (name == "few") EXPECT_EQ(got.aux_values.size(1), 5);
    if (name == "some") {
      // Every aux pick is a dead latent.
      EXPECT_TRUE(mask.index({got.aux_indices.reshape(-1)}).all().item<bool>());
    }
  }
}

TEST(TopKEncodeTest, TiesKeepTheLowerIndex) {
  // Latents i, i + 40, i + 80, ... share one encoder column and bias, so
  // every value appears five times, in different column blocks (64 wide);
  // the cut at k = 12 splits a tie.
  torch::manual_seed(4);
  const torch::Tensor columns = Dyadic(torch::randn({8, 40}), 256);
  const torch::Tensor W_enc = columns.repeat({1, 5});  // [8, 200]
  const torch::Tensor b_enc = torch::zeros({200});
  const torch::Tensor x_c = Dyadic(torch::randn({33, 8}), 16);
  TopKEncodeOptions options;
  options.k = 12;
  options.block_cols = 64;
  // AuxK over the odd latents (each of their values five times: the copies
  // i + 40 s keep the parity of i): k_aux = 7 splits a tie too.
  options.k_aux = 7;
  options.dead_mask = torch::arange(200) % 2 == 1;
  TopKEncodeWorkspace workspace;
  const TopKCode got = TopKEncode(x_c, W_enc, b_enc, options, &workspace);
  ExpectSameCode(got, TopKEncodeReference(x_c, W_enc, b_enc, options), "ties");
  // AuxK by hand for row 0: the odd latents' values, best first, lower
  // index first on ties; the first 7, then in ascending latent order.
  const torch::Tensor z0 = torch::addmm(b_enc, x_c, W_enc)[0];
  std::vector<std::pair<float, int64_t>> odd;
  for (int64_t i = 1; i < 200; i += 2) odd.push_back({z0[i].item<float>(), i});
  std::stable_sort(odd.begin(), odd.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> want;
  for (int j = 0; j < 7; ++j) want.push_back(odd[j].second);
  std::sort(want.begin(), want.end());
  ASSERT_EQ(odd[6].first, odd[7].first) << "the cut at 7 must split a tie";
  for (int j = 0; j < 7; ++j) EXPECT_EQ(got.aux_indices[0][j].item<int64_t>(), want[j]) << j;
  // The row's best value comes first at its lowest copy, then the copies in
  // increasing index order.
  for (int64_t r = 0; r < 33; ++r) {
    const int64_t first = got.indices[r][0].item<int64_t>();
    EXPECT_LT(first, 40) << r;
    for (int64_t s = 1; s < 5; ++s) EXPECT_EQ(got.indices[r][s].item<int64_t>(), first + 40 * s);
  }
}

// AuxK's selection over thousands of dead latents guesses its cut from a
// sample of every (count / 256)-th value. Rows z = x * w (d = 1, exact
// dyadic products; rows with x < 0 reverse the order) over crafted w: (a)
// Gaussian; (b) eight distinct values, so the cut splits a tie among
// hundreds; (c) every 16th latent far above the rest, so that the sample
// sees only those and its guess admits fewer than k_aux: the selection
// must fall back to all the values. Each against the sorting reference.
TEST(TopKEncodeTest, AuxKOverThousandsOfDeadLatentsEqualsTheReference) {
  constexpr int64_t n = 8192;
  torch::manual_seed(5);
  const torch::Tensor x_c = torch::tensor({1.0f, 0.5f, -1.0f, -0.25f, 2.0f}).unsqueeze(1);
  const torch::Tensor gaussian = Dyadic(torch::randn({1, n}), 256);
  const torch::Tensor eight_values = torch::randint(0, 8, {1, n}).to(torch::kFloat) / 8;
  torch::Tensor spiky = Dyadic(torch::rand({1, n}), 256);
  spiky.index_put_({0, torch::arange(0, n, 16)}, 100.0f);
  const torch::Tensor b_enc = torch::zeros({n});
  for (const auto& [name, W_enc] : std::vector<std::pair<std::string, torch::Tensor>>{
           {"gaussian", gaussian}, {"eight values", eight_values}, {"spiky", spiky}}) {
    for (int64_t k_aux : {1, 256, 700, 4096}) {
      TopKEncodeOptions options;
      options.k = 8;
      options.k_aux = k_aux;
      options.dead_mask = torch::arange(n) % 2 == 0;  // 4096 dead
      options.block_cols = 1000;
      TopKEncodeWorkspace workspace;
      ExpectSameCode(TopKEncode(x_c, W_enc, b_enc, options, &workspace),
                     TopKEncodeReference(x_c, W_enc, b_enc, options),
                     name + ", k_aux " + std::to_string(k_aux));
    }
  }
}

TEST(TopKEncodeTest, SameBitsOnOneAndTwoThreads) {
  const Problem p = Random(/*batch=*/512, /*d=*/64, /*n=*/2048, /*seed=*/5);
  TopKEncodeOptions options;
  options.k = 32;
  options.k_aux = 64;
  options.dead_mask = torch::arange(2048) % 3 == 0;
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  TopKEncodeWorkspace workspace;
  const TopKCode one = TopKEncode(p.x_c, p.W_enc, p.b_enc, options, &workspace);
  at::set_num_threads(2);
  const TopKCode two = TopKEncode(p.x_c, p.W_enc, p.b_enc, options, &workspace);
  at::set_num_threads(threads);
  ExpectSameCode(two, one, "threads");
}

TEST(TopKEncodeTest, RefusesBadShapesAndK) {
  const Problem p = Random(4, 3, 5, 6);
  TopKEncodeWorkspace workspace;
  TopKEncodeOptions options;
  options.k = 6;
  EXPECT_THROW(TopKEncode(p.x_c, p.W_enc, p.b_enc, options, &workspace), c10::Error);
  options.k = 2;
  EXPECT_THROW(TopKEncode(p.x_c.t(), p.W_enc, p.b_enc, options, &workspace), c10::Error);
}

}  // namespace
}  // namespace saelab
