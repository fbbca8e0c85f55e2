#include "harness/safetensors.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "harness/file_io.h"
#include "harness/json_fields.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

// safetensors data is little-endian and we copy tensor bytes verbatim, so a
// big-endian host would need byte swaps that this file does not do.
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "safetensors I/O assumes a little-endian host");

using Json = nlohmann::json;

constexpr char kMetadataKey[] = "__metadata__";

struct Dtype {
  const char* name;
  torch::ScalarType type;
};

constexpr Dtype kDtypes[] = {
    {"F64", torch::kDouble}, {"F32", torch::kFloat}, {"F16", torch::kHalf},
    {"BF16", torch::kBFloat16}, {"I64", torch::kLong}, {"I32", torch::kInt},
    {"I16", torch::kShort}, {"I8", torch::kChar}, {"U8", torch::kByte},
    {"BOOL", torch::kBool},
};

const Dtype* FindDtype(const std::string& name) {
  for (const Dtype& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

const Dtype* FindDtype(torch::ScalarType type) {
  for (const Dtype& d : kDtypes) {
    if (type == d.type) return &d;
  }
  return nullptr;
}

// "F32" for the dtypes safetensors stores, torch's name ("ComplexFloat") else.
std::string DtypeName(torch::ScalarType type) {
  const Dtype* d = FindDtype(type);
  return d != nullptr ? d->name : c10::toString(type);
}

std::string ShapeString(c10::IntArrayRef shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ", "), "]");
}

// The elements of `j` if it is an array of integers that fit in int64_t.
std::optional<std::vector<int64_t>> Int64Array(const Json& j) {
  if (!j.is_array()) return std::nullopt;
  std::vector<int64_t> out;
  for (const Json& v : j) {
    if (v.is_number_unsigned() &&
        v.get<uint64_t>() <= uint64_t{std::numeric_limits<int64_t>::max()}) {
      out.push_back(static_cast<int64_t>(v.get<uint64_t>()));
    } else if (v.is_number_integer() && !v.is_number_unsigned()) {
      out.push_back(v.get<int64_t>());
    } else {
      return std::nullopt;
    }
  }
  return out;
}

// One validated header entry.
struct Entry {
  std::string name;
  const Dtype* dtype;
  std::vector<int64_t> shape;
  int64_t begin, end;  // Byte offsets into the data buffer.
};

}  // namespace

absl::StatusOr<std::string> SerializeSafetensors(
    const TensorMap& tensors, const std::map<std::string, std::string>& metadata) {
  // ordered_json keeps insertion order, so the header reads as the reference
  // writes it: "__metadata__" first, then the tensors in data order.
  nlohmann::ordered_json entries = nlohmann::ordered_json::object();
  std::vector<torch::Tensor> data;  // Contiguous CPU copies, in name order.
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    if (name == kMetadataKey) {
      return absl::InvalidArgumentError(
          absl::StrCat("tensor name '", name, "' is reserved for metadata"));
    }
    if (!tensor.defined()) {
      return absl::InvalidArgumentError(absl::StrCat("tensor '", name, "' is undefined"));
    }
    const Dtype* dtype = FindDtype(tensor.scalar_type());
    if (dtype == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' has dtype ", DtypeName(tensor.scalar_type()),
          ", which safetensors cannot store"));
    }
    try {
      torch::Tensor t = tensor.layout() == torch::kStrided ? tensor : tensor.to_dense();
      data.push_back(t.to(torch::kCPU).contiguous());
    } catch (const c10::Error& e) {
      return absl::InvalidArgumentError(absl::StrCat(
          "tensor '", name, "' cannot be copied to the CPU: ", e.what_without_backtrace()));
    }
    const uint64_t nbytes = data.back().numel() * data.back().element_size();
    entries[name] = {{"dtype", dtype->name},
                    {"shape", tensor.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
  }

  Sha256 data_hash;
  for (const torch::Tensor& t : data) {
    data_hash.Update(absl::string_view(static_cast<const char*>(t.data_ptr()),
                                       t.numel() * t.element_size()));
  }
  std::map<std::string, std::string> all_metadata = metadata;
  all_metadata[kSafetensorsDataSha256Key] = data_hash.HexDigest();
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  header[kMetadataKey] = all_metadata;
  for (auto& item : entries.items()) header[item.key()] = std::move(item.value());

  std::string json;
  try {
    json = header.dump();
  } catch (const nlohmann::json::exception& e) {  // A name or value that is not UTF-8.
    return absl::InvalidArgumentError(absl::StrCat("cannot encode the header: ", e.what()));
  }
  // Pad with spaces (valid JSON whitespace) so the data buffer starts at an
  // 8-aligned offset, as the reference implementation does.
  json.append((8 - json.size() % 8) % 8, ' ');

  const uint64_t header_len = json.size();
  std::string out(sizeof(header_len), '\0');
  std::memcpy(out.data(), &header_len, sizeof(header_len));
  out.reserve(out.size() + header_len + offset);
  out += json;
  for (const torch::Tensor& t : data) {
    if (t.numel() > 0) {
      out.append(static_cast<const char*>(t.data_ptr()), t.numel() * t.element_size());
    }
  }
  return out;
}

