#include "sae/kernels/sparse_decode.h"

#include <torch/utils.h>

#include "gtest/gtest.h"

namespace saelab {
namespace {

struct Problem {
  torch::Tensor values, indices, W_dec, b_dec;
};

Problem Random(int64_t batch, int64_t k, int64_t n, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  Problem p;
  // Distinct indices per row, as TopK produces.
  p.indices = std::get<1>(torch::rand({batch, n}).topk(k, 1));
  p.values = torch::relu(torch::randn({batch, k}));  // some exact zeros, as after ReLU
  p.W_dec = torch::randn({n, d});
  p.b_dec = torch::randn({d});
  return p;
}

TEST(SparseDecodeTest, ForwardMatchesTheDenseReference) {
  for (auto [batch, k, n, d] : std::vector<std::array<int64_t, 4>>{{7, 3, 50, 9}, {64, 32, 4096, 48}, {5, 8, 8, 4}}) {
    Problem p = Random(batch, k, n, d, batch + k);
    torch::Tensor sparse = SparseDecode(p.values, p.indices, p.W_dec, p.b_dec);
    torch::Tensor dense = SparseDecodeReference(p.values, p.indices, p.W_dec, p.b_dec);
    EXPECT_TRUE(torch::allclose(sparse, dense, 1e-5, 1e-5)) << batch << " " << k << " " << n;
  }
}

TEST(SparseDecodeTest, GradientsMatchTheDenseReference) {
  Problem p = Random(16, 4, 100, 12, 3);
  torch::Tensor upstream = torch::randn({16, 12});
  auto grads = [&](bool sparse) {
    torch::Tensor v = p.values.clone().requires_grad_(true);
    torch::Tensor w = p.W_dec.clone().requires_grad_(true);
    torch::Tensor b = p.b_dec.clone().requires_grad_(true);
    torch::Tensor out = sparse ? SparseDecode(v, p.indices, w, b) : SparseDecodeReference(v, p.indices, w, b);
    (out * upstream).sum().backward();
    return std::vector<torch::Tensor>{v.grad(), w.grad(), b.grad()};
  };
  auto sparse = grads(true);
  auto dense = grads(false);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(torch::allclose(sparse[i], dense[i], 1e-5, 1e-5)) << i;
  // Only the rows some token used get a decoder gradient.
  torch::Tensor used = torch::zeros({100}, torch::kBool).index_fill_(0, p.indices.reshape(-1), true);
  EXPECT_EQ(sparse[1].index({used.logical_not()}).abs().sum().item<float>(), 0.0f);
}

TEST(SparseDecodeTest, RaggedRowsMatchTheReference) {
  // Row 0 has 2 active latents, row 1 none, row 2 three.
  torch::Tensor W = torch::randn({6, 4});
  torch::Tensor b = torch::randn({4});
  torch::Tensor values = torch::tensor({1.5f, -2.0f, 0.5f, 3.0f, 1.0f});
  torch::Tensor indices = torch::tensor({0, 5, 1, 2, 3}, torch::kInt64);
  torch::Tensor offsets = torch::tensor({0, 2, 2}, torch::kInt64);
  torch::Tensor out = SparseDecodeRagged(values, indices, offsets, W, b);
  EXPECT_TRUE(torch::allclose(out[0], b + 1.5 * W[0] - 2.0 * W[5], 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(out[1], b));
  EXPECT_TRUE(torch::allclose(out[2], b + 0.5 * W[1] + 3.0 * W[2] + 1.0 * W[3], 1e-5, 1e-6));
}

TEST(SparseDecodeTest, KEqualToNAndSameSeedAreConsistent) {
  Problem p = Random(9, 8, 8, 5, 4);
  torch::Tensor a = SparseDecode(p.values, p.indices, p.W_dec, p.b_dec);
  EXPECT_TRUE(torch::equal(a, SparseDecode(p.values, p.indices, p.W_dec, p.b_dec)));
  EXPECT_TRUE(torch::allclose(a, SparseDecodeReference(p.values, p.indices, p.W_dec, p.b_dec), 1e-5, 1e-5));
}

}  // namespace
}  // namespace saelab
