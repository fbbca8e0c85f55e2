// BatchTopKTrainStep against the dense reference, BatchTopKLoss
// (sae/batch_topk.h) differentiated by autograd in float64: plain, AuxK with
// half the latents dead, rows saturated at the first K' (the encoder reruns
// with more candidates for those rows only, counted against a replay on
// the dense pre-activations), and fewer positive entries than k * batch; the
// kept entries are the dense batch top-k; the same bits on 1 and 2 threads.
#include "sae/kernels/batch_topk_train_step.h"

#include <algorithm>
#include <functional>
#include <vector>

#include "gtest/gtest.h"
#include "sae/kernels/internal/step_testing.h"
#include "sae/batch_topk.h"
#include "sae/sae.h"

namespace saelab {
namespace {

struct Case {
  std::string name;
  int64_t batch, d, n;
  BatchTopKTrainStepOptions options;
  torch::Tensor dead_mask;
  double bias_shift = 0.0;  // added to b_enc: < 0 leaves few positive entries
  // Scales the first rows up, so they hold far more than k of the batch's
  // largest entries (saturating their first candidates).
  bool hot_rows = false;
};

StepProblem Random(const Case& c, uint64_t seed) {
  return RandomStepProblem(c.batch, c.d, c.n, seed, c.bias_shift, c.hot_rows ? 3 : 0);
}

struct Dense {
  double loss, nmse, auxk;
  torch::Tensor f;  // [batch, n] float64
  std::vector<torch::Tensor> grads;
};

Dense Reference(const Case& c, const StepProblem& p) {
  std::vector<torch::Tensor> leaves = Float64Leaves(p);
  LossInputs inputs{p.x.to(torch::kFloat64), leaves[0], leaves[1], leaves[2], leaves[3]};
  inputs.dead_mask = c.dead_mask;
  BatchTopKLossOptions options;
  options.k = c.options.k;
  options.k_aux = c.options.k_aux;
  options.auxk_coefficient = c.options.auxk_coefficient;
  options.sparse_decode = false;
  LossOutput out = BatchTopKLoss(inputs, options);
  out.loss.backward();
  Dense dense{out.loss.item<double>(), out.terms.at("nmse").item<double>(),
              out.terms.at("auxk").item<double>(), out.f.detach(), {}};
  for (const torch::Tensor& leaf : leaves) dense.grads.push_back(leaf.grad());
  return dense;
}

struct Sparse {
  BatchTopKTrainStepResult result;
  std::vector<torch::Tensor> grads;
};

Sparse RunStep(const Case& c, const StepProblem& p, TopKTrainStepWorkspace* workspace) {
  Sparse s;
  s.grads = NanGradients(p);
  s.result = BatchTopKTrainStep(p.x, {p.W_enc, p.b_enc, p.W_dec, p.b_dec}, c.dead_mask, c.options,
                                {s.grads[0], s.grads[1], s.grads[2], s.grads[3]}, workspace);
  return s;
}

std::vector<Case> Cases() {
  BatchTopKTrainStepOptions plain;
  plain.k = 8;
  plain.k_aux = 32;
  // The default first width (2k) saturates a row of these random inputs;
  // 4k saturates none, so "plain" runs one round.
  BatchTopKTrainStepOptions wide = plain;
  wide.candidates_per_row = 32;
  BatchTopKTrainStepOptions narrow = plain;
  narrow.candidates_per_row = 4;  // the scaled rows hold far more than 4 kept entries
  return {
      {"plain", 96, 24, 300, wide, torch::Tensor()},
      {"default_width", 96, 24, 300, plain, torch::Tensor()},
      {"auxk_half_dead", 96, 24, 300, plain, torch::arange(300) % 2 == 1},
      {"saturated_rows", 96, 24, 300, narrow, torch::arange(300) < 50, 0.0, /*hot_rows=*/true},
      {"few_positive", 96, 24, 300, plain, torch::Tensor(), /*bias_shift=*/-2.5},
  };
}

struct Rounds {
  int64_t rounds = 1;
  int64_t reencoded = 0;
};

// The candidate rounds, replayed on the dense pre-activations z = x_c W_enc
// + b_enc: each row's candidates are its w largest entries (w from
// candidates_per_row); the batch keeps its k * batch largest positive
// candidates; a row whose last candidate is kept is saturated, and only
// saturated rows get twice the candidates in the next round.
Rounds ExpectedRounds(const Case& c, const StepProblem& p) {
  const torch::Tensor z = torch::addmm(p.b_enc, p.x - p.b_dec, p.W_enc);
  const torch::Tensor sorted = std::get<0>(z.sort(/*stable=*/true, 1, /*descending=*/true));
  const auto zs = sorted.accessor<float, 2>();
  const int64_t kept_total = c.options.k * c.batch;
  std::vector<int64_t> width(c.batch, c.options.candidates_per_row > 0
                                          ? c.options.candidates_per_row
                                          : 2 * c.options.k);
  Rounds r;
  for (;;) {
    std::vector<float> positive;
    for (int64_t b = 0; b < c.batch; ++b) {
      for (int64_t s = 0; s < width[b] && zs[b][s] > 0; ++s) positive.push_back(zs[b][s]);
    }
    std::sort(positive.begin(), positive.end(), std::greater<float>());
    // Random float inputs: no ties at the cut, so values alone decide.
    const float cut = static_cast<int64_t>(positive.size()) > kept_total
                          ? positive[kept_total - 1]
                          : 0.0f;
    std::vector<int64_t> saturated;
    for (int64_t b = 0; b < c.batch; ++b) {
      const float last = zs[b][width[b] - 1];
      if (width[b] < c.n && last > 0 && last >= cut) saturated.push_back(b);
    }
    if (saturated.empty()) return r;
    ++r.rounds;
    r.reencoded += static_cast<int64_t>(saturated.size());
    for (int64_t b : saturated) width[b] = std::min(c.n, 2 * width[b]);
  }
}

TEST(BatchTopKTrainStepTest, MatchesTheFloat64DenseReference) {
  uint64_t seed = 20;
  for (const Case& c : Cases()) {
    const StepProblem p = Random(c, ++seed);
    const Dense want = Reference(c, p);
    TopKTrainStepWorkspace workspace;
    const Sparse got = RunStep(c, p, &workspace);
    EXPECT_NEAR(got.result.loss, want.loss, 1e-5 * want.loss) << c.name;
    EXPECT_NEAR(got.result.nmse, want.nmse, 1e-5 * want.nmse) << c.name;
    EXPECT_NEAR(got.result.auxk, want.auxk, 1e-5 * want.auxk + 1e-12) << c.name;
    // The kept entries are the dense batch top-k's non-zero entries.
    const torch::Tensor f = ScatterTopK(got.result.values, got.result.indices, c.n);
    EXPECT_TRUE(torch::equal(f != 0, want.f != 0)) << c.name;
    ExpectGradientsNear(got.grads, want.grads, 2e-5, c.name);
    const Rounds rounds = ExpectedRounds(c, p);
    EXPECT_EQ(got.result.candidate_rounds, rounds.rounds) << c.name;
    EXPECT_EQ(got.result.reencoded_rows, rounds.reencoded) << c.name;
    if (c.name == "saturated_rows") {
      EXPECT_GT(got.result.candidate_rounds, 1) << c.name;
      // Fewer rows than the whole batch per extra round (the 3 scaled rows
      // need the later rounds alone).
      EXPECT_LT(got.result.reencoded_rows, c.batch * (got.result.candidate_rounds - 1));
    }
    if (c.name == "plain") {
      EXPECT_EQ(got.result.candidate_rounds, 1) << c.name;
    }
    if (c.name == "few_positive") {
      EXPECT_LT((want.f > 0).sum().item<int64_t>(), c.batch * c.options.k) << "the case is vacuous";
    }
  }
}

TEST(BatchTopKTrainStepTest, SameBitsOnOneAndTwoThreads) {
  Case c = Cases()[1];
  c.batch = 300;
  c.n = 1000;
  c.dead_mask = torch::arange(1000) % 2 == 0;
  const StepProblem p = Random(c, 5);
  TopKTrainStepWorkspace workspace;
  ExpectSameBitsOnOneAndTwoThreads([&] {
    const Sparse s = RunStep(c, p, &workspace);
    return StepBits{s.result.loss, s.grads};
  });
}

}  // namespace
}  // namespace saelab
