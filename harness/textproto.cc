#include "harness/textproto.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/text_format.h"
#include "harness/file_io.h"
#include "harness/sha256.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

// Collects parser errors as "<file>:<line>:<column>: <message>" (1-based).
class CollectingErrorCollector : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectingErrorCollector(std::string name) : name_(std::move(name)) {}
  void AddError(int line, int column, const std::string& message) override {
    errors_.push_back(absl::StrCat(name_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, int column, const std::string& message) override {
    AddError(line, column, absl::StrCat("warning: ", message));
  }
  const std::vector<std::string>& errors() const { return errors_; }

 private:
  std::string name_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::Status ParseTextProto(absl::string_view text, const std::string& name_for_errors,
                            Message* message) {
  message->Clear();
  CollectingErrorCollector collector(name_for_errors);
  google::protobuf::TextFormat::Parser parser;
  parser.RecordErrorsTo(&collector);
  google::protobuf::io::ArrayInputStream input(text.data(), static_cast<int>(text.size()));
  if (!parser.Parse(&input, message) || !collector.errors().empty()) {
    if (collector.errors().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(name_for_errors, ": not a valid ", message->GetTypeName(), " textproto"));
    }
    return absl::InvalidArgumentError(absl::StrJoin(collector.errors(), "\n"));
  }
  return absl::OkStatus();
}

absl::Status ParseTextProtoFile(const std::string& path, Message* message) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return ParseTextProto(text, path, message);
}

void FillDefaults(Message* message) {
  const Descriptor* descriptor = message->GetDescriptor();
  const Reflection* reflection = message->GetReflection();
  for (int i = 0; i < descriptor->field_count(); ++i) {
    const FieldDescriptor* field = descriptor->field(i);
    if (field->is_repeated()) {
      if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
        for (int j = 0; j < reflection->FieldSize(*message, field); ++j) {
          FillDefaults(reflection->MutableRepeatedMessage(message, field, j));
        }
      }
      continue;
    }
    if (field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) {
      // A oneof member is a choice: only the chosen one is filled.
      bool chosen = reflection->HasField(*message, field);
      if (field->containing_oneof() != nullptr && !chosen) continue;
      FillDefaults(reflection->MutableMessage(message, field));
      continue;
    }
    if (reflection->HasField(*message, field) || !field->has_default_value()) continue;
    if (field->containing_oneof() != nullptr) continue;
    switch (field->cpp_type()) {
      case FieldDescriptor::CPPTYPE_INT32:
        reflection->SetInt32(message, field, field->default_value_int32());
        break;
      case FieldDescriptor::CPPTYPE_INT64:
        reflection->SetInt64(message, field, field->default_value_int64());
        break;
      case FieldDescriptor::CPPTYPE_UINT32:
        reflection->SetUInt32(message, field, field->default_value_uint32());
        break;
      case FieldDescriptor::CPPTYPE_UINT64:
        reflection->SetUInt64(message, field, field->default_value_uint64());
        break;
      case FieldDescriptor::CPPTYPE_DOUBLE:
        reflection->SetDouble(message, field, field->default_value_double());
        break;
      case FieldDescriptor::CPPTYPE_FLOAT:
        reflection->SetFloat(message, field, field->default_value_float());
        break;
      case FieldDescriptor::CPPTYPE_BOOL:
        reflection->SetBool(message, field, field->default_value_bool());
        break;
      case FieldDescriptor::CPPTYPE_ENUM:
        reflection->SetEnum(message, field, field->default_value_enum());
        break;
      case FieldDescriptor::CPPTYPE_STRING:
        reflection->SetString(message, field, field->default_value_string());
        break;
      case FieldDescriptor::CPPTYPE_MESSAGE:
        break;
    }
  }
}

std::string ToTextProto(const Message& message) {
  std::string text;
  google::protobuf::TextFormat::PrintToString(message, &text);
  return text;
}

absl::Status WriteTextProtoFile(const std::string& path, const Message& message) {
  return AtomicWriteFile(path, ToTextProto(message));
}

absl::Status WriteBinaryProtoFile(const std::string& path, const Message& message) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) {
    return absl::InternalError(absl::StrCat("cannot serialize ", message.GetTypeName(), " for ", path));
  }
  return AtomicWriteFile(path, bytes);
}

absl::Status ReadBinaryProtoFile(const std::string& path, Message* message) {
  ASSIGN_OR_RETURN(std::string bytes, ReadFile(path));
  if (!message->ParseFromString(bytes)) {
    return absl::DataLossError(
        absl::StrCat(path, ": not a valid binary ", message->GetTypeName()));
  }
  return absl::OkStatus();
}

std::string ProtoSha256(const Message& message) {
  // Deterministic serialization orders map entries, so equal messages give
  // equal bytes within this protobuf version.
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    message.SerializeToCodedStream(&coded);
  }
  return Sha256Hex(bytes);
}

}  // namespace saelab
