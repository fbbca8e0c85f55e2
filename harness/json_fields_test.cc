#include "harness/json_fields.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/match.h"
#include "gtest/gtest.h"
#include "harness/safetensors.h"

namespace saelab {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonFieldsTest, ParsesOrdinaryJson) {
  const absl::StatusOr<nlohmann::json> json =
      ParseJson(R"({"a": [1, {"b": "x[{\"y"}], "c": null})", "cfg.json");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ((*json)["a"][1]["b"], "x[{\"y");
  // 256 levels are fine.
  EXPECT_TRUE(ParseJson(Nested(256), "deep.json").ok());
}

// A file nested 100,000 deep used to crash the process (the JSON library
// recursed); now it is an error naming the file and the place.
TEST(JsonFieldsTest, RefusesDeepNestingWithoutCrashing) {
  const absl::StatusOr<nlohmann::json> json = ParseJson(Nested(100000), "config.json");
  ASSERT_FALSE(json.ok());
  EXPECT_EQ(json.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(json.status().message(),
            "config.json: not valid JSON: nested deeper than 256 levels at byte 256");
  // Brackets inside strings (with escaped quotes) do not count.
  const std::string in_string = "{\"k\": \"\\\"" + std::string(1000, '[') + "\"}";
  EXPECT_TRUE(ParseJson(in_string, "s.json").ok());
  // Malformed JSON names the file.
  const absl::StatusOr<nlohmann::json> bad = ParseJson("{\"a\": }", "cfg.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_TRUE(absl::StartsWith(bad.status().message(), "cfg.json: not valid JSON: "))
      << bad.status();
}

TEST(JsonFieldsTest, DeepSafetensorsHeaderIsAnError) {
  const std::string header = "{\"__metadata__\": " + Nested(100000) + "}";
  std::string bytes(8, '\0');
  const uint64_t length = header.size();
  std::memcpy(bytes.data(), &length, sizeof(length));
  bytes += header;
  const absl::StatusOr<SafetensorsContents> contents = ParseSafetensors(bytes, "sae.safetensors");
  ASSERT_FALSE(contents.ok());
  EXPECT_TRUE(absl::StartsWith(contents.status().message(),
                               "sae.safetensors: header: not valid JSON: nested deeper"))
      << contents.status();
}

}  // namespace
}  // namespace saelab
