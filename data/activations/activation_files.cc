#include "data/activations/activation_files.h"

#include <algorithm>
#include <cstring>
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
#include "harness/json_fields.h"
#include "harness/mapped_file.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

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

// One tensor of a .safetensors file as activations, viewing a read-only
// mapping of the file (which the tensor keeps alive), so a file larger than
// memory opens at once and pages in as rows are read. Written here rather
// than with harness/safetensors.h's ReadSafetensors, which copies every
// tensor of the file into memory: only the header and the named tensor's
// byte range are checked, which is all this reader touches.
absl::StatusOr<torch::Tensor> MapSafetensorsTensor(const std::string& path,
                                                   const std::string& tensor_name) {
  ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path, ".safetensors file"));
  const absl::string_view bytes = mapped.bytes();
  uint64_t header_len = 0;
  if (bytes.size() < sizeof(header_len)) {
    return absl::DataLossError(absl::StrCat(path, ": ", bytes.size(),
                                            " bytes, too short for a safetensors header (truncated)"));
  }
  std::memcpy(&header_len, bytes.data(), sizeof(header_len));
  if (header_len > bytes.size() - sizeof(header_len)) {
    return absl::DataLossError(absl::StrCat(path, ": header length ", header_len, " exceeds the ",
                                            bytes.size() - sizeof(header_len),
                                            " bytes after it (truncated)"));
  }
  const size_t data_begin = sizeof(header_len) + header_len;
  const size_t data_size = bytes.size() - data_begin;
  ASSIGN_OR_RETURN(nlohmann::json header,
                   ParseJson(bytes.substr(sizeof(header_len), header_len),
                             absl::StrCat(path, ": header")));
  if (!header.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": header is not a JSON object"));
  }
  std::vector<std::string> names;
  for (const auto& item : header.items()) {
    if (item.key() != "__metadata__") names.push_back(item.key());
  }
  std::sort(names.begin(), names.end());
  std::string name = tensor_name;
  if (name.empty()) {
    if (names.size() != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, ": holds ", names.size(), " tensors (",
                                                     absl::StrJoin(names, ", "),
                                                     "); name the one to use (--tensor=NAME)"));
    }
    name = names[0];
  }
  if (name == "__metadata__" || !header.contains(name)) {
    return absl::NotFoundError(
        absl::StrCat(path, ": no tensor '", name, "'; the file holds: ", absl::StrJoin(names, ", ")));
  }
  const nlohmann::json& entry = header.at(name);
  auto bad = [&](const auto&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": tensor '", name, "' ", parts...));
  };
  if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
      !entry.contains("data_offsets") || !entry.at("dtype").is_string() ||
      !entry.at("shape").is_array() || !entry.at("data_offsets").is_array() ||
      entry.at("data_offsets").size() != 2) {
    return bad("has no valid dtype, shape and data_offsets");
  }
  const std::string dtype_name = entry.at("dtype").get<std::string>();
  torch::ScalarType dtype;
  if (dtype_name == "F32") {
    dtype = torch::kFloat;
  } else if (dtype_name == "F16") {
    dtype = torch::kHalf;
  } else if (dtype_name == "BF16") {
    dtype = torch::kBFloat16;
  } else {
    return bad("is ", dtype_name, "; activations must be float32, float16 or bfloat16");
  }
  std::vector<int64_t> shape;
  int64_t nbytes = static_cast<int64_t>(c10::elementSize(dtype));
  for (const nlohmann::json& dim : entry.at("shape")) {
    if (!dim.is_number_unsigned()) return bad("has a shape that is not a list of sizes");
    shape.push_back(dim.get<int64_t>());
    if (shape.back() < 0 || __builtin_mul_overflow(nbytes, shape.back(), &nbytes)) {
      return bad("has a shape whose size overflows");
    }
  }
  if (shape.size() < 2 || nbytes == 0) {
    return bad("has shape [", absl::StrJoin(shape, ", "),
               "]; activations are [rows, d_in] (or [..., d_in]) and not empty");
  }
  const nlohmann::json& offsets = entry.at("data_offsets");
  if (!offsets[0].is_number_unsigned() || !offsets[1].is_number_unsigned()) {
    return bad("has data_offsets that are not two byte offsets");
  }
  const uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
  if (begin > end || end - begin != static_cast<uint64_t>(nbytes)) {
    return bad("spans bytes [", begin, ", ", end, ") but its shape and dtype need ", nbytes);
  }
  if (end > data_size) {
    return absl::DataLossError(absl::StrCat(path, ": tensor '", name, "' ends at byte ", end,
                                            " of a data buffer of ", data_size, " (truncated)"));
  }
  // A file saelab wrote (saelab harvest) records its data's sha256: verify
  // it, as ReadSafetensors does, so a flipped byte is not trained on.
  if (header.contains("__metadata__") && header.at("__metadata__").is_object() &&
      header.at("__metadata__").contains(kSafetensorsDataSha256Key)) {
    const nlohmann::json& recorded = header.at("__metadata__").at(kSafetensorsDataSha256Key);
    const std::string actual = Sha256Hex(bytes.substr(data_begin));
    if (!recorded.is_string() || recorded.get<std::string>() != actual) {
      return absl::DataLossError(absl::StrCat(
          path, ": checksum: the ", data_size, "-byte data buffer hashes to sha256 ", actual,
          " but the header records ", recorded.dump(), " (the file is corrupted or was edited)"));
    }
  }
  auto file = std::make_shared<MappedFile>(std::move(mapped));
  const size_t offset = data_begin + begin;
  const int64_t d = shape.back();
  const int64_t rows = nbytes / static_cast<int64_t>(c10::elementSize(dtype)) / d;
  torch::Tensor view = torch::from_blob(
      const_cast<unsigned char*>(file->data() + offset), {rows, d},
      [file](void*) mutable { file.reset(); }, torch::TensorOptions().dtype(dtype));
  // safetensors does not promise aligned tensors; an unaligned one is copied.
  if (offset % c10::elementSize(dtype) != 0) return view.clone();
  return view;
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
    ASSIGN_OR_RETURN(files.tensor_, MapSafetensorsTensor(path, tensor_name));
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
