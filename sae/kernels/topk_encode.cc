#include "sae/kernels/topk_encode.h"

#include <algorithm>
#include <cmath>
#include <cstring>
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
// where a bounded heap pays O(log capacity) on each of the entries
// admitted early in a row. The kept set is the unique top `capacity` under Before, however the
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

// A float's bits as an unsigned key with the float's order (-0 read as +0,
// so that the two tie as they do in a comparison).
inline uint32_t OrderedKey(float v) {
  if (v == 0.0f) v = 0.0f;
  uint32_t u;
  std::memcpy(&u, &v, sizeof(u));
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// The number of keys[0, count) that are >= t. Written for GCC to
// vectorise (eight unsigned compares per AVX2 instruction).
inline int64_t CountAtLeast(const uint32_t* keys, int64_t count, uint32_t t) {
  uint32_t total = 0;
  for (int64_t j = 0; j < count; ++j) total += keys[j] >= t ? 1u : 0u;
  return total;
}

// The rank-th largest of keys[0, count) (1 <= rank <= count): the largest
// t with at least `rank` keys >= t, found bit by bit from the top, one
// counting pass per bit. 32 branch-free passes cost less than a radix
// histogram here: its increments of a few hot buckets wait on each other,
// and a comparison-based selection mispredicts.
inline uint32_t RankthLargest(const uint32_t* keys, int64_t count, int64_t rank) {
  uint32_t t = 0;
  for (int bit = 31; bit >= 0; --bit) {
    const uint32_t trial = t | (uint32_t{1} << bit);
    if (CountAtLeast(keys, count, trial) >= rank) t = trial;
  }
  return t;
}

// The top `keep` of values[0, count) under Before (larger value first, then
// lower index; index = latents[j]) written in ascending index order. The
// cut T, the keep-th largest OrderedKey, is found among the keys at or
// above a guess taken from every (count / 256)-th key: the guess ranks a
// few standard deviations below keep's share of that sample, so nearly
// always more than keep keys pass it and the search runs over about
// keep * 1.2 keys, not count; when fewer pass, over all of them. One pass
// in index order then takes the keys above T and the first of those equal
// to T. O(count) per row, no sort: AuxK keeps hundreds of thousands of
// dead latents, where sorting or heaping the kept entries per row cost more
// than the encoder's GEMM. keys: scratch of count entries; pool: scratch.
void SelectInIndexOrder(const float* values, const int64_t* latents, int64_t count, int64_t keep,
                        uint32_t* keys, std::vector<uint32_t>* pool, float* out_values,
                        int64_t* out_indices) {
  for (int64_t j = 0; j < count; ++j) keys[j] = OrderedKey(values[j]);
  const uint32_t* searched = keys;
  int64_t searched_count = count;
  constexpr int64_t kSamples = 256;
  if (count >= 4 * kSamples) {
    const int64_t stride = count / kSamples;
    pool->resize(count);
    uint32_t* kept = pool->data();
    for (int64_t s = 0; s < kSamples; ++s) kept[s] = keys[s * stride];
    const double expected = static_cast<double>(keep) * kSamples / count;
    const int64_t rank = static_cast<int64_t>(expected + 4.0 * std::sqrt(expected) + 8.0);
    if (rank < kSamples) {
      const uint32_t guess = RankthLargest(kept, kSamples, rank);
      int64_t size = 0;
      for (int64_t j = 0; j < count; ++j) {
        kept[size] = keys[j];
        size += keys[j] >= guess ? 1 : 0;
      }
      if (size >= keep) {
        searched = kept;
        searched_count = size;
      }
    }
  }
  const uint32_t cut = RankthLargest(searched, searched_count, keep);
  const int64_t above = cut == std::numeric_limits<uint32_t>::max()
                            ? 0
                            : CountAtLeast(searched, searched_count, cut + 1);
  // Taken: keys above the cut, and the first keep - above keys equal to it.
  // Stores run unconditionally (overwritten unless taken; out < keep) and
  // the count by arithmetic: a branch here mispredicts on every fourth key.
  const int64_t at_cut = CountAtLeast(searched, searched_count, cut) - above;
  int64_t out = 0;
  if (at_cut == keep - above) {  // every key at the cut is taken: no tie split
    for (int64_t j = 0; j < count && out < keep; ++j) {
      out_values[out] = values[j];
      out_indices[out] = latents[j];
      out += keys[j] >= cut ? 1 : 0;
    }
  } else {
    int64_t equal_left = keep - above;
    for (int64_t j = 0; j < count && out < keep; ++j) {
      const uint32_t key = keys[j];
      const int64_t take_equal = key == cut && equal_left > 0 ? 1 : 0;
      equal_left -= take_equal;
      out_values[out] = values[j];
      out_indices[out] = latents[j];
      out += (key > cut ? 1 : 0) | take_equal;
    }
  }
}

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
  std::vector<Entry> main_buffers(block_rows * 2 * k);
  // AuxK: each row's pre-activations of the dead latents, gathered over the
  // column blocks, and per column block the dead latents inside it.
  const int64_t n_dead = static_cast<int64_t>(dead.size());
  std::vector<float>& dead_values = workspace->dead_values;
  if (k_aux > 0) dead_values.resize(block_rows * n_dead);
  std::vector<int64_t> dead_in_block;

  for (int64_t r0 = 0; r0 < batch; r0 += block_rows) {
    const int64_t rows = std::min(block_rows, batch - r0);
    std::vector<BestEntries> best;
    best.reserve(rows);
    for (int64_t r = 0; r < rows; ++r) best.emplace_back(main_buffers.data() + r * 2 * k, k);
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
      const int64_t dead_before = next_dead - dead.begin();
      for (; next_dead != dead.end() && *next_dead < c0 + cols; ++next_dead) {
        dead_in_block.push_back(*next_dead - c0);
      }
      const float* z_data = z.data_ptr<float>();
      ParallelFor(0, rows, /*grain_size=*/8, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) {
          const float* z_row = z_data + r * cols;
          best[r].OfferRow(z_row, cols, c0);
          if (k_aux > 0) {
            float* gathered = dead_values.data() + r * n_dead + dead_before;
            for (size_t c = 0; c < dead_in_block.size(); ++c) gathered[c] = z_row[dead_in_block[c]];
          }
        }
      });
    }
    float* values = code.values.data_ptr<float>();
    int64_t* indices = code.indices.data_ptr<int64_t>();
    ParallelFor(0, rows, /*grain_size=*/8, [&](int64_t begin, int64_t end) {
      std::vector<uint32_t> keys(k_aux > 0 ? n_dead : 0), pool;
      for (int64_t r = begin; r < end; ++r) {
        best[r].Write(values + (r0 + r) * k, indices + (r0 + r) * k);
        if (k_aux > 0) {
          SelectInIndexOrder(dead_values.data() + r * n_dead, dead.data(), n_dead, k_aux,
                             keys.data(), &pool,
                             code.aux_values.data_ptr<float>() + (r0 + r) * k_aux,
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
    // The kept entries, in ascending latent order.
    auto [indices, positions] = order.narrow(1, 0, k_aux).sort(/*dim=*/1);
    code.aux_indices = indices.contiguous();
    code.aux_values = sorted.narrow(1, 0, k_aux).gather(1, positions).contiguous();
  }
  return code;
}

}  // namespace saelab