absl::Status WriteSafetensors(const std::string& path, const TensorMap& tensors,
                              const std::map<std::string, std::string>& metadata) {
  absl::StatusOr<std::string> bytes = SerializeSafetensors(tensors, metadata);
  if (!bytes.ok()) {
    return absl::Status(bytes.status().code(),
                        absl::StrCat(path, ": ", bytes.status().message()));
  }
  return AtomicWriteFile(path, *bytes);
}

absl::StatusOr<SafetensorsContents> ReadSafetensors(const std::string& path) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  return ParseSafetensors(bytes, path);
}

absl::StatusOr<SafetensorsContents> ParseSafetensors(absl::string_view bytes,
                                                     const std::string& name_for_errors) {
  auto invalid = [&](const auto&... parts) {
    return absl::InvalidArgumentError(absl::StrCat(name_for_errors, ": ", parts...));
  };
  auto data_loss = [&](const auto&... parts) {
    return absl::DataLossError(absl::StrCat(name_for_errors, ": ", parts...));
  };

  uint64_t header_len;
  if (bytes.size() < sizeof(header_len)) {
    return data_loss("file is ", bytes.size(),
                     " bytes, too short for the 8-byte header length (truncated)");
  }
  std::memcpy(&header_len, bytes.data(), sizeof(header_len));
  if (header_len > bytes.size() - sizeof(header_len)) {
    return data_loss("header length ", header_len, " exceeds the ",
                     bytes.size() - sizeof(header_len),
                     " bytes after the length field (truncated)");
  }
  const absl::string_view header_bytes = bytes.substr(sizeof(header_len), header_len);
  const absl::string_view data = bytes.substr(sizeof(header_len) + header_len);

  ASSIGN_OR_RETURN(Json header,
                   ParseJson(header_bytes, absl::StrCat(name_for_errors, ": header")));
  if (!header.is_object()) {
    return invalid("header is a JSON ", header.type_name(), ", not an object");
  }

  SafetensorsContents contents;
  std::vector<Entry> entries;
  for (const auto& item : header.items()) {
    const std::string& name = item.key();
    const Json& value = item.value();
    if (name == kMetadataKey) {
      if (!value.is_object()) {
        return invalid(kMetadataKey, " is a JSON ", value.type_name(), ", not an object");
      }
      for (const auto& m : value.items()) {
        if (!m.value().is_string()) {
          return invalid(kMetadataKey, " value for key '", m.key(), "' is a JSON ",
                         m.value().type_name(), ", not a string");
        }
        contents.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }

    auto bad = [&](const auto&... parts) { return invalid("tensor '", name, "' ", parts...); };
    if (!value.is_object()) return bad("entry is a JSON ", value.type_name(), ", not an object");
    for (const char* field : {"dtype", "shape", "data_offsets"}) {
      if (!value.contains(field)) return bad("is missing field '", field, "'");
    }
    const Json& dtype_json = value.at("dtype");
    if (!dtype_json.is_string()) {
      return bad("field 'dtype' is a JSON ", dtype_json.type_name(), ", not a string");
    }
    const Dtype* dtype = FindDtype(dtype_json.get<std::string>());
    if (dtype == nullptr) return bad("has unknown dtype '", dtype_json.get<std::string>(), "'");
    std::optional<std::vector<int64_t>> shape = Int64Array(value.at("shape"));
    if (!shape) {
      return bad("field 'shape' must be an array of integers, got ", value.at("shape").dump());
    }
    std::optional<std::vector<int64_t>> offsets = Int64Array(value.at("data_offsets"));
    if (!offsets || offsets->size() != 2 || (*offsets)[0] < 0 || (*offsets)[1] < 0) {
      return bad("field 'data_offsets' must be [begin, end] of non-negative integers, got ",
                 value.at("data_offsets").dump());
    }
    const int64_t begin = (*offsets)[0], end = (*offsets)[1];

    int64_t nbytes = c10::elementSize(dtype->type);
    for (int64_t dim : *shape) {
      if (dim < 0) return bad("has negative dimension ", dim, " in shape ", ShapeString(*shape));
      if (__builtin_mul_overflow(nbytes, dim, &nbytes)) {
        return bad("has shape ", ShapeString(*shape), " whose byte size overflows");
      }
    }
    if (begin > end) return bad("has data_offsets begin ", begin, " > end ", end);
    if (end - begin != nbytes) {
      return bad("has data_offsets [", begin, ", ", end, "] spanning ", end - begin,
                 " bytes, but shape ", ShapeString(*shape), " of ", dtype->name, " needs ",
                 nbytes);
    }
    if (static_cast<uint64_t>(end) > data.size()) {
      return data_loss("tensor '", name, "' has data_offsets end ", end, " beyond the ",
                       data.size(), "-byte data buffer (truncated)");
    }
    if (dtype->type == torch::kBool) {
      // Any other byte is undefined behaviour as a C++/torch bool.
      for (int64_t i = begin; i < end; ++i) {
        const unsigned char byte = data[i];
        if (byte > 1) return bad("has BOOL byte ", int{byte}, " (only 0 and 1 are valid)");
      }
    }
    entries.push_back({name, dtype, *std::move(shape), begin, end});
  }

  // The tensors must tile the data buffer exactly: no overlaps, no gaps, no
  // trailing bytes (as the reference implementation requires).
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    return std::make_pair(a.begin, a.end) < std::make_pair(b.begin, b.end);
  });
  int64_t covered = 0;
  const Entry* previous = nullptr;
  for (const Entry& e : entries) {
    if (e.begin < covered) {
      return invalid("tensor '", e.name, "' data_offsets [", e.begin, ", ", e.end,
                     "] overlap tensor '", previous->name, "' [", previous->begin, ", ",
                     previous->end, "]");
    }
    if (e.begin > covered) {
      return invalid("data buffer has a ", e.begin - covered, "-byte gap before tensor '",
                     e.name, "' at offset ", e.begin);
    }
    covered = e.end;
    previous = &e;
  }
  if (static_cast<uint64_t>(covered) != data.size()) {
    return invalid("data buffer has ", data.size() - covered,
                   " trailing bytes that belong to no tensor");
  }

  auto checksum = contents.metadata.find(kSafetensorsDataSha256Key);
  if (checksum != contents.metadata.end()) {
    const std::string actual = Sha256Hex(data);
    if (actual != checksum->second) {
      return data_loss("checksum: the ", data.size(), "-byte data buffer hashes to sha256 ",
                       actual, " but the header records ", checksum->second,
                       " (the file is corrupted or was edited)");
    }
    contents.data_checksum_verified = true;
  }

  // Copy out, so the tensors own their memory and are suitably aligned.
  try {
    for (const Entry& e : entries) {
      torch::Tensor t = torch::empty(e.shape, torch::dtype(e.dtype->type));
      if (e.end > e.begin) std::memcpy(t.data_ptr(), data.data() + e.begin, e.end - e.begin);
      contents.tensors.emplace(e.name, std::move(t));
    }
  } catch (const c10::Error& e) {
    return absl::ResourceExhaustedError(
        absl::StrCat(name_for_errors, ": cannot allocate tensors: ", e.what_without_backtrace()));
  }
  return contents;
}

