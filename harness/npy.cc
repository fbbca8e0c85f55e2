#include "harness/npy.h"

#include <cstring>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "harness/status_macros.h"
#include "re2/re2.h"

namespace saelab {
namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr size_t kMagicSize = 6;
// NumPy pads the preamble and header to this multiple (numpy.lib.format).
constexpr size_t kHeaderAlign = 64;

// The dtypes read and written, as NumPy names them; one table for both ways.
struct NpyDtype {
  const char* descr;
  torch::ScalarType dtype;
};
constexpr NpyDtype kDtypes[] = {{"<f4", torch::kFloat},
                                {"<f2", torch::kHalf},
                                {"<i4", torch::kInt},
                                {"<i8", torch::kLong}};

absl::Status Invalid(const std::string& path, absl::string_view why) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": not a usable .npy file: ", why));
}

uint32_t LittleEndian(const unsigned char* p, int bytes) {
  uint32_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// What every reader needs from a file: its mapping, the data's offset,
// dtype and shape, with the size checked against the shape.
struct ParsedNpy {
  MappedFile mapped;
  size_t data_offset = 0;
  torch::ScalarType dtype = torch::kFloat;
  std::string descr, shape_text;
  std::vector<int64_t> shape;
};

absl::StatusOr<ParsedNpy> ParseNpy(const std::string& path) {
  ASSIGN_OR_RETURN(MappedFile mapped, MappedFile::Open(path, ".npy file"));
  const absl::string_view bytes = mapped.bytes();
  if (bytes.size() < kMagicSize + 4 || std::memcmp(bytes.data(), kMagic, kMagicSize) != 0) {
    return Invalid(path, "it does not start with NumPy's magic string \\x93NUMPY");
  }
  const auto* raw = reinterpret_cast<const unsigned char*>(bytes.data());
  const int major = raw[6];
  // Version 1.0 stores the header length in 2 bytes; 2.0 and 3.0 (UTF-8
  // header) in 4.
  if (major < 1 || major > 3) {
    return Invalid(path, absl::StrCat("format version ", major, ".", int{raw[7]},
                                      " (this reader knows 1.0, 2.0 and 3.0)"));
  }
  const size_t length_bytes = major == 1 ? 2 : 4;
  const size_t preamble = kMagicSize + 2 + length_bytes;
  if (bytes.size() < preamble) return Invalid(path, "the file ends inside its preamble");
  const size_t header_len = LittleEndian(raw + kMagicSize + 2, static_cast<int>(length_bytes));
  if (bytes.size() < preamble + header_len) {
    return absl::DataLossError(absl::StrCat(path, ": .npy header of ", header_len,
                                            " bytes runs past the end of the file (",
                                            bytes.size(), " bytes)"));
  }
  const absl::string_view header = bytes.substr(preamble, header_len);
  const re2::StringPiece header_piece(header.data(), header.size());

  // The header is a Python dict literal with exactly these three keys.
  ParsedNpy parsed;
  std::string fortran;
  // Compiled once per process (LazyRE2 is thread-safe), not once per file.
  static LazyRE2 descr_re = {R"('descr'\s*:\s*'([^']*)')"};
  static LazyRE2 fortran_re = {R"('fortran_order'\s*:\s*(True|False))"};
  static LazyRE2 shape_re = {R"('shape'\s*:\s*\(([^)]*)\))"};
  if (!RE2::PartialMatch(header_piece, *descr_re, &parsed.descr) ||
      !RE2::PartialMatch(header_piece, *fortran_re, &fortran) ||
      !RE2::PartialMatch(header_piece, *shape_re, &parsed.shape_text)) {
    return Invalid(path, absl::StrCat("the header is not a NumPy array header: ",
                                      absl::StripTrailingAsciiWhitespace(header)));
  }
  const NpyDtype* known = nullptr;
  for (const NpyDtype& d : kDtypes) {
    if (parsed.descr == d.descr) known = &d;
  }
  if (known == nullptr) {
    return Invalid(path, absl::StrCat("dtype '", parsed.descr,
                                      "'; this reader knows little-endian float32, float16, "
                                      "int32 and int64 (np.save(path, a.astype(np.float32)))"));
  }
  parsed.dtype = known->dtype;
  if (fortran == "True") {
    return Invalid(path, "Fortran order; save a C-order array (np.ascontiguousarray(a))");
  }
  for (absl::string_view piece : absl::StrSplit(parsed.shape_text, ',', absl::SkipWhitespace())) {
    int64_t dim = 0;
    if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(piece), &dim) || dim < 0) {
      return Invalid(path,
                     absl::StrCat("shape (", parsed.shape_text, ") is not a tuple of sizes"));
    }
    parsed.shape.push_back(dim);
  }
  int64_t data_bytes = static_cast<int64_t>(c10::elementSize(known->dtype));
  for (int64_t dim : parsed.shape) {
    if (__builtin_mul_overflow(data_bytes, dim, &data_bytes)) {
      return Invalid(path, absl::StrCat("shape (", parsed.shape_text, ") overflows 64 bits"));
    }
  }
  parsed.data_offset = preamble + header_len;
  const size_t actual = bytes.size() - parsed.data_offset;
  if (actual != static_cast<size_t>(data_bytes)) {
    return absl::DataLossError(absl::StrCat(
        path, ": .npy data is ", actual, " bytes but shape (", parsed.shape_text, ") of ",
        parsed.descr, " needs ", data_bytes,
        actual < static_cast<size_t>(data_bytes) ? " (truncated)" : ""));
  }
  parsed.mapped = std::move(mapped);
  return parsed;
}

