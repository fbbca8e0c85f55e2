#include "experiments/runner.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <system_error>

#include "absl/strings/str_cat.h"
#include "experiments/analysis.h"
#include "experiments/experiment_config.pb.h"
#include "experiments/registry.h"
#include "harness/distributed.h"
#include "harness/file_io.h"
#include "harness/log.h"
#include "harness/provenance.h"
#include "harness/run_dir.h"
#include "harness/runfiles.h"
#include "harness/seed.h"
#include "harness/status_macros.h"
#include "harness/textproto.h"

namespace saelab {
namespace {

// Debian's python has python3-matplotlib and python3-protobuf; the first
// python3 on PATH may be another installation without them.
constexpr char kPython[] = "/usr/bin/python3";

absl::Status RunPlot(const std::string& script, const std::string& run_dir, const char* argv0) {
  ASSIGN_OR_RETURN(std::string script_path, FindRunfile("saelab/" + script, argv0));
  ASSIGN_OR_RETURN(std::string module_dir, FindRunfile("saelab/harness/result_pb2.py", argv0));
  module_dir = module_dir.substr(0, module_dir.rfind('/'));
  std::string command =
      absl::StrCat("PYTHONPATH='", module_dir, "' ", kPython, " '", script_path, "' --result '",
                   run_dir, "/result.pb' --out_dir '", run_dir, "'");
  int status = std::system(command.c_str());
  if (status != 0) {
    return absl::InternalError(
        absl::StrCat("plot failed (exit ", WEXITSTATUS(status), "): ", command));
  }
  return absl::OkStatus();
}

// An experiment config's own `plot` field (true when it has none).
bool PlotRequested(const google::protobuf::Message& config) {
  const google::protobuf::FieldDescriptor* plot = config.GetDescriptor()->FindFieldByName("plot");
  if (plot == nullptr || plot->type() != google::protobuf::FieldDescriptor::TYPE_BOOL) return true;
  return config.GetReflection()->GetBool(config, plot);
}

}  // namespace

absl::StatusOr<RunnerOutcome> RunExperiment(const RunnerOptions& options) {
  PhaseClock total_clock;
  ExperimentConfig config;
  RETURN_IF_ERROR(ParseTextProtoFile(options.config_path, &config));
  FillDefaults(&config);
  if (!options.model_dir.empty()) {
    if (!config.has_subject_sae()) {
      return absl::InvalidArgumentError(absl::StrCat(
          options.config_path, ": --model_dir given, but this experiment reads no subject model"));
    }
    config.mutable_subject_sae()->mutable_activations()->set_model_dir(options.model_dir);
  }
  if (config.name().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(options.config_path, ": `name` is required"));
  }
  absl::StatusOr<const ExperimentEntry*> found = FindExperiment(config);
  if (!found.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(options.config_path, ": ", found.status().message()));
  }
  const ExperimentEntry* experiment = *found;
  const std::string as_run_text = ToTextProto(config);
  const std::string config_sha256 = ProtoSha256(config);
  // Data-parallel workers run the whole experiment alike (the same
  // decisions, so the same collectives, in the same order); rank 0's run
  // directory holds the results and the SAEs, the others work in a scratch
  // directory of their own, removed when they finish.
  Communicator* comm = ProcessCommunicator();
  const bool worker = comm != nullptr && comm->rank() > 0;
  std::string run_dir = options.run_dir;
  if (worker) {
    run_dir = absl::StrCat(TempDirectory(), "/saelab-", config.name(), "-rank", comm->rank(),
                           "-", getpid());
  }
  ASSIGN_OR_RETURN(RunDir run, OpenRunDir(run_dir, config.name(), as_run_text, config_sha256));
  if (comm != nullptr) {
    ASSIGN_OR_RETURN(const std::string rank0_dir, comm->BroadcastString(run.path));
    if (worker) {
      Log("rank %d of %d: results go to rank 0's %s; scratch here: %s", comm->rank(),
          comm->world_size(), rank0_dir.c_str(), run.path.c_str());
    }
  }
  Log("%s run directory: %s", run.resumed ? "resuming" : "new", run.path.c_str());

  RunnerOutcome outcome;
  outcome.run_dir = run.path;
  ExperimentResult& result = outcome.result;
  result.set_name(config.name());
  *result.mutable_provenance() =
      CollectProvenance(config_sha256, config.seed(), options.argc, options.argv);
  if (comm != nullptr) result.mutable_provenance()->set_data_parallel_ranks(comm->world_size());
  SeedTree seeds(config.seed());
  const google::protobuf::Message& experiment_config = ExperimentMessage(config);
  result.set_experiment(experiment->name);
  RETURN_IF_ERROR(experiment->run(experiment_config, run.path, &seeds, &result));
  CheckClaims(config.claims(), &result);
  RecordSeeds(seeds, result.mutable_provenance());
  RecordPhase("total", total_clock.Seconds(), result.mutable_provenance());
  RETURN_IF_ERROR(WriteBinaryProtoFile(run.path + "/result.pb", result));
  RETURN_IF_ERROR(WriteTextProtoFile(run.path + "/result.textproto", result));
  if (worker) {
    // Rank 0 has the same results; report its directory.
    std::error_code ignored;  // a leftover scratch directory costs only disk
    std::filesystem::remove_all(run.path, ignored);
    ASSIGN_OR_RETURN(outcome.run_dir, comm->BroadcastString(""));
    return outcome;
  }
  if (comm != nullptr) RETURN_IF_ERROR(comm->BroadcastString(run.path).status());
  if (options.plot && !experiment->plot_script.empty() && PlotRequested(experiment_config)) {
    const char* argv0 = options.argc > 0 ? options.argv[0] : nullptr;
    RETURN_IF_ERROR(RunPlot(experiment->plot_script, run.path, argv0));
  }
  return outcome;
}

}  // namespace saelab
