// Fuzzes the .npy reader (harness/npy.h OpenNpy for activations and
// ReadNpyTensor for any array), which maps the file and views it in place.
//
// Asserts, beyond "no crash" (no read outside the mapping, no overflow in
// the shape arithmetic, no exception from LibTorch escaping):
//  - errors name the file;
//  - OpenNpy's rows x cols x element size is the data size, and Rows() is a
//    [rows, cols] tensor that can be read to the end;
//  - ReadNpyTensor's tensor re-serialises (SerializeNpy) to a file that
//    reads back with the same shape, dtype and bytes.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include <torch/types.h>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_support.h"
#include "harness/npy.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string path = saelab::fuzz::ScratchPath("input.npy");
  static const std::string rewritten = saelab::fuzz::ScratchPath("rewritten.npy");
  saelab::fuzz::WriteFileOrDie(path, saelab::fuzz::AsStringView(data, size));

  absl::StatusOr<saelab::NpyArray> array = saelab::OpenNpy(path);
  CheckErrorNames(array.status(), path, "OpenNpy");
  if (array.ok()) {
    const torch::Tensor rows = array->Rows();
    FuzzCheck(rows.dim() == 2 && rows.size(0) == array->rows() && rows.size(1) == array->cols() &&
                  array->rows() >= 1 && array->cols() >= 1,
              "OpenNpy's Rows() has the wrong shape");
    FuzzCheck(rows.scalar_type() == torch::kFloat || rows.scalar_type() == torch::kHalf,
              "OpenNpy accepted a dtype other than float32/float16");
    // Reads every byte of the mapping the tensor views.
    (void)rows.to(torch::kFloat).sum().item<float>();
  }

  absl::StatusOr<torch::Tensor> tensor = saelab::ReadNpyTensor(path);
  CheckErrorNames(tensor.status(), path, "ReadNpyTensor");
  if (!tensor.ok() || tensor->dim() == 0) return 0;  // SerializeNpy writes >= 1 dimension
  absl::StatusOr<std::string> bytes = saelab::SerializeNpy(*tensor);
  FuzzCheck(bytes.ok(), absl::StrCat("a read array does not serialise: ", bytes.status().ToString()));
  saelab::fuzz::WriteFileOrDie(rewritten, *bytes);
  absl::StatusOr<torch::Tensor> again = saelab::ReadNpyTensor(rewritten);
  FuzzCheck(again.ok(), absl::StrCat("SerializeNpy's file does not read back: ",
                                     again.status().ToString()));
  FuzzCheck(again->sizes() == tensor->sizes() && again->scalar_type() == tensor->scalar_type() &&
                (tensor->nbytes() == 0 ||
                 std::memcmp(again->data_ptr(), tensor->data_ptr(), tensor->nbytes()) == 0),
            "SerializeNpy's file reads back differently");
  return 0;
}
