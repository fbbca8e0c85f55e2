#include "harness/proto_diff.h"

#include <vector>

#include "google/protobuf/descriptor.pb.h"
#include "gtest/gtest.h"

namespace saelab {
namespace {

using google::protobuf::FieldDescriptorProto;
using google::protobuf::FileDescriptorProto;

// descriptor.proto serves as a test message: nested, repeated, enum and
// string fields, with presence (proto2).
FileDescriptorProto Example() {
  FileDescriptorProto file;
  file.set_name("a.proto");
  file.add_dependency("b.proto");
  auto* message = file.add_message_type();
  message->set_name("M");
  for (int i = 1; i <= 3; ++i) {
    FieldDescriptorProto* field = message->add_field();
    field->set_name("f" + std::to_string(i));
    field->set_number(i);
    field->set_label(FieldDescriptorProto::LABEL_OPTIONAL);
  }
  return file;
}

TEST(ProtoDiffTest, EqualMessagesHaveNoDifferences) {
  EXPECT_TRUE(ProtoDifferences(Example(), Example()).empty());
}

TEST(ProtoDiffTest, NamesEachDifferingLeafWithBothValues) {
  FileDescriptorProto a = Example(), b = Example();
  b.set_name("c.proto");
  b.mutable_message_type(0)->mutable_field(2)->set_number(7);
  b.mutable_message_type(0)->mutable_field(1)->set_label(FieldDescriptorProto::LABEL_REPEATED);
  const std::vector<ProtoFieldDifference> d = ProtoDifferences(a, b);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].path, "name");
  EXPECT_EQ(d[0].first, "\"a.proto\"");
  EXPECT_EQ(d[0].second, "\"c.proto\"");
  EXPECT_EQ(d[1].path, "message_type[0].field[1].label");
  EXPECT_EQ(d[1].first, "LABEL_OPTIONAL");
  EXPECT_EQ(d[1].second, "LABEL_REPEATED");
  EXPECT_EQ(d[2].path, "message_type[0].field[2].number");
  EXPECT_EQ(d[2].first, "3");
  EXPECT_EQ(d[2].second, "7");
}

TEST(ProtoDiffTest, MissingAndUnsetFieldsAreShownAsSuch) {
  FileDescriptorProto a = Example(), b = Example();
  b.add_dependency("z.proto");
  a.set_package("");  // set to the default: differs from unset
  const std::vector<ProtoFieldDifference> d = ProtoDifferences(a, b);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].path, "package");
  EXPECT_EQ(d[0].first, "\"\"");
  EXPECT_EQ(d[0].second, "(unset)");
  EXPECT_EQ(d[1].path, "dependency[1]");
  EXPECT_EQ(d[1].first, "(absent)");
  EXPECT_EQ(d[1].second, "\"z.proto\"");
}

TEST(ProtoDiffTest, AMessageSetOnOneSideOnlyIsShownOnOneLine) {
  FileDescriptorProto a = Example(), b = Example();
  b.mutable_options()->set_java_package("x");
  const std::vector<ProtoFieldDifference> d = ProtoDifferences(a, b);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].path, "options");
  EXPECT_EQ(d[0].first, "(unset)");
  EXPECT_EQ(d[0].second, "{java_package: \"x\"}");
}

}  // namespace
}  // namespace saelab
