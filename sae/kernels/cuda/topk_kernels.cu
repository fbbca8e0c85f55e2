// CUDA kernels of k-sparse SAE training and inference (topk_kernels.h).
// Products and sums use __fmul_rn / __fadd_rn where the CPU reference
// multiplies and adds separately, so that nvcc's default contraction into
// fused multiply-adds does not change the bits against it.
#include "sae/kernels/cuda/topk_kernels.h"

#include <cuda_bf16.h>

#include <cub/block/block_scan.cuh>
#include <cub/device/device_radix_sort.cuh>

namespace saelab {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kMaxK = 1024;
constexpr int kWarp = 32;

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

// An order-preserving map of floats to unsigned keys (larger float, larger
// key); -0 maps with +0, so that they tie as float comparison has it.
__device__ __forceinline__ uint32_t Key(float v) {
  if (v == 0.0f) v = 0.0f;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// One block per row: a radix select (four 8-bit digits) finds the k-th
// largest key T and how many entries equal to T are kept (the lowest
// indices); an ordered compaction (a block scan per tile of kThreads
// latents, in index order) collects the k entries; a bitonic sort in
// shared memory orders them.
template <typename T>
__global__ void RowTopKKernel(const T* z, const float* bias, const uint8_t* include, int64_t n,
                              int64_t ld, int k, int padded_k, bool order_by_index, float* values,
                              int64_t* indices) {
  using Scan = cub::BlockScan<int, kThreads>;
  __shared__ typename Scan::TempStorage scan_storage;
  __shared__ int histogram[256];
  __shared__ uint32_t s_prefix, s_mask;
  __shared__ int s_remaining, s_gt_base, s_eq_base;
  __shared__ uint32_t keys[kMaxK];
  __shared__ int32_t latents[kMaxK];

  const int64_t row = blockIdx.x;
  const T* z_row = z + row * ld;
  auto value_at = [&](int64_t i) {
    const float v = ToFloat(z_row[i]);
    return bias != nullptr ? __fadd_rn(v, bias[i]) : v;
  };
  auto included = [&](int64_t i) { return include == nullptr || include[i] != 0; };

  if (threadIdx.x == 0) {
    s_prefix = 0;
    s_mask = 0;
    s_remaining = k;
  }
  for (int shift = 24; shift >= 0; shift -= 8) {
    for (int b = threadIdx.x; b < 256; b += blockDim.x) histogram[b] = 0;
    __syncthreads();
    const uint32_t prefix = s_prefix, mask = s_mask;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
      if (!included(i)) continue;
      const uint32_t key = Key(value_at(i));
      if ((key & mask) == prefix) atomicAdd(&histogram[(key >> shift) & 255u], 1);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      int remaining = s_remaining;
      int bin = 255;
      for (; bin > 0; --bin) {
        if (histogram[bin] >= remaining) break;
        remaining -= histogram[bin];
      }
      s_prefix = prefix | (static_cast<uint32_t>(bin) << shift);
      s_mask = mask | (255u << shift);
      s_remaining = remaining;
      s_gt_base = 0;
      s_eq_base = 0;
    }
    __syncthreads();
  }
  const uint32_t threshold = s_prefix;
  const int take_equal = s_remaining;
  const int greater = k - take_equal;

  for (int64_t tile = 0; tile < n; tile += blockDim.x) {
    const int64_t i = tile + threadIdx.x;
    uint32_t key = 0;
    int is_greater = 0, is_equal = 0;
    if (i < n && included(i)) {
      key = Key(value_at(i));
      is_greater = key > threshold;
      is_equal = key == threshold;
    }
    // Both counts in one scan: greater in the low 16 bits, equal above.
    int before = 0, total = 0;
    Scan(scan_storage).ExclusiveSum(is_greater | (is_equal << 16), before, total);
    if (is_greater) {
      const int slot = s_gt_base + (before & 0xffff);
      keys[slot] = key;
      latents[slot] = static_cast<int32_t>(i);
    }
    if (is_equal) {
      const int rank = s_eq_base + (before >> 16);
      if (rank < take_equal) {
        keys[greater + rank] = key;
        latents[greater + rank] = static_cast<int32_t>(i);
      }
    }
    __syncthreads();
    if (threadIdx.x == 0) {
      s_gt_base += total & 0xffff;
      s_eq_base += total >> 16;
    }
    __syncthreads();
  }
  for (int j = k + threadIdx.x; j < padded_k; j += blockDim.x) {
    keys[j] = 0;  // sorts after every real entry
    latents[j] = 0x7fffffff;
  }
  __syncthreads();

  // a before b: larger key, then lower index (or lower index only).
  auto before = [&](int a, int b) {
    if (order_by_index) return latents[a] < latents[b];
    return keys[a] > keys[b] || (keys[a] == keys[b] && latents[a] < latents[b]);
  };
  for (int size = 2; size <= padded_k; size <<= 1) {
    for (int stride = size >> 1; stride > 0; stride >>= 1) {
      for (int t = threadIdx.x; t < padded_k; t += blockDim.x) {
        const int partner = t ^ stride;
        if (partner <= t) continue;
        const bool forward = (t & size) == 0;
        if (forward ? before(partner, t) : before(t, partner)) {
          const uint32_t key = keys[t];
          keys[t] = keys[partner];
          keys[partner] = key;
          const int32_t latent = latents[t];
          latents[t] = latents[partner];
          latents[partner] = latent;
        }
      }
      __syncthreads();
    }
  }
  for (int j = threadIdx.x; j < k; j += blockDim.x) {
    values[row * k + j] = value_at(latents[j]);
    indices[row * k + j] = latents[j];
  }
}

__global__ void SparseDecodeKernel(const float* values, const int64_t* indices, int64_t k,
                                   const float* W_dec, const float* b_dec, int64_t d, float* out) {
  const int64_t row = blockIdx.x;
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float sum = 0.0f;
    for (int64_t j = 0; j < k; ++j) {
      const float v = values[row * k + j];
      if (v != 0.0f) sum = __fadd_rn(sum, __fmul_rn(v, W_dec[indices[row * k + j] * d + c]));
    }
    out[row * d + c] = __fadd_rn(sum, b_dec[c]);
  }
}

