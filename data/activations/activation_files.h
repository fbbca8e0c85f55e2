// Activations a user brings, from whatever file they come in: a NumPy .npy
// file ([..., d], float32 or float16), one tensor of a .safetensors file
// (float32, float16 or bfloat16), both memory-mapped, or a saelab
// activation store directory. One object
// serves training (a seeded, resumable ActivationSource over a row range)
// and evaluation (rows as float32, checked finite), so `saelab train` and
// `saelab evaluate` read every format the same way.
//
//   ASSIGN_OR_RETURN(ActivationFiles acts, ActivationFiles::Open("acts.npy"));
//   ASSIGN_OR_RETURN(RowRange held_out, acts.Range("-4096:"));    // the last 4096 rows
//   std::unique_ptr<ActivationSource> train = acts.Source(seed, 0, held_out.begin);
//   ASSIGN_OR_RETURN(torch::Tensor eval_x, acts.Rows(held_out));  // [4096, d] float32
#ifndef SAELAB_DATA_ACTIVATIONS_ACTIVATION_FILES_H_
#define SAELAB_DATA_ACTIVATIONS_ACTIVATION_FILES_H_

#include <torch/types.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "data/activations/activation_source.h"
#include "data/activations/activation_store.h"

namespace saelab {

// Rows [begin, end) of an activation file.
struct RowRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};

class ActivationFiles {
 public:
  // Opens `path`:
  //   *.npy          OpenNpy (harness/npy.h): memory-mapped, leading
  //                  dimensions flattened into rows.
  //   *.safetensors  the tensor named `tensor_name` (empty: the file's only
  //                  tensor), float32, float16 or bfloat16, 2 or more
  //                  dimensions (leading ones flattened); memory-mapped.
  //   a directory    an activation store (its manifest names its key);
  //                  chunks memory-mapped, checksums verified.
  // Errors name the path and the problem: NotFound for a missing file or
  // tensor (the message lists the file's tensors), InvalidArgument for an
  // unknown extension, a dtype or shape that cannot be activations, or a
  // tensor name given for a format without names; DataLoss for a file
  // shorter than its header says (truncated); the readers' own errors.
  static absl::StatusOr<ActivationFiles> Open(const std::string& path,
                                              const std::string& tensor_name = "");

  const std::string& path() const { return path_; }
  int64_t rows() const { return rows_; }
  int64_t d() const { return d_; }
  // "acts.npy: 65536 rows x 768, float16" (for logs).
  std::string Describe() const;
  // The sha256 of the file (or of the store's manifest), for provenance.
  absl::StatusOr<std::string> Sha256() const;

  // Parses a Python-style slice of the rows: "a:b", "a:", ":b", "-n:" (the
  // last n rows), ":-n" (all but the last n), or "" (all rows). a and b may
  // be negative (counted from the end). InvalidArgument naming the text
  // when it does not parse or selects no row.
  absl::StatusOr<RowRange> Range(const std::string& slice) const;

  // Rows `range` as float32 [range.size(), d] (a copy). InvalidArgument for
  // a range outside the file; InvalidArgument naming the file and the first
  // row holding a NaN or infinity, since one such row silently poisons
  // every metric.
  absl::StatusOr<torch::Tensor> Rows(RowRange range) const;

  // A training source over rows [begin, end): each epoch a seeded
  // permutation (tensor files, data/activations/tensor_source.h) or the
  // store's shuffling buffer (data/activations/store_source.h). Batches are
  // pure functions of (seed, step, batch size), so training resumes
  // bit-identically.
  std::unique_ptr<ActivationSource> Source(uint64_t seed, int64_t begin, int64_t end) const;

 private:
  std::string path_;
  std::string hashed_file_;
  int64_t rows_ = 0, d_ = 0;
  std::string dtype_name_;
  torch::Tensor tensor_;                 // [rows, d] for .npy and .safetensors
  std::optional<ActivationStore> store_;  // for a store directory
};

}  // namespace saelab

#endif  // SAELAB_DATA_ACTIVATIONS_ACTIVATION_FILES_H_
