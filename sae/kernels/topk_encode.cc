#include "sae/kernels/topk_encode.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "harness/parallel_for.h"

namespace saelab {
namespace {

constexpr int64_t kColumnQuantum = 64;

struct Entry {
  float value;
  int64_t index;
};

// The selection order: larger value first, then lower index.
inline bool Before(const Entry& a, const Entry& b) {
  return a.value > b.value || (a.value == b.value && a.index < b.index);
}

// The best `capacity` entries seen, kept in a buffer of 2 * capacity: new
// entries are appended, and when the buffer fills, a selection
// (std::nth_element) keeps the best half and raises the admission
// threshold to the worst kept value. O(1) amortised per admitted entry,
// where a bounded heap pays O(log capacity) on each of the many entries
// admitted early in a row (AuxK keeps 512 of thousands of dead latents).
// The kept set is the unique top `capacity` under Before, however the
// entries arrive.
class BestEntries {
 public:
  // storage: 2 * capacity entries.
  BestEntries(Entry* storage, int64_t capacity) : buffer_(storage), capacity_(capacity) {}

  // Offers entries in increasing index order: a later entry that ties the
  // worst kept value has a higher index, so it loses; only a strictly larger
  // value passes the threshold.
  void Offer(float value, int64_t index) {
    buffer_[size_++] = {value, index};
    if (size_ == 2 * capacity_) Shrink();
  }

  // Scans z[0, cols) for columns first_index + j.
  void OfferRow(const float* z, int64_t cols, int64_t first_index) {
    int64_t j = 0;
    for (; j < cols && !selected_; ++j) Offer(z[j], first_index + j);
    // The hot loop: one comparison per element once a threshold is set.
    for (; j < cols; ++j) {
      if (z[j] > threshold_) Offer(z[j], first_index + j);
    }
  }

  // Scans z at the given block-relative columns (ascending).
  void OfferColumns(const float* z, const int64_t* columns, int64_t count, int64_t first_index) {
    for (int64_t c = 0; c < count; ++c) {
      const float v = z[columns[c]];
      if (!selected_ || v > threshold_) Offer(v, first_index + columns[c]);
    }
  }

  // Sorts the kept entries (best first) into values/indices.
  void Write(float* values, int64_t* indices) {
    if (size_ > capacity_) Shrink();
    std::sort(buffer_, buffer_ + size_, Before);
    for (int64_t i = 0; i < size_; ++i) {
      values[i] = buffer_[i].value;
      indices[i] = buffer_[i].index;
    }
  }

 private:
  void Shrink() {
    std::nth_element(buffer_, buffer_ + capacity_ - 1, buffer_ + size_, Before);
    size_ = capacity_;
    threshold_ = buffer_[capacity_ - 1].value;
    selected_ = true;
  }

