// The parser against Abseil's flag syntax, case by case.
#include "tools/internal/command_line.h"

#include <gtest/gtest.h>

namespace saelab {
namespace {

CommandLine Flags() {
  return CommandLine({{"activations", FlagType::kString, "", "file"},
                      {"k", FlagType::kInt, "32", "active latents"},
                      {"lr", FlagType::kDouble, "0.0004", "learning rate"},
                      {"resume", FlagType::kBool, "true", "resume"},
                      {"decode", FlagType::kBool, "", "decode"}});
}

TEST(CommandLineTest, ParsesAbseilsSyntax) {
  CommandLine flags = Flags();
  ASSERT_TRUE(flags
                  .Parse({"--activations=a.npy", "--k", "64", "-lr=1e-3", "--noresume", "--decode",
                          "pos", "--", "--k=1"})
                  .ok());
  EXPECT_EQ(flags.String("activations"), "a.npy");
  EXPECT_EQ(flags.Int("k"), 64);
  EXPECT_DOUBLE_EQ(flags.Double("lr"), 1e-3);
  EXPECT_FALSE(flags.Bool("resume"));
  EXPECT_TRUE(flags.Bool("decode"));
  EXPECT_EQ(flags.positional(), (std::vector<std::string>{"pos", "--k=1"}));
  EXPECT_TRUE(flags.Given("k"));
  EXPECT_FALSE(flags.help());
}

TEST(CommandLineTest, DefaultsApplyWhenAFlagIsAbsent) {
  CommandLine flags = Flags();
  ASSERT_TRUE(flags.Parse({"--help"}).ok());
  EXPECT_TRUE(flags.help());
  EXPECT_EQ(flags.Int("k"), 32);
  EXPECT_DOUBLE_EQ(flags.Double("lr"), 4e-4);
  EXPECT_TRUE(flags.Bool("resume"));
  EXPECT_FALSE(flags.Bool("decode"));
  EXPECT_FALSE(flags.Given("k"));
  EXPECT_TRUE(IsUsageError(flags.Require("activations")));
}

TEST(CommandLineTest, BadFlagsAreUsageErrorsNamingTheFlag) {
  const struct {
    std::vector<std::string> args;
    const char* message;
  } cases[] = {
      {{"--kk=3"}, "unknown flag --kk"},
      {{"--k=2.5"}, "flag --k='2.5' is not an integer"},
      {{"--lr=fast"}, "flag --lr='fast' is not a number"},
      {{"--resume=maybe"}, "flag --resume='maybe' is not true or false"},
      {{"--k"}, "flag --k needs a value"},
      {{"--k=1", "--k=2"}, "flag --k given twice"},
      {{"--nok"}, "unknown flag --nok"},
  };
  for (const auto& c : cases) {
    CommandLine flags = Flags();
    absl::Status status = flags.Parse(c.args);
    EXPECT_TRUE(IsUsageError(status)) << c.message << ": " << status;
    EXPECT_EQ(status.message(), c.message);
  }
  EXPECT_FALSE(IsUsageError(absl::InvalidArgumentError("data")));
}

TEST(CommandLineTest, HelpListsEveryFlagWithItsDefault) {
  const std::string help = Flags().FlagHelp();
  EXPECT_NE(help.find("  --k=N  (default 32)\n      active latents\n"), std::string::npos) << help;
  EXPECT_NE(help.find("  --decode\n      decode\n"), std::string::npos) << help;
}

}  // namespace
}  // namespace saelab
