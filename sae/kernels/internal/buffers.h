// What the step kernels' workspaces and argument checks share.
#ifndef SAELAB_SAE_KERNELS_INTERNAL_BUFFERS_H_
#define SAELAB_SAE_KERNELS_INTERNAL_BUFFERS_H_

#include <cstdint>
#include <vector>

#include <torch/types.h>

namespace saelab {
namespace kernels_internal {

// Float32 buffers by slot number that keep their storage from step to step:
// Get(slot, rows, cols) is a [rows, cols] view of the slot's storage, grown
// only when a larger shape comes (no per-step allocation once warm).
class BufferSlots {
 public:
  torch::Tensor Get(int slot, int64_t rows, int64_t cols) {
    if (static_cast<int>(buffers_.size()) <= slot) buffers_.resize(slot + 1);
    torch::Tensor& buffer = buffers_[slot];
    if (!buffer.defined() || buffer.numel() < rows * cols) {
      buffer = torch::empty({rows * cols}, torch::kFloat);
    }
    return buffer.narrow(0, 0, rows * cols).view({rows, cols});
  }

 private:
  std::vector<torch::Tensor> buffers_;
};

// Fails (TORCH_CHECK, naming the kernel and the tensor) unless t is a
// defined, contiguous float32 tensor of `shape`.
inline void CheckFloatTensor(const torch::Tensor& t, std::vector<int64_t> shape,
                             const char* kernel, const char* name) {
  TORCH_CHECK(t.defined() && t.sizes() == torch::IntArrayRef(shape) &&
                  t.scalar_type() == torch::kFloat && t.is_contiguous(),
              kernel, ": ", name, " must be a contiguous float32 tensor of shape ",
              torch::IntArrayRef(shape), ", got ", t.defined() ? t.sizes() : torch::IntArrayRef{});
}

}  // namespace kernels_internal
}  // namespace saelab

#endif  // SAELAB_SAE_KERNELS_INTERNAL_BUFFERS_H_
