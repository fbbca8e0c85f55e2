#include "data/activations/activation_files.h"

#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "data/activations/store_format.h"
#include "data/activations/store_source.h"
#include "data/activations/tensor_source.h"
#include "harness/npy.h"
#include "harness/safetensors.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

// Flattens every leading dimension of `t` into rows: [..., d] -> [N, d].
torch::Tensor AsRows(const torch::Tensor& t) { return t.reshape({-1, t.size(-1)}); }

absl::StatusOr<int64_t> SliceBound(absl::string_view text, int64_t rows,
                                   const std::string& slice) {
  int64_t v = 0;
  if (!absl::SimpleAtoi(text, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("row range '", slice, "': '", text,
                                                   "' is not an integer (use a:b, a:, :b, -n:)"));
  }
  if (v < 0) v += rows;
  return std::min(std::max<int64_t>(v, 0), rows);
}

}  // namespace

absl::StatusOr<ActivationFiles> ActivationFiles::Open(const std::string& path,
                                                     const std::string& tensor_name) {
  ActivationFiles files;
  files.path_ = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    if (!tensor_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": a tensor name ('", tensor_name,
          "') was given, but this is an activation store directory, which holds one hook"));
    }
    ASSIGN_OR_RETURN(ActivationStoreManifest manifest, ReadManifest(path));
    ASSIGN_OR_RETURN(ActivationStore store, ActivationStore::Open(path, manifest.key()));
    files.rows_ = store.num_rows();
    files.d_ = store.d();
    files.dtype_name_ = ActivationStoreKey::Dtype_Name(manifest.key().dtype());
    files.hashed_file_ = ManifestPath(path);
    files.store_ = std::move(store);
    return files;
  }
  if (absl::EndsWith(path, ".npy")) {
    if (!tensor_name.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": a tensor name ('", tensor_name, "') was given, but a .npy file holds one array"));
    }
    ASSIGN_OR_RETURN(NpyArray array, OpenNpy(path));
    files.tensor_ = array.Rows();
  } else if (absl::EndsWith(path, ".safetensors")) {
    ASSIGN_OR_RETURN(SafetensorsContents contents, ReadSafetensors(path));
    std::vector<std::string> names;
    for (const auto& [name, tensor] : contents.tensors) names.push_back(name);
    std::string name = tensor_name;
    if (name.empty()) {
      if (names.size() != 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            path, ": holds ", names.size(), " tensors (", absl::StrJoin(names, ", "),
            "); name the one to use (--tensor=NAME)"));
      }
      name = names[0];
    }
    auto it = contents.tensors.find(name);
    if (it == contents.tensors.end()) {
      return absl::NotFoundError(absl::StrCat(path, ": no tensor '", name,
                                              "'; the file holds: ", absl::StrJoin(names, ", ")));
    }
    const torch::Tensor& t = it->second;
    const torch::ScalarType type = t.scalar_type();
    if (type != torch::kFloat && type != torch::kHalf && type != torch::kBFloat16) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", name, "' is ", c10::toString(type),
          "; activations must be float32, float16 or bfloat16"));
    }
    if (t.dim() < 2 || t.numel() == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          path, ": tensor '", name, "' has shape ", c10::str(t.sizes()),
          "; activations are [rows, d_in] (or [..., d_in]) and not empty"));
    }
    files.tensor_ = AsRows(t);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": not a .npy file, a .safetensors file or an activation store "
                           "directory (the extension decides how it is read)"));
  }
  files.rows_ = files.tensor_.size(0);
  files.d_ = files.tensor_.size(1);
  files.dtype_name_ = c10::toString(files.tensor_.scalar_type());
  files.hashed_file_ = path;
  return files;
}

std::string ActivationFiles::Describe() const {
  return absl::StrCat(path_, ": ", rows_, " rows x ", d_, ", ", dtype_name_,
                      store_.has_value() ? " (activation store)" : "");
}

absl::StatusOr<std::string> ActivationFiles::Sha256() const { return Sha256File(hashed_file_); }

absl::StatusOr<RowRange> ActivationFiles::Range(const std::string& slice) const {
  RowRange range{0, rows_};
  if (!slice.empty()) {
    std::vector<absl::string_view> parts = absl::StrSplit(slice, ':');
    if (parts.size() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("row range '", slice, "' is not a slice a:b (either side may be empty)"));
    }
    if (!parts[0].empty()) {
      ASSIGN_OR_RETURN(range.begin, SliceBound(parts[0], rows_, slice));
    }
    if (!parts[1].empty()) {
      ASSIGN_OR_RETURN(range.end, SliceBound(parts[1], rows_, slice));
    }
  }
  if (range.size() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("row range '", slice, "' selects no row of ",
                                                   path_, " (", rows_, " rows)"));
  }
  return range;
}

absl::StatusOr<torch::Tensor> ActivationFiles::Rows(RowRange range) const {
  if (range.begin < 0 || range.end > rows_ || range.size() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(path_, ": rows [", range.begin, ", ", range.end,
                                                   ") are outside its ", rows_, " rows"));
  }
  torch::Tensor x;
  if (store_.has_value()) {
    ASSIGN_OR_RETURN(x, store_->Rows(range.begin, range.end));
  } else {
    x = tensor_.slice(0, range.begin, range.end).to(torch::kFloat).contiguous();
  }
  const torch::Tensor bad_rows = torch::isfinite(x).all(1).logical_not().nonzero();
  if (bad_rows.numel() > 0) {
    const int64_t row = range.begin + bad_rows[0][0].item<int64_t>();
    return absl::InvalidArgumentError(absl::StrCat(
        path_, ": row ", row, " holds a NaN or an infinity (", bad_rows.size(0), " of rows [",
        range.begin, ", ", range.end, ") do); every metric would be NaN"));
  }
  return x;
}

std::unique_ptr<ActivationSource> ActivationFiles::Source(uint64_t seed, int64_t begin,
                                                          int64_t end) const {
  if (store_.has_value()) {
    return std::make_unique<StoreActivationSource>(*store_, seed, /*buffer_chunks=*/8, begin, end);
  }
  return std::make_unique<TensorActivationSource>(tensor_, seed, begin, end);
}

}  // namespace saelab
