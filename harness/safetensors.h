// Reads and writes safetensors files (the Hugging Face format) as LibTorch
// tensors. saelab stores SAE weights and other tensor results this way, so
// that Python (safetensors.torch.load_file) and C++ read the same files.
//
// Layout: an 8-byte little-endian u64 N, then N bytes of UTF-8 JSON header,
// then the data buffer. The header maps each tensor name to
// {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]} (offsets into
// the data buffer), plus an optional "__metadata__" object of string->string.
// Like the reference implementation, the writer lays tensors out in name
// order and pads the header with spaces so the data buffer starts 8-aligned;
// the reader rejects any file whose tensors do not exactly tile the buffer.
//
//   TensorMap tensors = {{"W_dec", w_dec}, {"b_dec", b_dec}};
//   RETURN_IF_ERROR(WriteSafetensors(dir + "/sae.safetensors", tensors,
//                                    {{"k", "32"}}));
//   ASSIGN_OR_RETURN(SafetensorsContents sae,
//                    ReadSafetensors(dir + "/sae.safetensors"));
//   ASSIGN_OR_RETURN(torch::Tensor w_dec,
//                    GetTensor(sae, dir + "/sae.safetensors", "W_dec",
//                              {n_latents, d_in}, torch::kFloat));
//
// Integrity: every file saelab writes carries the sha256 of its data buffer
// in the metadata (kSafetensorsDataSha256Key), and every read verifies it
// when present, so a flipped byte in an SAE, a train state or a model is an
// error naming the file rather than a slightly wrong result. Files written
// by other tools have no such key; loaders of saelab's own formats require
// it (RequireDataChecksum).
//
// Supported dtypes: F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL.
// Assumes a little-endian host (checked at compile time).
#ifndef SAELAB_HARNESS_SAFETENSORS_H_
#define SAELAB_HARNESS_SAFETENSORS_H_

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace saelab {

// Ordered name -> tensor map (std::map so iteration order = sorted names).
using TensorMap = std::map<std::string, torch::Tensor>;

// Everything a safetensors file holds.
struct SafetensorsContents {
  // Contiguous CPU tensors that own their memory, in the file's dtypes.
  TensorMap tensors;
  // The header's "__metadata__" object; empty if the file has none.
  std::map<std::string, std::string> metadata;
  // True when the metadata held kSafetensorsDataSha256Key and the data buffer
  // hashed to it (a mismatch is an error, never a false here).
  bool data_checksum_verified = false;
};

// The metadata key under which saelab's writers record the lowercase hex
// sha256 of the data buffer (every byte after the header).
inline constexpr char kSafetensorsDataSha256Key[] = "saelab_data_sha256";

// OK if `contents` carried a verified data checksum; else DataLoss naming
// `path` and `what` ("SAE checkpoint"): saelab's own formats are always
// written with one, so a file without it was not written by this saelab or
// was edited.
absl::Status RequireDataChecksum(const SafetensorsContents& contents, const std::string& path,
                                 const std::string& what);

// Serializes `tensors` (any layout, any device) and `metadata` to safetensors
// bytes: tensors are written contiguous, as CPU little-endian data, in name
// order, with the data buffer's sha256 added to the metadata under
// kSafetensorsDataSha256Key. Deterministic: equal inputs give equal bytes, so
// the result can be hashed. InvalidArgument, naming the tensor, for an
// undefined tensor, an unsupported dtype, or the reserved name
// "__metadata__". A kSafetensorsDataSha256Key in `metadata` (metadata read
// from a file and written again) is replaced by the new data's checksum.
absl::StatusOr<std::string> SerializeSafetensors(
    const TensorMap& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Serializes as above and writes the bytes to `path` atomically (see
// AtomicWriteFile). Errors start with `path`.
absl::Status WriteSafetensors(
    const std::string& path, const TensorMap& tensors,
    const std::map<std::string, std::string>& metadata = {});

// Reads `path` and validates it fully (see ParseSafetensors). NotFound if the
// file does not exist.
absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path);

// Parses and validates safetensors `bytes`. Every error message starts with
// `name_for_errors` (normally the file's path) and names the tensor or field
// at fault. DataLoss if the bytes are truncated (shorter than the 8-byte
// length, than the header, or than a tensor's data_offsets); InvalidArgument
// for any other malformation: header not a JSON object, an entry missing
// dtype/shape/data_offsets or with wrong JSON types, unknown dtype, negative
// dimension, begin > end, a byte span that does not match shape and dtype,
// overlapping tensors, gaps or trailing bytes in the data buffer, a BOOL byte
// other than 0 or 1, or a non-string metadata value. DataLoss, "checksum", if
// the metadata's kSafetensorsDataSha256Key does not match the data buffer.
absl::StatusOr<SafetensorsContents> ParseSafetensors(
    absl::string_view bytes, const std::string& name_for_errors);

// Returns tensor `name` from `contents` (sharing its storage), after checking
// that its shape is `expected_shape` and its dtype `expected_dtype`.
// NotFound "<path>: tensor 'W_dec' is missing ..." if absent; InvalidArgument
// "<path>: tensor 'W_dec' has shape [64, 32], expected [64, 16]" (or the same
// for dtype) on a mismatch. `path_for_errors` starts every message.
absl::StatusOr<torch::Tensor> GetTensor(
    const SafetensorsContents& contents, const std::string& path_for_errors,
    const std::string& name, const std::vector<int64_t>& expected_shape,
    torch::ScalarType expected_dtype);

}  // namespace saelab

#endif  // SAELAB_HARNESS_SAFETENSORS_H_