__global__ void SparseEntryGradientsKernel(const float* G, const float* pre, const int64_t* indices,
                                           int64_t entries, int64_t k, const float* W_dec,
                                           int64_t d, float* dz) {
  const int64_t entry = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) / kWarp;
  const int lane = threadIdx.x % kWarp;
  if (entry >= entries) return;
  const int64_t row = entry / k;
  const float* g = G + row * d;
  const float* w = W_dec + indices[entry] * d;
  float sum = 0.0f;
  for (int64_t c = lane; c < d; c += kWarp) sum = __fadd_rn(sum, __fmul_rn(g[c], w[c]));
  for (int offset = kWarp / 2; offset > 0; offset /= 2) {
    sum = __fadd_rn(sum, __shfl_down_sync(0xffffffffu, sum, offset));
  }
  if (lane == 0) dz[entry] = pre[entry] > 0.0f ? sum : 0.0f;
}

__global__ void FillSortInputs(const int64_t* indices, int64_t entries, int32_t* keys,
                               int32_t* ids) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= entries) return;
  keys[e] = static_cast<int32_t>(indices[e]);
  ids[e] = static_cast<int32_t>(e);
}

// begin/end [n] (zeroed before): each latent's range in the sorted keys.
__global__ void LatentRanges(const int32_t* sorted_keys, int64_t entries, int32_t* begin,
                             int32_t* end) {
  const int64_t p = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (p >= entries) return;
  const int32_t key = sorted_keys[p];
  if (p == 0 || sorted_keys[p - 1] != key) begin[key] = static_cast<int32_t>(p);
  if (p == entries - 1 || sorted_keys[p + 1] != key) end[key] = static_cast<int32_t>(p + 1);
}

// One block per latent: its entries in (row, slot) order.
__global__ void LatentGradients(const float* G, const float* x_c, const float* pre,
                                const float* dz, const int32_t* sorted_ids, const int32_t* begin,
                                const int32_t* end, int64_t k, int64_t d, float* dW_dec,
                                float* dW_enc_t, float* db_enc) {
  const int64_t latent = blockIdx.x;
  const int32_t first = begin[latent], last = end[latent];
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    float dec = 0.0f, enc = 0.0f;
    for (int32_t p = first; p < last; ++p) {
      const int32_t e = sorted_ids[p];
      const int64_t row = e / k;
      const float v = fmaxf(pre[e], 0.0f);
      if (v == 0.0f) continue;  // z <= 0: no contribution (and dz is 0)
      dec = __fadd_rn(dec, __fmul_rn(v, G[row * d + c]));
      if (dz[e] != 0.0f) enc = __fadd_rn(enc, __fmul_rn(dz[e], x_c[row * d + c]));
    }
    dW_dec[latent * d + c] = dec;
    dW_enc_t[latent * d + c] = enc;
  }
  if (threadIdx.x == 0) {
    float bias = 0.0f;
    for (int32_t p = first; p < last; ++p) {
      const int32_t e = sorted_ids[p];
      if (pre[e] > 0.0f && dz[e] != 0.0f) bias = __fadd_rn(bias, dz[e]);
    }
    db_enc[latent] = bias;
  }
}

