#include "tools/viewer/viewer_server.h"

#include <httplib.h>

#include <algorithm>
#include <exception>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "harness/status_macros.h"
#include "nlohmann/json.hpp"

namespace saelab {
namespace {

using Json = nlohmann::json;

std::string ErrorJson(absl::string_view message) {
  return Json{{"error", std::string(message)}}.dump();
}

// The integer at `key` of `object` if present, into *out.
absl::Status ReadInt(const Json& object, const char* key, const std::string& where, int64_t* out) {
  if (!object.contains(key)) return absl::OkStatus();
  if (!object[key].is_number_integer()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "\"", key, "\" must be an integer"));
  }
  *out = object[key].get<int64_t>();
  return absl::OkStatus();
}

absl::Status ReadNumber(const Json& object, const char* key, const std::string& where,
                        double* out) {
  if (!object.contains(key)) return absl::OkStatus();
  if (!object[key].is_number()) {
    return absl::InvalidArgumentError(absl::StrCat(where, "\"", key, "\" must be a number"));
  }
  *out = object[key].get<double>();
  return absl::OkStatus();
}

// The body as a JSON object with a string "prompt".
absl::StatusOr<Json> ParseBody(const std::string& body, std::string* prompt) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError("the request body is not a JSON object");
  }
  if (!json.contains("prompt") || !json["prompt"].is_string()) {
    return absl::InvalidArgumentError("\"prompt\" must be a string");
  }
  *prompt = json["prompt"].get<std::string>();
  return json;
}

// "edits" and "heads" of a request.
absl::StatusOr<ViewEdits> ParseEdits(const Json& json) {
  ViewEdits edits;
  if (json.contains("edits")) {
    if (!json["edits"].is_array()) return absl::InvalidArgumentError("\"edits\" must be an array");
    for (size_t i = 0; i < json["edits"].size(); ++i) {
      const Json& item = json["edits"][i];
      const std::string where = absl::StrCat("edits[", i, "]: ");
      if (!item.is_object()) return absl::InvalidArgumentError(where + "not an object");
      int64_t site = -1, latent = -1;
      if (!item.contains("site") || !item.contains("latent")) {
        return absl::InvalidArgumentError(where + "needs \"site\" and \"latent\"");
      }
      RETURN_IF_ERROR(ReadInt(item, "site", where, &site));
      RETURN_IF_ERROR(ReadInt(item, "latent", where, &latent));
      const std::string kind =
          item.contains("kind") && item["kind"].is_string() ? item["kind"].get<std::string>() : "";
      double value = 0;
      RETURN_IF_ERROR(ReadNumber(item, "value", where, &value));
      PromptEdit edit;
      edit.site = static_cast<int>(site);
      edit.latent = latent;
      if (kind == "zero") {
        edit.edit = LatentEdit::Zero();
      } else if (kind == "scale") {
        edit.edit = LatentEdit::Scale(value);
      } else if (kind == "clamp") {
        edit.edit = LatentEdit::Clamp(value);
      } else if (kind == "patch") {
        if (!item.contains("from") || !item["from"].is_string() ||
            item["from"].get<std::string>().empty()) {
          return absl::InvalidArgumentError(where + "a \"patch\" needs \"from\": the prompt to patch from");
        }
        edit.patch_from = item["from"].get<std::string>();
      } else {
        return absl::InvalidArgumentError(
            where + "\"kind\" must be \"zero\", \"scale\", \"clamp\" or \"patch\"");
      }
      edits.latents.push_back(edit);
    }
  }
  if (json.contains("heads")) {
    if (!json["heads"].is_array()) return absl::InvalidArgumentError("\"heads\" must be an array");
    for (size_t i = 0; i < json["heads"].size(); ++i) {
      const Json& item = json["heads"][i];
      const std::string where = absl::StrCat("heads[", i, "]: ");
      if (!item.is_object() || !item.contains("layer") || !item.contains("head")) {
        return absl::InvalidArgumentError(where + "needs \"layer\" and \"head\"");
      }
      HeadEdit edit;
      RETURN_IF_ERROR(ReadInt(item, "layer", where, &edit.layer));
      RETURN_IF_ERROR(ReadInt(item, "head", where, &edit.head));
      RETURN_IF_ERROR(ReadNumber(item, "scale", where, &edit.scale));
      edits.heads.push_back(edit);
    }
  }
  return edits;
}

