// The experiment registry: each experiment registers, from its own .cc, the
// function that runs one case of ExperimentConfig's `experiment` oneof, so
// the runner has no switch to grow and a new kind of experiment touches only
// its own files, one oneof entry and one BUILD dependency.
//
//   // experiments/my_experiment.cc
//   absl::Status RunMyExperiment(const MyExperimentConfig& config, const std::string& run_dir,
//                                SeedTree* seeds, ExperimentResult* result);
//   SAELAB_REGISTER_EXPERIMENT(my_experiment, MyExperimentConfig, RunMyExperiment,
//                              "results/plot_my_experiment.py");
//
// The first argument is the oneof field's name; registration checks that
// the field exists and holds `MyExperimentConfig`, and aborts the program at
// start-up otherwise (a programming error, caught by any test that links it).
// The library that registers must be `alwayslink = True` in its BUILD rule.
#ifndef SAELAB_EXPERIMENTS_REGISTRY_H_
#define SAELAB_EXPERIMENTS_REGISTRY_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "experiments/experiment_config.pb.h"
#include "google/protobuf/message.h"
#include "harness/result.pb.h"
#include "harness/seed.h"

namespace saelab {

// One registered experiment.
struct ExperimentEntry {
  // The `experiment` oneof field's name, e.g. "synthetic_recovery"; also
  // ExperimentResult.experiment.
  std::string name;
  // Workspace-relative plot script run on the result ("" for none). It runs
  // when the runner is asked to plot and the experiment's config has no
  // `plot` field or sets it to true.
  std::string plot_script;
  // Runs the experiment. `config` is the oneof's message, defaults filled in.
  std::function<absl::Status(const google::protobuf::Message& config, const std::string& run_dir,
                             SeedTree* seeds, ExperimentResult* result)>
      run;
};

// Adds `entry`; aborts if the name is taken or is not a message field of
// ExperimentConfig's `experiment` oneof.
void RegisterExperiment(ExperimentEntry entry);

// Every registered experiment, sorted by name.
std::vector<const ExperimentEntry*> RegisteredExperiments();

// The entry for the oneof case set in `config`. InvalidArgument when no
// case is set (listing the registered names) or the set case has no
// registered experiment (its library is not linked into this binary).
absl::StatusOr<const ExperimentEntry*> FindExperiment(const ExperimentConfig& config);

// The oneof's message of `config` (whatever case is set).
const google::protobuf::Message& ExperimentMessage(const ExperimentConfig& config);

namespace internal {

// Aborts unless ExperimentConfig's field `name` has message type `type`.
void CheckExperimentFieldType(const char* name, const google::protobuf::Descriptor* type);

template <typename Config>
struct ExperimentRegistrar {
  using RunFn = absl::Status (*)(const Config&, const std::string&, SeedTree*, ExperimentResult*);
  ExperimentRegistrar(const char* name, RunFn run, const char* plot_script) {
    CheckExperimentFieldType(name, Config::descriptor());
    RegisterExperiment(
        ExperimentEntry{name, plot_script,
                        [run](const google::protobuf::Message& config, const std::string& run_dir,
                              SeedTree* seeds, ExperimentResult* result) {
                          return run(static_cast<const Config&>(config), run_dir, seeds, result);
                        }});
  }
};

}  // namespace internal

#define SAELAB_REGISTER_EXPERIMENT(name, ConfigType, run_fn, plot_script) \
  static const ::saelab::internal::ExperimentRegistrar<ConfigType>        \
      saelab_experiment_registrar_##name(#name, run_fn, plot_script)

}  // namespace saelab

#endif  // SAELAB_EXPERIMENTS_REGISTRY_H_
