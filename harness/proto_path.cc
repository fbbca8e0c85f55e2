#include "harness/proto_path.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace saelab {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;

std::string FieldNames(const Descriptor* type) {
  std::vector<std::string> names;
  for (int i = 0; i < type->field_count(); ++i) names.push_back(type->field(i)->name());
  return absl::StrJoin(names, ", ");
}

// The leaf field of `path` in `type` and the message fields leading to it.
absl::StatusOr<std::vector<const FieldDescriptor*>> ResolvePath(const Descriptor* type,
                                                                const std::string& path) {
  std::vector<const FieldDescriptor*> fields;
  std::vector<std::string> parts = absl::StrSplit(path, '.');
  for (size_t i = 0; i < parts.size(); ++i) {
    const FieldDescriptor* field = type->FindFieldByName(parts[i]);
    if (field == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("field path '", path, "': ", type->name(),
                                                     " has no field '", parts[i],
                                                     "' (fields: ", FieldNames(type), ")"));
    }
    if (field->is_repeated()) {
      return absl::InvalidArgumentError(
          absl::StrCat("field path '", path, "': '", parts[i], "' is repeated"));
    }
    const bool last = i + 1 == parts.size();
    if (!last && field->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) {
      return absl::InvalidArgumentError(
          absl::StrCat("field path '", path, "': '", parts[i], "' is not a message"));
    }
    if (last) {
      switch (field->cpp_type()) {
        case FieldDescriptor::CPPTYPE_INT32:
        case FieldDescriptor::CPPTYPE_INT64:
        case FieldDescriptor::CPPTYPE_UINT32:
        case FieldDescriptor::CPPTYPE_UINT64:
        case FieldDescriptor::CPPTYPE_FLOAT:
        case FieldDescriptor::CPPTYPE_DOUBLE:
        case FieldDescriptor::CPPTYPE_BOOL:
          break;
        default:
          return absl::InvalidArgumentError(
              absl::StrCat("field path '", path, "': '", parts[i], "' is not numeric"));
      }
    } else {
      type = field->message_type();
    }
    fields.push_back(field);
  }
  return fields;
}

template <typename Int>
absl::StatusOr<Int> ToInteger(const std::string& path, double value) {
  if (!std::isfinite(value) || value != std::floor(value) ||
      value < static_cast<double>(std::numeric_limits<Int>::lowest()) ||
      value > static_cast<double>(std::numeric_limits<Int>::max())) {
    return absl::InvalidArgumentError(
        absl::StrCat("field path '", path, "': ", value, " is not an integer in range"));
  }
  return static_cast<Int>(value);
}

}  // namespace

absl::Status SetNumericField(Message* message, const std::string& path, double value) {
  absl::StatusOr<std::vector<const FieldDescriptor*>> fields =
      ResolvePath(message->GetDescriptor(), path);
  if (!fields.ok()) return fields.status();
  for (size_t i = 0; i + 1 < fields->size(); ++i) {
    message = message->GetReflection()->MutableMessage(message, (*fields)[i]);
  }
  const FieldDescriptor* leaf = fields->back();
  const google::protobuf::Reflection* reflection = message->GetReflection();
  switch (leaf->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32: {
      absl::StatusOr<int32_t> v = ToInteger<int32_t>(path, value);
      if (!v.ok()) return v.status();
      reflection->SetInt32(message, leaf, *v);
      break;
    }
    case FieldDescriptor::CPPTYPE_INT64: {
      absl::StatusOr<int64_t> v = ToInteger<int64_t>(path, value);
      if (!v.ok()) return v.status();
      reflection->SetInt64(message, leaf, *v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT32: {
      absl::StatusOr<uint32_t> v = ToInteger<uint32_t>(path, value);
      if (!v.ok()) return v.status();
      reflection->SetUInt32(message, leaf, *v);
      break;
    }
    case FieldDescriptor::CPPTYPE_UINT64: {
      absl::StatusOr<uint64_t> v = ToInteger<uint64_t>(path, value);
      if (!v.ok()) return v.status();
      reflection->SetUInt64(message, leaf, *v);
      break;
    }
    case FieldDescriptor::CPPTYPE_BOOL:
      if (value != 0 && value != 1) {
        return absl::InvalidArgumentError(
            absl::StrCat("field path '", path, "': a bool takes 0 or 1, not ", value));
      }
      reflection->SetBool(message, leaf, value == 1);
      break;
    case FieldDescriptor::CPPTYPE_FLOAT:
    case FieldDescriptor::CPPTYPE_DOUBLE:
      if (!std::isfinite(value)) {
        return absl::InvalidArgumentError(
            absl::StrCat("field path '", path, "': ", value, " is not finite"));
      }
      if (leaf->cpp_type() == FieldDescriptor::CPPTYPE_FLOAT) {
        reflection->SetFloat(message, leaf, static_cast<float>(value));
      } else {
        reflection->SetDouble(message, leaf, value);
      }
      break;
    default:
      break;  // ResolvePath admits numeric leaves only.
  }
  return absl::OkStatus();
}

absl::StatusOr<double> GetNumericField(const Message& message, const std::string& path) {
  absl::StatusOr<std::vector<const FieldDescriptor*>> fields =
      ResolvePath(message.GetDescriptor(), path);
  if (!fields.ok()) return fields.status();
  const Message* current = &message;
  for (size_t i = 0; i + 1 < fields->size(); ++i) {
    current = &current->GetReflection()->GetMessage(*current, (*fields)[i]);
  }
  const FieldDescriptor* leaf = fields->back();
  const google::protobuf::Reflection* reflection = current->GetReflection();
  switch (leaf->cpp_type()) {
    case FieldDescriptor::CPPTYPE_INT32:
      return reflection->GetInt32(*current, leaf);
    case FieldDescriptor::CPPTYPE_INT64:
      return static_cast<double>(reflection->GetInt64(*current, leaf));
    case FieldDescriptor::CPPTYPE_UINT32:
      return reflection->GetUInt32(*current, leaf);
    case FieldDescriptor::CPPTYPE_UINT64:
      return static_cast<double>(reflection->GetUInt64(*current, leaf));
    case FieldDescriptor::CPPTYPE_BOOL:
      return reflection->GetBool(*current, leaf) ? 1.0 : 0.0;
    case FieldDescriptor::CPPTYPE_FLOAT:
      return reflection->GetFloat(*current, leaf);
    case FieldDescriptor::CPPTYPE_DOUBLE:
      return reflection->GetDouble(*current, leaf);
    default:
      return absl::InternalError("unreachable");
  }
}

}  // namespace saelab