  Entry* buffer_;
  int64_t capacity_;
  int64_t size_ = 0;
  bool selected_ = false;  // a selection ran: threshold_ admits
  float threshold_ = -std::numeric_limits<float>::infinity();
};

void CheckArguments(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                    const torch::Tensor& b_enc, const TopKEncodeOptions& options) {
  TORCH_CHECK(x_c.dim() == 2 && W_enc.dim() == 2 && b_enc.dim() == 1 &&
                  x_c.size(1) == W_enc.size(0) && b_enc.size(0) == W_enc.size(1),
              "TopKEncode: shapes x_c ", x_c.sizes(), ", W_enc ", W_enc.sizes(), ", b_enc ",
              b_enc.sizes(), " do not fit [batch, d] x [d, n] + [n]");
  TORCH_CHECK(x_c.scalar_type() == torch::kFloat && W_enc.scalar_type() == torch::kFloat &&
                  b_enc.scalar_type() == torch::kFloat,
              "TopKEncode: float32 tensors only");
  TORCH_CHECK(options.k >= 1 && options.k <= W_enc.size(1), "TopKEncode: k = ", options.k,
              " outside [1, n = ", W_enc.size(1), "]");
  TORCH_CHECK(options.k_aux >= 0, "TopKEncode: k_aux = ", options.k_aux, " < 0");
  TORCH_CHECK(!options.dead_mask.defined() ||
                  (options.dead_mask.dim() == 1 && options.dead_mask.size(0) == W_enc.size(1) &&
                   options.dead_mask.scalar_type() == torch::kBool),
              "TopKEncode: dead_mask must be [n] bool");
  TORCH_CHECK(options.block_rows >= 1 && options.block_cols >= 1, "TopKEncode: empty blocks");
}

// The dead latents in increasing order (empty when AuxK is off).
std::vector<int64_t> DeadLatents(const TopKEncodeOptions& options) {
  std::vector<int64_t> dead;
  if (options.k_aux == 0 || !options.dead_mask.defined()) return dead;
  const torch::Tensor mask = options.dead_mask.contiguous();
  const bool* m = mask.data_ptr<bool>();
  for (int64_t i = 0; i < mask.size(0); ++i) {
    if (m[i]) dead.push_back(i);
  }
  return dead;
}

}  // namespace

torch::Tensor TopKEncodeWorkspace::Block(int64_t rows, int64_t cols) {
  if (!storage_.defined() || storage_.numel() < rows * cols) {
    storage_ = torch::empty({rows * cols}, torch::kFloat);
  }
  return storage_.narrow(0, 0, rows * cols).view({rows, cols});
}

TopKCode TopKEncode(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                    const torch::Tensor& b_enc, const TopKEncodeOptions& options,
                    TopKEncodeWorkspace* workspace) {
  CheckArguments(x_c, W_enc, b_enc, options);
  const int64_t batch = x_c.size(0), n = W_enc.size(1), k = options.k;
  const std::vector<int64_t> dead = DeadLatents(options);
  const int64_t k_aux = std::min<int64_t>(options.k_aux, static_cast<int64_t>(dead.size()));

  TopKCode code;
  code.values = torch::empty({batch, k}, torch::kFloat);
  code.indices = torch::empty({batch, k}, torch::kInt64);
  if (k_aux > 0) {
    code.aux_values = torch::empty({batch, k_aux}, torch::kFloat);
    code.aux_indices = torch::empty({batch, k_aux}, torch::kInt64);
  }
  const int64_t block_rows = std::min(options.block_rows, std::max<int64_t>(batch, 1));
  // A multiple of 64 columns: OpenBLAS computes the columns past the last
  // multiple of its unroll with edge kernels that sum in another order, so
  // a block edge inside the matrix would change those columns' last bits.
  const int64_t block_cols =
      std::min(std::max(kColumnQuantum, options.block_cols / kColumnQuantum * kColumnQuantum), n);
  // Selection buffers for one row block, reused across blocks.
  std::vector<Entry> main_buffers(block_rows * 2 * k), aux_buffers(block_rows * 2 * k_aux);
  // Per column block: the dead latents inside it, relative to its start.
  std::vector<int64_t> dead_in_block;

  for (int64_t r0 = 0; r0 < batch; r0 += block_rows) {
    const int64_t rows = std::min(block_rows, batch - r0);
    std::vector<BestEntries> best, best_aux;
    best.reserve(rows);
    best_aux.reserve(rows);
    for (int64_t r = 0; r < rows; ++r) {
      best.emplace_back(main_buffers.data() + r * 2 * k, k);
      best_aux.emplace_back(aux_buffers.data() + r * 2 * k_aux, k_aux);
    }
    const torch::Tensor x_block = x_c.narrow(0, r0, rows);
    auto next_dead = dead.begin();
    for (int64_t c0 = 0; c0 < n; c0 += block_cols) {
      const int64_t cols = std::min(block_cols, n - c0);
      torch::Tensor z = workspace->Block(rows, cols);
      // z = b_enc + x_c W_enc on this block: the bias first and the GEMM
      // accumulating onto it (beta 1), which is how torch::addmm computes
      // the full product, so the bits match it.
      z.copy_(b_enc.narrow(0, c0, cols).unsqueeze(0).expand({rows, cols}));
      torch::addmm_out(z, z, x_block, W_enc.narrow(1, c0, cols));
      dead_in_block.clear();
      for (; next_dead != dead.end() && *next_dead < c0 + cols; ++next_dead) {
        dead_in_block.push_back(*next_dead - c0);
      }
      const float* z_data = z.data_ptr<float>();
      ParallelFor(0, rows, /*grain_size=*/8, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* z_row = z_data + r * cols;
          best[r].OfferRow(z_row, cols, c0);
          if (k_aux > 0) {
            best_aux[r].OfferColumns(z_row, dead_in_block.data(),
                                     static_cast<int64_t>(dead_in_block.size()), c0);
          }
        }
      });
    }
    float* values = code.values.data_ptr<float>();
    int64_t* indices = code.indices.data_ptr<int64_t>();
    ParallelFor(0, rows, /*grain_size=*/8, [&](int64_t begin, int64_t end) {
      for (int64_t r = begin; r < end; ++r) {
        best[r].Write(values + (r0 + r) * k, indices + (r0 + r) * k);
        if (k_aux > 0) {
          best_aux[r].Write(code.aux_values.data_ptr<float>() + (r0 + r) * k_aux,
                            code.aux_indices.data_ptr<int64_t>() + (r0 + r) * k_aux);
        }
      }
    });
  }
  return code;
}

TopKCode TopKEncodeReference(const torch::Tensor& x_c, const torch::Tensor& W_enc,
                             const torch::Tensor& b_enc, const TopKEncodeOptions& options) {
  CheckArguments(x_c, W_enc, b_enc, options);
  const torch::Tensor z = torch::addmm(b_enc, x_c, W_enc);  // [batch, n]
  TopKCode code;
  {
    auto [sorted, order] = z.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
    code.values = sorted.narrow(1, 0, options.k).contiguous();
    code.indices = order.narrow(1, 0, options.k).contiguous();
  }
  const int64_t n_dead =
      options.dead_mask.defined() ? options.dead_mask.sum().item<int64_t>() : 0;
  const int64_t k_aux = std::min(options.k_aux, n_dead);
  if (k_aux > 0) {
    const torch::Tensor z_dead = z.masked_fill(options.dead_mask.logical_not().unsqueeze(0),
                                               -std::numeric_limits<float>::infinity());
    auto [sorted, order] = z_dead.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
    code.aux_values = sorted.narrow(1, 0, k_aux).contiguous();
    code.aux_indices = order.narrow(1, 0, k_aux).contiguous();
  }
  return code;
}

}  // namespace saelab
