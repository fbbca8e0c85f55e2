#include "harness/proto_diff.h"

#include "absl/strings/str_cat.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"

namespace saelab {
namespace {

using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;
using google::protobuf::util::MessageDifferencer;
using FieldPath = std::vector<MessageDifferencer::SpecificField>;

std::string PathText(const FieldPath& path) {
  std::string text;
  for (const MessageDifferencer::SpecificField& f : path) {
    if (!text.empty()) text += ".";
    if (f.field == nullptr) {
      absl::StrAppend(&text, f.unknown_field_number);
    } else {
      text += f.field->name();
    }
    // An element only in the second message has only a new_index.
    const int index = f.index >= 0 ? f.index : f.new_index;
    if ((f.field == nullptr || f.field->is_repeated()) && index >= 0) {
      absl::StrAppend(&text, "[", index, "]");
    }
  }
  return text;
}

// The value of the path's last field in `parent` (the reporter is handed
// the messages that hold it, not the top-level ones); `second` picks the
// element index in the second message (it differs only for moved elements).
std::string ValueText(const Message& parent, const FieldPath& path, bool second) {
  const MessageDifferencer::SpecificField& last = path.back();
  const FieldDescriptor* field = last.field;
  if (field == nullptr) return "(unknown field)";
  const Reflection* reflection = parent.GetReflection();
  const int index = second ? last.new_index : last.index;
  if (field->is_repeated()) {
    if (index < 0 || index >= reflection->FieldSize(parent, field)) return "(absent)";
  } else if (field->has_presence() && !reflection->HasField(parent, field)) {
    return "(unset)";
  }
  google::protobuf::TextFormat::Printer printer;
  printer.SetSingleLineMode(true);
  std::string value;
  printer.PrintFieldValueToString(parent, field, field->is_repeated() ? index : -1, &value);
  // Single-line messages end in a space.
  while (!value.empty() && value.back() == ' ') value.pop_back();
  return field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE ? absl::StrCat("{", value, "}")
                                                               : value;
}

// Collects leaf differences; a modified message is reported after its
// modified fields, so it is skipped.
class Collector : public MessageDifferencer::Reporter {
 public:
  explicit Collector(std::vector<ProtoFieldDifference>* out) : out_(out) {}

  void ReportAdded(const Message& first, const Message& second, const FieldPath& path) override {
    Add(first, second, path);
  }
  void ReportDeleted(const Message& first, const Message& second, const FieldPath& path) override {
    Add(first, second, path);
  }
  void ReportModified(const Message& first, const Message& second, const FieldPath& path) override {
    const FieldDescriptor* field = path.back().field;
    if (field != nullptr && field->cpp_type() == FieldDescriptor::CPPTYPE_MESSAGE) return;
    Add(first, second, path);
  }

 private:
  void Add(const Message& first, const Message& second, const FieldPath& path) {
    out_->push_back({PathText(path), ValueText(first, path, false), ValueText(second, path, true)});
  }
  std::vector<ProtoFieldDifference>* out_;
};

}  // namespace

std::vector<ProtoFieldDifference> ProtoDifferences(const Message& first, const Message& second) {
  std::vector<ProtoFieldDifference> differences;
  {
    Collector collector(&differences);
    MessageDifferencer differencer;
    differencer.ReportDifferencesTo(&collector);
    differencer.Compare(first, second);
  }
  return differences;
}

}  // namespace saelab
