// Matryoshka BatchTopK SAE: Bussmann, Nabeshima, Karvonen and Nanda,
// "Learning Multi-Level Features with Matryoshka Sparse Autoencoders"
// (2025), after Nabeshima's Matryoshka SAEs (2024). A BatchTopK SAE
// (sae/batch_topk.h) whose latents form nested dictionaries: the prefixes
// [0, m_1) c [0, m_2) c ... c [0, n) must each reconstruct x on their own.
//
//   z = (x - b_dec) W_enc + b_enc                 [B, n]
//   f = the batch top-k of ReLU(z)                [B, n]   (as BatchTopK)
//   x_hat_m = f[:, :m] W_dec[:m] + b_dec          [B, d]   for m in m_1, ..., n
//   loss = sum_m NMSE(x_hat_m, x) + auxk_coefficient * AuxK
//
// A latent in an early prefix is trained by every level's loss, one in the
// last group only by the full one; so the early latents take the broad
// directions (a parent feature that fires with each of its children) and
// later ones the refinements, where a plain SAE lets a child latent absorb
// its parent. Inference, the threshold, its calibration and the SAELens
// form ("jumprelu" with the scalar threshold per latent) are BatchTopK's;
// the "saelab" object in cfg.json records "matryoshka_batch_topk".
//
// Training runs BatchTopKLoss with prefix widths through autograd (the
// encoder gradient is a dense GEMM, unlike BatchTopK's sparse step); each
// level's decode is a gather-and-sum over the kept entries inside it.
//
//   SaeConfig config;
//   config.set_n_latents(4096);
//   config.mutable_matryoshka_batch_topk()->mutable_batch_topk()->set_k(32);
//   RETURN_IF_ERROR(ResolveSaeConfig(d_in, &config));   // widths [256, 1024]
//   std::unique_ptr<Sae> sae = CreateSae(config, d_in, seed);
#ifndef SAELAB_SAE_MATRYOSHKA_BATCH_TOPK_H_
#define SAELAB_SAE_MATRYOSHKA_BATCH_TOPK_H_

#include <cstdint>
#include <string>
#include <vector>

#include "sae/architecture.h"
#include "sae/batch_topk.h"
#include "sae/sae_config.pb.h"

namespace saelab {

class MatryoshkaBatchTopKSae : public BatchTopKSae {
 public:
  // config as ResolveSaeConfig leaves it (prefix_widths filled in and
  // checked); checked by the caller.
  MatryoshkaBatchTopKSae(int64_t d_in, int64_t n_latents, const MatryoshkaBatchTopKConfig& config,
                         uint64_t seed);

  std::string architecture() const override { return "matryoshka_batch_topk"; }
  // The inner widths m_1 < m_2 < ... (n_latents, the last level, excluded).
  using BatchTopKSae::prefix_widths;
};

// The default inner widths: n/16 and n/4, those of them in [1, n) and
// distinct (empty for n < 4).
std::vector<int64_t> DefaultMatryoshkaPrefixWidths(int64_t n_latents);

// The architecture table's row (sae/architecture.h): BatchTopK's recipe and
// SAELens form, the sparsity knob batch_topk.k.
const SaeArchitecture& MatryoshkaBatchTopKArchitecture();

}  // namespace saelab

#endif  // SAELAB_SAE_MATRYOSHKA_BATCH_TOPK_H_
