// The fields in which two messages of the same type differ, with both
// values, for errors that say exactly what differs ("key field hook_name is
// "blocks.1.hook_resid_post" there, "blocks.2.hook_resid_post" wanted")
// rather than "the keys differ".
//
//   for (const ProtoFieldDifference& d : ProtoDifferences(found, wanted)) {
//     // d.path "chunks[2].rows", d.first "5", d.second "7"
//   }
#ifndef SAELAB_HARNESS_PROTO_DIFF_H_
#define SAELAB_HARNESS_PROTO_DIFF_H_

#include <string>
#include <vector>

#include "google/protobuf/message.h"

namespace saelab {

// One leaf field that differs.
struct ProtoFieldDifference {
  // Field names from the top message, joined by '.', with the index of a
  // repeated field's element: "hook_name", "stats.mean[3]", "chunks[2].rows".
  std::string path;
  // The values in text format (strings quoted, enums by name, a message on
  // one line); "(unset)" for a field that has presence and is not set,
  // "(absent)" for a repeated element past the end.
  std::string first, second;
};

// Every differing leaf field of `first` and `second` (which must have the
// same type), in field order; empty when they are equal. Comparison is
// exact: an unset field with presence differs from one set to its default
// (as their serialisations, and so ProtoSha256, differ).
std::vector<ProtoFieldDifference> ProtoDifferences(const google::protobuf::Message& first,
                                                   const google::protobuf::Message& second);

}  // namespace saelab

#endif  // SAELAB_HARNESS_PROTO_DIFF_H_