// A tensor of `shape` viewing the mapping, which it keeps alive.
torch::Tensor ViewMapping(std::shared_ptr<MappedFile> file, size_t offset,
                          std::vector<int64_t> shape, torch::ScalarType dtype) {
  void* data = const_cast<unsigned char*>(file->data() + offset);
  return torch::from_blob(
      data, shape, [file](void*) mutable { file.reset(); }, torch::TensorOptions().dtype(dtype));
}

}  // namespace

torch::Tensor NpyArray::Rows() const {
  return ViewMapping(file_, data_offset_, {rows_, cols_}, dtype_);
}

absl::StatusOr<NpyArray> OpenNpy(const std::string& path) {
  ASSIGN_OR_RETURN(ParsedNpy parsed, ParseNpy(path));
  if (parsed.dtype != torch::kFloat && parsed.dtype != torch::kHalf) {
    return Invalid(path, absl::StrCat("dtype '", parsed.descr,
                                      "'; activations must be little-endian float32 or "
                                      "float16 (np.save(path, a.astype(np.float32)))"));
  }
  NpyArray array;
  array.dtype_ = parsed.dtype;
  array.shape_ = parsed.shape;
  if (array.shape_.size() < 2) {
    return Invalid(path, absl::StrCat("shape (", parsed.shape_text,
                                      ") has fewer than 2 dimensions; activations are "
                                      "[rows, d_in] (or [..., d_in])"));
  }
  array.cols_ = array.shape_.back();
  array.rows_ = 1;
  for (size_t i = 0; i + 1 < array.shape_.size(); ++i) array.rows_ *= array.shape_[i];
  if (array.rows_ == 0 || array.cols_ == 0) {
    return Invalid(path, absl::StrCat("shape (", parsed.shape_text, ") holds no activations"));
  }
  array.data_offset_ = parsed.data_offset;
  array.file_ = std::make_shared<MappedFile>(std::move(parsed.mapped));
  return array;
}

absl::StatusOr<torch::Tensor> ReadNpyTensor(const std::string& path) {
  ASSIGN_OR_RETURN(ParsedNpy parsed, ParseNpy(path));
  const size_t offset = parsed.data_offset;
  return ViewMapping(std::make_shared<MappedFile>(std::move(parsed.mapped)), offset,
                     parsed.shape, parsed.dtype);
}

absl::StatusOr<std::string> SerializeNpy(const torch::Tensor& tensor) {
  if (!tensor.defined() || tensor.dim() < 1 || !tensor.device().is_cpu() ||
      !tensor.is_contiguous()) {
    return absl::InvalidArgumentError(
        "SerializeNpy: needs a defined, contiguous CPU tensor of at least one dimension");
  }
  const char* descr = nullptr;
  for (const NpyDtype& d : kDtypes) {
    if (tensor.scalar_type() == d.dtype) descr = d.descr;
  }
  if (descr == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("SerializeNpy: dtype ",
                                                   c10::toString(tensor.scalar_type()),
                                                   " (float32, float16, int32 or int64 only)"));
  }
  std::string shape = absl::StrJoin(tensor.sizes(), ", ");
  if (tensor.dim() == 1) absl::StrAppend(&shape, ",");
  std::string header =
      absl::StrCat("{'descr': '", descr, "', 'fortran_order': False, 'shape': (", shape, "), }");
  // Spaces then a newline up to the alignment, as numpy.lib.format writes.
  const size_t preamble = kMagicSize + 2 + 2;
  const size_t total = (preamble + header.size() + 1 + kHeaderAlign - 1) / kHeaderAlign * kHeaderAlign;
  header.append(total - preamble - header.size() - 1, ' ');
  header.push_back('\n');
  std::string out(kMagic, kMagicSize);
  out.push_back('\x01');
  out.push_back('\x00');
  out.push_back(static_cast<char>(header.size() & 0xff));
  out.push_back(static_cast<char>(header.size() >> 8));
  out += header;
  out.append(static_cast<const char*>(tensor.data_ptr()), tensor.nbytes());
  return out;
}

}  // namespace saelab