const char* KindName(AttributedNode::Kind kind) {
  switch (kind) {
    case AttributedNode::Kind::kLatent: return "latent";
    case AttributedNode::Kind::kError: return "error";
    case AttributedNode::Kind::kHead: return "head";
  }
  return "unknown";
}

// 400 for bad requests, 404 for what this server does not have, else 500.
void Fail(const absl::Status& status, httplib::Response& response) {
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument: response.status = 400; break;
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kNotFound: response.status = 404; break;
    default: response.status = 500;
  }
  response.set_content(ErrorJson(status.message()), "application/json");
}

}  // namespace

absl::StatusOr<ViewRequest> ParseViewRequest(const std::string& body) {
  ViewRequest request;
  ASSIGN_OR_RETURN(Json json, ParseBody(body, &request.prompt));
  int64_t top_latents = request.options.top_latents, top_next = request.options.top_next_tokens,
          continuation = request.options.continuation_tokens;
  RETURN_IF_ERROR(ReadInt(json, "top_latents", "", &top_latents));
  RETURN_IF_ERROR(ReadInt(json, "top_next_tokens", "", &top_next));
  RETURN_IF_ERROR(ReadInt(json, "continuation_tokens", "", &continuation));
  if (top_latents > 64 || top_next > 200 || continuation > 256) {
    return absl::InvalidArgumentError(
        "at most 64 top latents, 200 next tokens and 256 continuation tokens");
  }
  request.options.top_latents = static_cast<int>(top_latents);
  request.options.top_next_tokens = static_cast<int>(top_next);
  request.options.continuation_tokens = static_cast<int>(continuation);
  ASSIGN_OR_RETURN(request.edits, ParseEdits(json));
  return request;
}

absl::StatusOr<AttributeRequest> ParseAttributeRequest(const std::string& body) {
  AttributeRequest request;
  ASSIGN_OR_RETURN(Json json, ParseBody(body, &request.prompt));
  ASSIGN_OR_RETURN(request.edits, ParseEdits(json));
  if (!json.contains("target")) {
    return absl::InvalidArgumentError("\"target\" (a token id) is missing");
  }
  int64_t target = 0, top_nodes = request.target.top_nodes;
  RETURN_IF_ERROR(ReadInt(json, "target", "", &target));
  RETURN_IF_ERROR(ReadInt(json, "top_nodes", "", &top_nodes));
  if (top_nodes < 0 || top_nodes > 200) {
    return absl::InvalidArgumentError("\"top_nodes\" must be in [0, 200]");
  }
  // Token ids are checked against the model's vocabulary by the session.
  const auto as_id = [](int64_t id) {
    return static_cast<int32_t>(std::clamp<int64_t>(id, -1, std::numeric_limits<int32_t>::max()));
  };
  request.target.token = as_id(target);
  if (json.contains("contrast")) {
    int64_t contrast = 0;
    RETURN_IF_ERROR(ReadInt(json, "contrast", "", &contrast));
    request.target.contrast = as_id(contrast);
  }
  request.target.top_nodes = static_cast<int>(top_nodes);
  return request;
}

