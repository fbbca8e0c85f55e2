// Numeric fields of a message addressed by a dotted path, for sweeps over
// any field of a config ("n_latents", "trainer.lr", "topk.k"):
//
//   SaeConfig config = ...;
//   RETURN_IF_ERROR(SetNumericField(&config, "trainer.total_tokens", 1048576));
//   ASSIGN_OR_RETURN(double lr, GetNumericField(config, "trainer.lr"));
//
// Reflection does the work; what is written here is only the path walk and
// the checks that a value fits its field.
#ifndef SAELAB_HARNESS_PROTO_PATH_H_
#define SAELAB_HARNESS_PROTO_PATH_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "google/protobuf/message.h"

namespace saelab {

// Sets the singular numeric field at `path` (message fields on the way are
// created; a oneof member is selected). Integer fields need an integral
// value in their range, bool fields 0 or 1, float fields a finite value.
// InvalidArgument naming the path: unknown field (listing the message's
// fields), a repeated or non-numeric field, a value that does not fit.
absl::Status SetNumericField(google::protobuf::Message* message, const std::string& path,
                             double value);

// The value of the singular numeric field at `path` (its default if unset),
// as a double. InvalidArgument as SetNumericField.
absl::StatusOr<double> GetNumericField(const google::protobuf::Message& message,
                                       const std::string& path);

}  // namespace saelab

#endif  // SAELAB_HARNESS_PROTO_PATH_H_
