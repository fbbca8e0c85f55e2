#include "data/subject_model/hooks.h"

#include "absl/strings/match.h"
#include "absl/strings/strip.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace saelab {
namespace {

constexpr HookPoint kPoints[] = {HookPoint::kResidPre, HookPoint::kAttnOut, HookPoint::kResidMid,
                                 HookPoint::kMlpIn,     HookPoint::kMlpOut, HookPoint::kResidPost};

std::string ValidNamesDescription(int64_t n_layer) {
  std::vector<std::string> patterns;
  for (HookPoint point : kPoints) {
    patterns.push_back(absl::StrCat("blocks.L.hook_", HookPointSuffix(point)));
  }
  return absl::StrCat(absl::StrJoin(patterns, ", "), " for L in 0..", n_layer - 1);
}

}  // namespace

absl::string_view HookPointSuffix(HookPoint point) {
  switch (point) {
    case HookPoint::kResidPre:
      return "resid_pre";
    case HookPoint::kAttnOut:
      return "attn_out";
    case HookPoint::kResidMid:
      return "resid_mid";
    case HookPoint::kMlpIn:
      return "mlp_in";
    case HookPoint::kMlpOut:
      return "mlp_out";
    case HookPoint::kResidPost:
      return "resid_post";
  }
  return "unknown";
}

std::string HookName(int64_t layer, HookPoint point) {
  return absl::StrCat("blocks.", layer, ".hook_", HookPointSuffix(point));
}

std::string HookName(const HookLocation& location) {
  return HookName(location.layer, location.point);
}

std::vector<std::string> ValidHookNames(int64_t n_layer) {
  std::vector<std::string> names;
  for (int64_t layer = 0; layer < n_layer; ++layer) {
    for (HookPoint point : kPoints) names.push_back(HookName(layer, point));
  }
  return names;
}

absl::StatusOr<HookLocation> ParseHookName(absl::string_view name, int64_t n_layer) {
  auto unknown = [&] {
    return absl::InvalidArgumentError(absl::StrCat("unknown hook point '", name,
                                                   "'; valid names are ",
                                                   ValidNamesDescription(n_layer)));
  };
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, "blocks.")) return unknown();
  size_t dot = rest.find('.');
  if (dot == absl::string_view::npos) return unknown();
  absl::string_view layer_text = rest.substr(0, dot);
  absl::string_view suffix = rest.substr(dot + 1);
  int64_t layer = 0;
  // Canonical digits only: SimpleAtoi would also take "+1", " 1" or "01".
  if (layer_text.empty() || layer_text.size() > 9 ||
      (layer_text.size() > 1 && layer_text[0] == '0') ||
      layer_text.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(layer_text, &layer)) {
    return unknown();
  }
  if (!absl::ConsumePrefix(&suffix, "hook_")) return unknown();
  for (HookPoint point : kPoints) {
    if (suffix != HookPointSuffix(point)) continue;
    if (layer >= n_layer) {
      return absl::InvalidArgumentError(
          absl::StrCat("hook point '", name, "': layer ", layer, " does not exist (the model has ",
                       n_layer, " blocks); valid names are ", ValidNamesDescription(n_layer)));
    }
    return HookLocation{layer, point};
  }
  return unknown();
}

std::string HeadOutputsHookName(int64_t layer) {
  return absl::StrCat("blocks.", layer, ".attn.hook_z");
}

absl::StatusOr<std::optional<int64_t>> ParseHeadOutputsHookName(absl::string_view name,
                                                                int64_t n_layer) {
  absl::string_view rest = name;
  if (!absl::ConsumePrefix(&rest, "blocks.") || !absl::ConsumeSuffix(&rest, ".attn.hook_z")) {
    return std::nullopt;
  }
  int64_t layer = 0;
  if (rest.empty() || rest.size() > 9 || (rest.size() > 1 && rest[0] == '0') ||
      rest.find_first_not_of("0123456789") != absl::string_view::npos ||
      !absl::SimpleAtoi(rest, &layer)) {
    return std::nullopt;
  }
  if (layer >= n_layer) {
    return absl::InvalidArgumentError(absl::StrCat("hook point '", name, "': layer ", layer,
                                                   " does not exist (the model has ", n_layer,
                                                   " blocks)"));
  }
  return layer;
}

absl::Status CheckHookLocation(const HookLocation& location, int64_t n_layer) {
  const int point = static_cast<int>(location.point);
  if (location.layer < 0 || location.layer >= n_layer || point < 0 ||
      point >= kHookPointsPerLayer) {
    return absl::InvalidArgumentError(absl::StrCat(
        "hook point ", HookName(location), " (layer ", location.layer, ", point ", point,
        ") does not exist: the model has ", n_layer, " blocks of ", kHookPointsPerLayer,
        " points; valid names are ", ValidNamesDescription(n_layer)));
  }
  return absl::OkStatus();
}

HookFn CaptureInto(torch::Tensor* out) {
  return [out](const torch::Tensor& activation) {
    *out = activation;
    return activation;
  };
}

}  // namespace saelab
