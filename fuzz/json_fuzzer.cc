// Fuzzes the guarded JSON reader every JSON format goes through
// (harness/json_fields.h: safetensors headers, HF config.json and
// vocab.json, SAELens and sparsify cfg.json) and its typed field reads.
//
// Asserts, beyond "no crash, no uncaught exception, no stack overflow":
//  - an error names the context it was given;
//  - a value it accepts is nested at most kMaxJsonDepth deep (the guard that
//    keeps a 100,000-level file from overflowing the stack);
//  - an accepted value round-trips: dump() parses back to an equal value;
//  - IntegerValue / RequiredPositiveInteger on every member either return
//    an error naming the file and key, or a value that obeys their contract.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "fuzz/fuzz_support.h"
#include "harness/json_fields.h"
#include "nlohmann/json.hpp"

namespace {

using saelab::fuzz::CheckErrorNames;
using saelab::fuzz::FuzzCheck;

constexpr char kName[] = "fuzz-input.json";

// Nesting depth of `root` (a scalar is 0, [] is 1), without recursion so that
// a guard failure shows up as a failed check rather than a stack overflow.
int Depth(const nlohmann::json& root) {
  int deepest = 0;
  std::vector<std::pair<const nlohmann::json*, int>> stack = {{&root, 0}};
  while (!stack.empty()) {
    auto [value, depth] = stack.back();
    stack.pop_back();
    if (!value->is_structured()) continue;
    deepest = std::max(deepest, depth + 1);
    for (const nlohmann::json& child : *value) stack.push_back({&child, depth + 1});
  }
  return deepest;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text = saelab::fuzz::AsStringView(data, size);
  absl::StatusOr<nlohmann::json> json = saelab::ParseJson(text, kName);
  CheckErrorNames(json.status(), kName, "ParseJson");
  if (!json.ok()) return 0;

  FuzzCheck(Depth(*json) <= saelab::kMaxJsonDepth,
            absl::StrCat("ParseJson accepted a value nested ", Depth(*json), " deep"));
  const std::string dumped = json->dump();
  absl::StatusOr<nlohmann::json> again = saelab::ParseJson(dumped, kName);
  FuzzCheck(again.ok(), absl::StrCat("dump() of an accepted value does not parse: ", dumped));
  FuzzCheck(*again == *json, absl::StrCat("dump() does not round-trip: ", dumped));

  if (json->is_object()) {
    for (const auto& [key, value] : json->items()) {
      absl::StatusOr<int64_t> n = saelab::IntegerValue(value, kName, key);
      CheckErrorNames(n.status(), kName, "IntegerValue");
      if (n.ok()) {
        FuzzCheck(value.is_number(), "IntegerValue accepted a non-number");
      }
      absl::StatusOr<int64_t> positive = saelab::RequiredPositiveInteger(*json, kName, key);
      CheckErrorNames(positive.status(), kName, "RequiredPositiveInteger");
      if (positive.ok()) FuzzCheck(*positive >= 1, "RequiredPositiveInteger returned < 1");
    }
  }
  return 0;
}