absl::Status RequireDataChecksum(const SafetensorsContents& contents, const std::string& path,
                                 const std::string& what) {
  if (contents.data_checksum_verified) return absl::OkStatus();
  return absl::DataLossError(absl::StrCat(
      path, ": checksum: this ", what, " has no '", kSafetensorsDataSha256Key,
      "' in its metadata, which saelab always writes; it was written by another tool or an "
      "older saelab, or its header was edited"));
}

absl::StatusOr<torch::Tensor> GetTensor(const SafetensorsContents& contents,
                                        const std::string& path_for_errors,
                                        const std::string& name,
                                        const std::vector<int64_t>& expected_shape,
                                        torch::ScalarType expected_dtype) {
  auto it = contents.tensors.find(name);
  if (it == contents.tensors.end()) {
    return absl::NotFoundError(absl::StrCat(
        path_for_errors, ": tensor '", name, "' is missing (file has: ",
        absl::StrJoin(contents.tensors, ", ",
                      [](std::string* out, const auto& kv) { out->append(kv.first); }),
        ")"));
  }
  const torch::Tensor& t = it->second;
  if (t.sizes() != c10::IntArrayRef(expected_shape)) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_for_errors, ": tensor '", name, "' has shape ", ShapeString(t.sizes()),
                     ", expected ", ShapeString(expected_shape)));
  }
  if (t.scalar_type() != expected_dtype) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_for_errors, ": tensor '", name, "' has dtype ",
                     DtypeName(t.scalar_type()), ", expected ", DtypeName(expected_dtype)));
  }
  return t;
}

}  // namespace saelab
