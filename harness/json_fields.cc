#include "harness/json_fields.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"

namespace saelab {

absl::StatusOr<nlohmann::json> ParseJson(absl::string_view text, absl::string_view context,
                                         int max_depth) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        return absl::InvalidArgumentError(absl::StrCat(context, ": not valid JSON: nested deeper than ",
                                                       max_depth, " levels at byte ", i));
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(text.begin(), text.end());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(context, ": not valid JSON: ", e.what()));
  }
}

absl::Status KeyError(const std::string& path, const std::string& key, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(path, ": key '", key, "' ", what));
}

const nlohmann::json* FindKey(const nlohmann::json& object, const std::string& key) {
  auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

absl::StatusOr<int64_t> IntegerValue(const nlohmann::json& value, const std::string& path,
                                     const std::string& key) {
  if (value.is_number_integer()) return value.get<int64_t>();
  if (value.is_number_float()) {
    double d = value.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::abs(d) < 9.0e15) {
      return static_cast<int64_t>(d);
    }
  }
  return KeyError(path, key, absl::StrCat("must be an integer, got ", value.dump()));
}

absl::StatusOr<int64_t> RequiredPositiveInteger(const nlohmann::json& object,
                                                const std::string& path, const std::string& key) {
  const nlohmann::json* value = FindKey(object, key);
  if (value == nullptr || value->is_null()) return KeyError(path, key, "is missing");
  ASSIGN_OR_RETURN(int64_t n, IntegerValue(*value, path, key));
  if (n < 1) return KeyError(path, key, absl::StrCat("must be >= 1, got ", n));
  return n;
}

}  // namespace saelab
