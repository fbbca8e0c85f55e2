// Fuzzes the SAELens importer (sae/interchange/saelens.h ImportSaeLens): a
// SAELens directory is cfg.json + sae_weights.safetensors, so the input is
// split into the two files (fuzz_support.h SplitParts: a 4-byte length, then
// cfg.json, then the rest is the weights), written into a scratch folder.
//
// Asserts, beyond "no crash":
//  - every error names the directory (the file at fault is in it);
//  - an imported SAE matches its resolved config (n_latents, architecture);
//  - it survives the round trip a user makes: ExportSaeLens writes it back
//    in the SAELens layout and ImportSaeLens reads that with the same
//    config, d_in and n_latents.
#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_support.h"
#include "harness/textproto.h"
#include "sae/factory.h"
#include "sae/interchange/saelens.h"
#include "sae/sae.h"
#include "sae/sae_config.pb.h"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::string dir = saelab::fuzz::ScratchPath("saelens");
  static const std::string exported = saelab::fuzz::ScratchPath("saelens-exported");
  static const bool made = (saelab::fuzz::MakeDirOrDie(dir), true);
  (void)made;
  const std::vector<absl::string_view> parts =
      saelab::fuzz::SplitParts(saelab::fuzz::AsStringView(data, size), 2);
  saelab::fuzz::WriteFileOrDie(dir + "/cfg.json", parts[0]);
  saelab::fuzz::WriteFileOrDie(dir + "/sae_weights.safetensors", parts[1]);

  saelab::SaeConfig config;
  absl::StatusOr<std::unique_ptr<saelab::Sae>> sae = saelab::ImportSaeLens(dir, &config);
  CheckErrorNames(sae.status(), dir, "ImportSaeLens");
  if (!sae.ok()) return 0;

  FuzzCheck((*sae)->n_latents() == config.n_latents(),
            absl::StrCat("imported n_latents ", (*sae)->n_latents(), " but the config says ",
                         config.n_latents()));
  FuzzCheck((*sae)->architecture() == saelab::ArchitectureName(config),
            absl::StrCat("imported a ", (*sae)->architecture(), " SAE with a ",
                         saelab::ArchitectureName(config), " config"));
  absl::Status written = saelab::ExportSaeLens(**sae, config, exported);
  FuzzCheck(written.ok(), absl::StrCat("an imported SAE does not export: ", written.ToString()));
  saelab::SaeConfig config_again;
  absl::StatusOr<std::unique_ptr<saelab::Sae>> again =
      saelab::ImportSaeLens(exported, &config_again);
  FuzzCheck(again.ok(), absl::StrCat("ImportSaeLens refuses what ExportSaeLens wrote: ",
                                     again.status().ToString()));
  FuzzCheck((*again)->d_in() == (*sae)->d_in() && (*again)->n_latents() == (*sae)->n_latents(),
            "the exported SAE reimports with another shape");
  FuzzCheck(saelab::ProtoSha256(config_again) == saelab::ProtoSha256(config),
            absl::StrCat("the exported SAE reimports with another config:\n",
                         saelab::ToTextProto(config), "\nvs\n", saelab::ToTextProto(config_again)));
  return 0;
}
