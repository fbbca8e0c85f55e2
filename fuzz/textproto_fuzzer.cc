// Fuzzes config textprotos (harness/textproto.h): the input is parsed as the
// root experiment config (ExperimentConfig, what `--config=` reads) and as
// an SaeConfig (what `saelab train --config=` reads).
//
// Asserts, beyond "no crash":
//  - a parse error names the file ("<name>:<line>:<column>: ...");
//  - an accepted config survives what a run does with it: FillDefaults, then
//    the as-run textproto (ToTextProto, written into the run directory)
//    parses back to the same config (equal ProtoSha256), which is how a
//    resumed run recognises its own config;
//  - ResolveSaeConfig on an accepted SaeConfig returns (OK or an error)
//    without undefined behaviour, whatever the numbers in it.
#include <cstddef>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "experiments/experiment_config.pb.h"
#include "fuzz/fuzz_support.h"
#include "google/protobuf/message.h"
#include "harness/textproto.h"
#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

constexpr char kName[] = "fuzz-input.textproto";

// Parses `text` into `message`; if accepted, checks the as-run round trip.
// Returns whether it parsed.
bool ParseAndRoundTrip(absl::string_view text, google::protobuf::Message* message) {
  absl::Status parsed = saelab::ParseTextProto(text, kName, message);
  CheckErrorNames(parsed, kName, "ParseTextProto");
  if (!parsed.ok()) return false;
  saelab::FillDefaults(message);
  const std::string as_run = saelab::ToTextProto(*message);
  std::unique_ptr<google::protobuf::Message> again(message->New());
  absl::Status reparsed = saelab::ParseTextProto(as_run, kName, again.get());
  FuzzCheck(reparsed.ok(), absl::StrCat("the as-run ", message->GetTypeName(),
                                        " does not parse back: ", reparsed.ToString(), "\n",
                                        as_run));
  FuzzCheck(saelab::ProtoSha256(*again) == saelab::ProtoSha256(*message),
            absl::StrCat("the as-run ", message->GetTypeName(),
                         " parses back to a different config:\n", as_run, "\nvs\n",
                         saelab::ToTextProto(*again)));
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text = saelab::fuzz::AsStringView(data, size);
  saelab::ExperimentConfig experiment;
  ParseAndRoundTrip(text, &experiment);
  saelab::SaeConfig sae;
  if (ParseAndRoundTrip(text, &sae)) {
    (void)saelab::ResolveSaeConfig(/*d_in=*/64, &sae);
  }
  return 0;
}
