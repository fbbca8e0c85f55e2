// Reads NumPy .npy files (format versions 1.0, 2.0 and 3.0) as LibTorch
// tensors without copying: the file is memory-mapped and the tensor views
// the mapping, so a 20 GB activation dump opens instantly and pages in as
// it is read. For activations saved from Python
// (`np.save("acts.npy", acts.astype(np.float32))`).
//
//   ASSIGN_OR_RETURN(NpyArray acts, OpenNpy("acts.npy"));
//   torch::Tensor rows = acts.Rows();  // [N, d] float32 or float16, read-only
//
// Accepted: little-endian float32 ('<f4') or float16 ('<f2'), C order, at
// least 2 dimensions; the leading dimensions are flattened into rows
// ([batch, seq, d] -> [batch * seq, d]). Every other file is refused with an
// InvalidArgument naming the path and the problem (dtype, Fortran order,
// shape, a header that is not a NumPy dict) and, where there is one, the fix;
// DataLoss when the data is shorter or longer than the header's shape says.
//
// Written by hand: no installed C++ library reads .npy (the format is a
// 10-byte preamble, a Python-literal dict and the raw array).
#ifndef SAELAB_HARNESS_NPY_H_
#define SAELAB_HARNESS_NPY_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "harness/mapped_file.h"

namespace saelab {

class NpyArray {
 public:
  // The file's shape as its header states it.
  const std::vector<int64_t>& shape() const { return shape_; }
  // torch::kFloat or torch::kHalf.
  torch::ScalarType dtype() const { return dtype_; }
  // Rows (the product of the leading dimensions) and the last dimension.
  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  const std::string& path() const { return file_->path(); }

  // [rows(), cols()] in the file's dtype, viewing the mapping (which the
  // tensor keeps alive). Read-only memory: copy before writing to it.
  torch::Tensor Rows() const;

 private:
  friend absl::StatusOr<NpyArray> OpenNpy(const std::string& path);
  std::shared_ptr<MappedFile> file_;
  size_t data_offset_ = 0;
  std::vector<int64_t> shape_;
  torch::ScalarType dtype_ = torch::kFloat;
  int64_t rows_ = 0, cols_ = 0;
};

// Maps and validates `path` (see above). NotFound if it does not exist.
absl::StatusOr<NpyArray> OpenNpy(const std::string& path);

// Any array of the dtypes this file knows (float32, float16, int32, int64;
// little-endian, C order) with its full shape, viewing the mapping (kept
// alive by the tensor; read-only memory): token ids, for instance
// (`np.save("ids.npy", ids.astype(np.int32))`). Errors as OpenNpy, without
// its activation-specific ones (dimensions, emptiness).
absl::StatusOr<torch::Tensor> ReadNpyTensor(const std::string& path);

// The .npy bytes (version 1.0, C order, header padded to a multiple of 64
// bytes as NumPy writes it) of a contiguous CPU float32, float16, int32 or
// int64 tensor of at least one dimension; for tools that write activations
// or token ids, and for tests.
absl::StatusOr<std::string> SerializeNpy(const torch::Tensor& tensor);

}  // namespace saelab

#endif  // SAELAB_HARNESS_NPY_H_
