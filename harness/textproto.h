// Configs as textproto: parsing with errors that name the file, line and
// field; filling in documented defaults; the canonical hash of a config.
//
//   ExperimentConfig config;
//   RETURN_IF_ERROR(ParseTextProtoFile("experiments/quickstart.textproto", &config));
//   FillDefaults(&config);  // the as-run config
//   std::string hash = ConfigSha256(config);
#ifndef SAELAB_HARNESS_TEXTPROTO_H_
#define SAELAB_HARNESS_TEXTPROTO_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"

namespace saelab {

// Parses `text` into `message` (cleared first). Errors read
// "<name_for_errors>:<line>:<column>: <what>", e.g. an unknown field:
// `exp.textproto:3:5: Message type "saelab.TopKConfig" has no field named "kk".`
absl::Status ParseTextProto(absl::string_view text, const std::string& name_for_errors,
                            google::protobuf::Message* message);

// Reads and parses a textproto file; errors name the file as above.
absl::Status ParseTextProtoFile(const std::string& path, google::protobuf::Message* message);

// Sets every unset singular field that has an explicit `[default = ...]` to
// that default, creates unset singular sub-messages that are not part of a
// oneof (so their defaults appear too), and recurses into all set
// sub-messages. Fields without an explicit default stay unset: for them,
// "unset" means "derived by the code", which resolves them itself.
void FillDefaults(google::protobuf::Message* message);

// The textproto form (for as-run configs and human-readable results).
std::string ToTextProto(const google::protobuf::Message& message);

// Writes the textproto form / the binary form atomically.
absl::Status WriteTextProtoFile(const std::string& path, const google::protobuf::Message& message);
absl::Status WriteBinaryProtoFile(const std::string& path, const google::protobuf::Message& message);

// Reads a binary proto file; errors name the file.
absl::Status ReadBinaryProtoFile(const std::string& path, google::protobuf::Message* message);

// sha256 (hex) of the deterministic binary serialization.
std::string ProtoSha256(const google::protobuf::Message& message);

}  // namespace saelab

#endif  // SAELAB_HARNESS_TEXTPROTO_H_