// Fast mode: one block per entry, atomics into zeroed outputs.
__global__ void EntryGradientsAtomic(const float* G, const float* x_c, const float* pre,
                                     const float* dz, const int64_t* indices, int64_t k, int64_t d,
                                     float* dW_dec, float* dW_enc_t, float* db_enc) {
  const int64_t e = blockIdx.x;
  const float v = fmaxf(pre[e], 0.0f);
  if (v == 0.0f) return;
  const int64_t row = e / k, latent = indices[e];
  const float g = dz[e];
  for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
    atomicAdd(&dW_dec[latent * d + c], v * G[row * d + c]);
    if (g != 0.0f) atomicAdd(&dW_enc_t[latent * d + c], g * x_c[row * d + c]);
  }
  if (threadIdx.x == 0 && g != 0.0f) atomicAdd(&db_enc[latent], g);
}

__global__ void ColumnSumsKernel(const float* G, int64_t rows, int64_t d, float* out) {
  const int64_t c = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (c >= d) return;
  float sum = 0.0f;
  for (int64_t r = 0; r < rows; ++r) sum = __fadd_rn(sum, G[r * d + c]);
  out[c] = sum;
}

int Blocks(int64_t items, int threads) { return static_cast<int>((items + threads - 1) / threads); }

int KeyBits(int64_t n) {
  int bits = 1;
  while ((int64_t{1} << bits) < n) ++bits;
  return bits;
}

// The deterministic mode's workspace: keys and ids in and out, the latent
// ranges, then CUB's temporary storage (each part 256-byte aligned).
struct Layout {
  size_t keys_in, keys_out, ids_in, ids_out, begin, end, temp, temp_bytes, total;
};

size_t Align(size_t bytes) { return (bytes + 255) / 256 * 256; }

Layout LayoutFor(int64_t entries, int64_t n) {
  Layout layout{};
  size_t offset = 0;
  const size_t entry_bytes = Align(sizeof(int32_t) * static_cast<size_t>(entries));
  const size_t latent_bytes = Align(sizeof(int32_t) * static_cast<size_t>(n));
  layout.keys_in = offset; offset += entry_bytes;
  layout.keys_out = offset; offset += entry_bytes;
  layout.ids_in = offset; offset += entry_bytes;
  layout.ids_out = offset; offset += entry_bytes;
  layout.begin = offset; offset += latent_bytes;
  layout.end = offset; offset += latent_bytes;
  size_t temp_bytes = 0;
  cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes, static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr),
                                  static_cast<const int32_t*>(nullptr),
                                  static_cast<int32_t*>(nullptr), static_cast<int>(entries), 0,
                                  KeyBits(n));
  layout.temp = offset;
  layout.temp_bytes = temp_bytes;
  offset += Align(temp_bytes);
  layout.total = offset;
  return layout;
}

}  // namespace

template <typename T>
cudaError_t RowTopK(const T* z, const float* bias, const uint8_t* include, int64_t rows, int64_t n,
                    int64_t ld, int64_t k, bool order_by_index, float* values, int64_t* indices,
                    cudaStream_t stream) {
  if (k < 1 || k > kMaxK || k > n || rows < 0) return cudaErrorInvalidValue;
  if (rows == 0) return cudaSuccess;
  int padded_k = 1;
  while (padded_k < k) padded_k <<= 1;
  RowTopKKernel<T><<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(
      z, bias, include, n, ld, static_cast<int>(k), padded_k, order_by_index, values, indices);
  return cudaGetLastError();
}

template cudaError_t RowTopK<float>(const float*, const float*, const uint8_t*, int64_t, int64_t,
                                    int64_t, int64_t, bool, float*, int64_t*, cudaStream_t);
