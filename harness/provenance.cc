#include "harness/provenance.h"

#include <unistd.h>

#include <thread>

#include <ATen/Parallel.h>
#include <torch/cuda.h>
#include <torch/version.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/strings/str_split.h"
#include "google/protobuf/stubs/common.h"
#include "harness/build_info.h"
#include "harness/file_io.h"

namespace saelab {
namespace {

std::string CpuModel() {
  absl::StatusOr<std::string> cpuinfo = ReadFile("/proc/cpuinfo");
  if (!cpuinfo.ok()) return "unknown";
  for (absl::string_view line : absl::StrSplit(*cpuinfo, '\n')) {
    if (absl::StartsWith(line, "model name")) {
      size_t colon = line.find(':');
      if (colon != absl::string_view::npos) {
        return std::string(absl::StripAsciiWhitespace(line.substr(colon + 1)));
      }
    }
  }
  return "unknown";
}

}  // namespace

Provenance CollectProvenance(const std::string& config_sha256, uint64_t root_seed, int argc,
                             char** argv) {
  Provenance p;
  p.set_git_commit(BuildGitCommit());
  p.set_git_dirty(BuildGitDirty());
  p.set_config_sha256(config_sha256);
  p.set_root_seed(root_seed);
  p.set_libtorch_version(TORCH_VERSION);
  p.set_protobuf_version(google::protobuf::internal::VersionString(GOOGLE_PROTOBUF_VERSION));
#if defined(__clang__)
  p.set_compiler(absl::StrCat("clang ", __clang_version__));
#elif defined(__GNUC__)
  p.set_compiler(absl::StrCat("gcc ", __VERSION__));
#endif
  p.set_cpu_model(CpuModel());
  p.set_cpu_cores(static_cast<int32_t>(std::thread::hardware_concurrency()));
  p.set_torch_threads(at::get_num_threads());
  if (torch::cuda::is_available()) {
    p.set_gpu(absl::StrCat("cuda devices: ", torch::cuda::device_count()));
  }
  char host[256] = {0};
  if (gethostname(host, sizeof(host) - 1) == 0) p.set_hostname(host);
  p.set_start_time(absl::FormatTime(absl::RFC3339_sec, absl::Now(), absl::UTCTimeZone()));
  std::vector<std::string> args(argv, argv + argc);
  p.set_command_line(absl::StrJoin(args, " "));
  return p;
}

void RecordSeeds(const SeedTree& seeds, Provenance* provenance) {
  provenance->clear_seeds();
  for (const auto& [component, seed] : seeds.records()) {
    SeedRecord* record = provenance->add_seeds();
    record->set_component(component);
    record->set_seed(seed);
  }
}

void RecordPhase(const std::string& phase, double wall_seconds, Provenance* provenance) {
  PhaseTiming* timing = provenance->add_timings();
  timing->set_phase(phase);
  timing->set_wall_seconds(wall_seconds);
}

void RecordInput(const std::string& name, const std::string& sha256, Provenance* provenance) {
  InputHash* input = provenance->add_inputs();
  input->set_name(name);
  input->set_sha256(sha256);
}

}  // namespace saelab
