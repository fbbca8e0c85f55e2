#include "experiments/registry.h"

#include <string>

#include "gtest/gtest.h"

namespace saelab {
namespace {

// This test links the registry alone plus the one registration below, so
// what it finds is exactly what it registered.
absl::Status RunForTest(const SyntheticRecoveryConfig& config, const std::string& run_dir,
                        SeedTree*, ExperimentResult* result) {
  result->set_name(absl::StrCat("ran ", config.sweeps_size(), " in ", run_dir));
  return absl::OkStatus();
}
SAELAB_REGISTER_EXPERIMENT(synthetic_recovery, SyntheticRecoveryConfig, RunForTest,
                           "results/plot_synthetic_recovery.py");

TEST(RegistryTest, FindsTheRegisteredExperimentOfTheSetOneofCaseAndRunsIt) {
  ExperimentConfig config;
  config.mutable_synthetic_recovery()->add_sweeps();
  absl::StatusOr<const ExperimentEntry*> entry = FindExperiment(config);
  ASSERT_TRUE(entry.ok()) << entry.status();
  EXPECT_EQ((*entry)->name, "synthetic_recovery");
  EXPECT_EQ((*entry)->plot_script, "results/plot_synthetic_recovery.py");
  SeedTree seeds(1);
  ExperimentResult result;
  ASSERT_TRUE((*entry)->run(ExperimentMessage(config), "/run", &seeds, &result).ok());
  EXPECT_EQ(result.name(), "ran 1 in /run");
}

TEST(RegistryTest, NoExperimentSetIsAnErrorListingTheRegisteredOnes) {
  absl::Status status = FindExperiment(ExperimentConfig()).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("no experiment set; one of: synthetic_recovery"),
            std::string::npos)
      << status;
}

TEST(RegistryTest, AnExperimentNotLinkedIntoTheBinaryIsNamed) {
  ExperimentConfig config;
  config.mutable_train_subject_lm();
  absl::Status status = FindExperiment(config).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(status.message()).find("'train_subject_lm' is not linked"),
            std::string::npos)
      << status;
}

TEST(RegistryDeathTest, RegisteringANameThatIsNotAOneofFieldAborts) {
  EXPECT_DEATH(RegisterExperiment(ExperimentEntry{"no_such_experiment", "", nullptr}),
               "'no_such_experiment' is not a field of ExperimentConfig's experiment oneof");
}

TEST(RegistryDeathTest, RegisteringTwiceAborts) {
  EXPECT_DEATH(RegisterExperiment(ExperimentEntry{"synthetic_recovery", "", nullptr}),
               "'synthetic_recovery' is registered twice");
}

TEST(RegistryDeathTest, RegisteringWithTheWrongConfigTypeAborts) {
  EXPECT_DEATH(
      internal::CheckExperimentFieldType("subject_sae", SyntheticRecoveryConfig::descriptor()),
      "registered with config type saelab.SyntheticRecoveryConfig but the oneof field "
      "holds saelab.SubjectSaeConfig");
}

}  // namespace
}  // namespace saelab