std::string AttributionJson(const PromptAttribution& attribution, const ViewerSession& session) {
  Json json;
  json["metric"] = attribution.metric;
  json["nodes"] = Json::array();
  for (const AttributedNode& node : attribution.nodes) {
    Json item = {{"kind", KindName(node.kind)},
                 {"position", node.position},
                 {"token", attribution.token_texts[node.position]},
                 {"value", node.value},
                 {"effect", node.effect}};
    if (node.kind == AttributedNode::Kind::kHead) {
      item["layer"] = node.layer;
      item["head"] = node.head;
    } else {
      item["site"] = node.site;
      item["hook"] = session.saes()[node.site].hook;
      if (node.kind == AttributedNode::Kind::kLatent) item["latent"] = node.latent;
    }
    json["nodes"].push_back(std::move(item));
  }
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::string ViewJson(const PromptView& view, const ViewerSession& session) {
  Json json;
  json["tokens"] = Json::array();
  for (size_t t = 0; t < view.tokens.size(); ++t) {
    json["tokens"].push_back({{"id", view.tokens[t]}, {"text", view.token_texts[t]}});
  }
  json["sites"] = Json::array();
  for (size_t s = 0; s < view.top_latents.size(); ++s) {
    Json per_token = Json::array();
    for (const auto& latents : view.top_latents[s]) {
      Json list = Json::array();
      for (const LatentActivation& a : latents) {
        list.push_back({{"latent", a.latent}, {"activation", a.activation}});
      }
      per_token.push_back(std::move(list));
    }
    json["sites"].push_back({{"hook", session.saes()[s].hook},
                             {"name", session.saes()[s].name},
                             {"top_latents", std::move(per_token)}});
  }
  json["next_tokens"] = Json::array();
  for (const NextToken& next : view.next_tokens) {
    json["next_tokens"].push_back({{"id", next.id},
                                   {"text", next.text},
                                   {"logit", next.logit},
                                   {"probability", next.probability}});
  }
  json["continuation"] = view.continuation_text;
  // Invalid UTF-8 (a token that is part of a character) becomes U+FFFD.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

bool IsLoopbackAddress(const std::string& address) {
  return absl::StartsWith(address, "127.") || address == "::1" ||
         absl::StartsWith(address, "::ffff:127.");
}

ViewerServer::ViewerServer(ViewerSession session)
    : session_(std::move(session)), server_(std::make_unique<httplib::Server>()) {}

ViewerServer::~ViewerServer() {
  Stop();
  Wait();
}

absl::StatusOr<int> ViewerServer::Start(int port) {
  httplib::Server& server = *server_;
  server.set_pre_routing_handler([](const httplib::Request& request, httplib::Response& response) {
    if (IsLoopbackAddress(request.remote_addr)) return httplib::Server::HandlerResponse::Unhandled;
    response.status = 403;
    response.set_content(ErrorJson("the viewer answers only this machine (127.0.0.1)"),
                         "application/json");
    return httplib::Server::HandlerResponse::Handled;
  });
  server.set_exception_handler(
      [](const httplib::Request&, httplib::Response& response, std::exception_ptr error) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(error);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        response.status = 500;
        response.set_content(ErrorJson(what), "application/json");
      });
  server.Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(ViewerPageHtml(), "text/html; charset=utf-8");
  });
  server.Get("/api/saes", [this](const httplib::Request&, httplib::Response& response) {
    Json sites = Json::array();
    for (size_t s = 0; s < session_.saes().size(); ++s) {
      const ViewerSae& sae = session_.saes()[s];
      sites.push_back({{"site", s}, {"hook", sae.hook}, {"name", sae.name},
                       {"n_latents", sae.sae->n_latents()}});
    }
    response.set_content(sites.dump(), "application/json");
  });
  server.Post("/api/view", [this](const httplib::Request& request, httplib::Response& response) {
    const auto fail = [&response](const absl::Status& status) { Fail(status, response); };
    absl::StatusOr<ViewRequest> parsed = ParseViewRequest(request.body);
    if (!parsed.ok()) return fail(parsed.status());
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<PromptView> view = session_.View(parsed->prompt, parsed->edits, parsed->options);
    if (!view.ok()) return fail(view.status());
    response.set_content(ViewJson(*view, session_), "application/json");
  });
  server.Post("/api/attribute", [this](const httplib::Request& request,
                                       httplib::Response& response) {
    const auto fail = [&response](const absl::Status& status) { Fail(status, response); };
    absl::StatusOr<AttributeRequest> parsed = ParseAttributeRequest(request.body);
    if (!parsed.ok()) return fail(parsed.status());
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<PromptAttribution> attribution =
        session_.Attribute(parsed->prompt, parsed->edits, parsed->target);
    if (!attribution.ok()) return fail(attribution.status());
    response.set_content(AttributionJson(*attribution, session_), "application/json");
  });
  server.Get("/dashboard", [this](const httplib::Request& request, httplib::Response& response) {
    int64_t site = -1, latent = -1;
    if (!absl::SimpleAtoi(request.get_param_value("site"), &site) ||
        !absl::SimpleAtoi(request.get_param_value("latent"), &latent)) {
      return Fail(absl::InvalidArgumentError("/dashboard needs ?site=S&latent=I (integers)"),
                  response);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<std::string> page = session_.LatentCardHtml(static_cast<int>(site), latent);
    if (!page.ok()) return Fail(page.status(), response);
    response.set_content(*page, "text/html; charset=utf-8");
  });
  const int bound = port == 0 ? server.bind_to_any_port("127.0.0.1")
                              : (server.bind_to_port("127.0.0.1", port) ? port : -1);
  if (bound < 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on 127.0.0.1:", port));
  }
  thread_ = std::thread([&server] { server.listen_after_bind(); });
  return bound;
}

void ViewerServer::Wait() {
  if (thread_.joinable()) thread_.join();
}

void ViewerServer::Stop() { server_->stop(); }

}  // namespace saelab