template cudaError_t RowTopK<__nv_bfloat16>(const __nv_bfloat16*, const float*, const uint8_t*,
                                            int64_t, int64_t, int64_t, int64_t, bool, float*,
                                            int64_t*, cudaStream_t);

cudaError_t SparseDecode(const float* values, const int64_t* indices, int64_t rows, int64_t k,
                         const float* W_dec, const float* b_dec, int64_t d, float* out,
                         cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  SparseDecodeKernel<<<static_cast<unsigned>(rows), kThreads, 0, stream>>>(values, indices, k,
                                                                          W_dec, b_dec, d, out);
  return cudaGetLastError();
}

cudaError_t SparseEntryGradients(const float* G, const float* pre, const int64_t* indices,
                                 int64_t rows, int64_t k, const float* W_dec, int64_t d, float* dz,
                                 cudaStream_t stream) {
  const int64_t entries = rows * k;
  if (entries == 0) return cudaSuccess;
  SparseEntryGradientsKernel<<<Blocks(entries * kWarp, kThreads), kThreads, 0, stream>>>(
      G, pre, indices, entries, k, W_dec, d, dz);
  return cudaGetLastError();
}

size_t SparseWeightGradientsWorkspaceBytes(int64_t entries, int64_t n) {
  return LayoutFor(entries, n).total;
}

cudaError_t SparseWeightGradients(const float* G, const float* x_c, const float* pre,
                                  const float* dz, const int64_t* indices, int64_t rows, int64_t k,
                                  int64_t n, int64_t d, bool deterministic, void* workspace,
                                  float* dW_dec, float* dW_enc_t, float* db_enc,
                                  cudaStream_t stream) {
  const int64_t entries = rows * k;
  if (!deterministic) {
    cudaMemsetAsync(dW_dec, 0, sizeof(float) * n * d, stream);
    cudaMemsetAsync(dW_enc_t, 0, sizeof(float) * n * d, stream);
    cudaMemsetAsync(db_enc, 0, sizeof(float) * n, stream);
    if (entries > 0) {
      EntryGradientsAtomic<<<static_cast<unsigned>(entries), kThreads, 0, stream>>>(
          G, x_c, pre, dz, indices, k, d, dW_dec, dW_enc_t, db_enc);
    }
    return cudaGetLastError();
  }
  const Layout layout = LayoutFor(entries, n);
  char* base = static_cast<char*>(workspace);
  int32_t* keys_in = reinterpret_cast<int32_t*>(base + layout.keys_in);
  int32_t* keys_out = reinterpret_cast<int32_t*>(base + layout.keys_out);
  int32_t* ids_in = reinterpret_cast<int32_t*>(base + layout.ids_in);
  int32_t* ids_out = reinterpret_cast<int32_t*>(base + layout.ids_out);
  int32_t* begin = reinterpret_cast<int32_t*>(base + layout.begin);
  int32_t* end = reinterpret_cast<int32_t*>(base + layout.end);
  cudaMemsetAsync(begin, 0, sizeof(int32_t) * n, stream);
  cudaMemsetAsync(end, 0, sizeof(int32_t) * n, stream);
  if (entries > 0) {
    FillSortInputs<<<Blocks(entries, kThreads), kThreads, 0, stream>>>(indices, entries, keys_in,
                                                                      ids_in);
    size_t temp_bytes = layout.temp_bytes;
    // Radix sort is stable: each latent's entries stay in (row, slot) order.
    cudaError_t sorted = cub::DeviceRadixSort::SortPairs(
        base + layout.temp, temp_bytes, keys_in, keys_out, ids_in, ids_out,
        static_cast<int>(entries), 0, KeyBits(n), stream);
    if (sorted != cudaSuccess) return sorted;
    LatentRanges<<<Blocks(entries, kThreads), kThreads, 0, stream>>>(keys_out, entries, begin, end);
  }
  LatentGradients<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(
      G, x_c, pre, dz, ids_out, begin, end, k, d, dW_dec, dW_enc_t, db_enc);
  return cudaGetLastError();
}

cudaError_t ColumnSums(const float* G, int64_t rows, int64_t d, float* out, cudaStream_t stream) {
  ColumnSumsKernel<<<Blocks(d, kThreads), kThreads, 0, stream>>>(G, rows, d, out);
  return cudaGetLastError();
}

}  // namespace cuda
}  // namespace saelab
