// Fuzzes the safetensors reader (harness/safetensors.h ParseSafetensors),
// which every SAE, checkpoint and model file goes through, and GetTensor.
//
// Asserts, beyond "no crash" (ASan: no read outside the input):
//  - an error starts with the name it was given;
//  - an accepted file re-serialises (SerializeSafetensors) to bytes that
//    parse back to the same tensors and metadata (plus the data checksum
//    the writer adds, verified), and serialising those
//    gives the same bytes again (the writer is deterministic and the reader
//    loses nothing);
//  - GetTensor finds every tensor with its own shape and dtype, and names
//    the file when asked for the wrong shape.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>

#include <torch/types.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_support.h"
#include "harness/safetensors.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

constexpr char kName[] = "fuzz-input.safetensors";

// Same names, dtypes, shapes and bytes (bitwise, so NaNs compare equal).
bool SameTensors(const saelab::TensorMap& a, const saelab::TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    const torch::Tensor& x = ia->second;
    const torch::Tensor& y = ib->second;
    if (ia->first != ib->first || x.scalar_type() != y.scalar_type() || x.sizes() != y.sizes()) {
      return false;
    }
    const size_t nbytes = x.numel() * x.element_size();
    if (nbytes > 0 && std::memcmp(x.data_ptr(), y.data_ptr(), nbytes) != 0) return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view bytes = saelab::fuzz::AsStringView(data, size);
  absl::StatusOr<saelab::SafetensorsContents> parsed = saelab::ParseSafetensors(bytes, kName);
  CheckErrorNames(parsed.status(), kName, "ParseSafetensors");
  FuzzCheck(parsed.ok() || absl::StartsWith(parsed.status().message(), kName),
            absl::StrCat("error does not start with the name: ", parsed.status().ToString()));
  if (!parsed.ok()) return 0;

  for (const auto& [name, tensor] : parsed->tensors) {
    FuzzCheck(tensor.is_contiguous(), absl::StrCat("tensor '", name, "' is not contiguous"));
    absl::StatusOr<torch::Tensor> got = saelab::GetTensor(*parsed, kName, name, tensor.sizes().vec(),
                                                          tensor.scalar_type());
    FuzzCheck(got.ok(), absl::StrCat("GetTensor refuses tensor '", name,
                                     "' with its own shape: ", got.status().ToString()));
    std::vector<int64_t> other = tensor.sizes().vec();
    other.push_back(2);
    absl::StatusOr<torch::Tensor> wrong =
        saelab::GetTensor(*parsed, kName, name, other, tensor.scalar_type());
    FuzzCheck(!wrong.ok(), absl::StrCat("GetTensor accepts tensor '", name, "' with a wrong shape"));
    CheckErrorNames(wrong.status(), kName, "GetTensor");
  }

  absl::StatusOr<std::string> serialized =
      saelab::SerializeSafetensors(parsed->tensors, parsed->metadata);
  FuzzCheck(serialized.ok(), absl::StrCat("an accepted file does not re-serialise: ",
                                          serialized.status().ToString()));
  absl::StatusOr<saelab::SafetensorsContents> again =
      saelab::ParseSafetensors(*serialized, kName);
  FuzzCheck(again.ok(), absl::StrCat("the re-serialised file does not parse: ",
                                     again.status().ToString()));
  FuzzCheck(SameTensors(parsed->tensors, again->tensors), "re-serialising changed the tensors");
  // The writer adds (or replaces) the data checksum and nothing else.
  std::map<std::string, std::string> expected_metadata = parsed->metadata;
  expected_metadata.erase(saelab::kSafetensorsDataSha256Key);
  std::map<std::string, std::string> got_metadata = again->metadata;
  got_metadata.erase(saelab::kSafetensorsDataSha256Key);
  FuzzCheck(expected_metadata == got_metadata, "re-serialising changed the metadata");
  FuzzCheck(again->data_checksum_verified, "the re-serialised file has no verified data checksum");
  absl::StatusOr<std::string> twice = saelab::SerializeSafetensors(again->tensors, again->metadata);
  FuzzCheck(twice.ok() && *twice == *serialized, "serialising is not deterministic");
  return 0;
}
