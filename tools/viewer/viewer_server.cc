#include "tools/viewer/viewer_server.h"

#include <httplib.h>

#include <exception>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
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

}  // namespace

absl::StatusOr<ViewRequest> ParseViewRequest(const std::string& body) {
  Json json = Json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    return absl::InvalidArgumentError("the request body is not a JSON object");
  }
  ViewRequest request;
  if (!json.contains("prompt") || !json["prompt"].is_string()) {
    return absl::InvalidArgumentError("\"prompt\" must be a string");
  }
  request.prompt = json["prompt"].get<std::string>();
  int64_t top_latents = request.options.top_latents, top_next = request.options.top_next_tokens,
          continuation = request.options.continuation_tokens;
  absl::Status status = ReadInt(json, "top_latents", "", &top_latents);
  if (status.ok()) status = ReadInt(json, "top_next_tokens", "", &top_next);
  if (status.ok()) status = ReadInt(json, "continuation_tokens", "", &continuation);
  if (!status.ok()) return status;
  if (top_latents > 64 || top_next > 200 || continuation > 256) {
    return absl::InvalidArgumentError(
        "at most 64 top latents, 200 next tokens and 256 continuation tokens");
  }
  request.options.top_latents = static_cast<int>(top_latents);
  request.options.top_next_tokens = static_cast<int>(top_next);
  request.options.continuation_tokens = static_cast<int>(continuation);
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
      status = ReadInt(item, "site", where, &site);
      if (status.ok()) status = ReadInt(item, "latent", where, &latent);
      if (!status.ok()) return status;
      const std::string kind =
          item.contains("kind") && item["kind"].is_string() ? item["kind"].get<std::string>() : "";
      double value = 0;
      if (item.contains("value")) {
        if (!item["value"].is_number()) {
          return absl::InvalidArgumentError(where + "\"value\" must be a number");
        }
        value = item["value"].get<double>();
      }
      PromptEdit edit;
      edit.site = static_cast<int>(site);
      edit.latent = latent;
      if (kind == "zero") {
        edit.edit = LatentEdit::Zero();
      } else if (kind == "scale") {
        edit.edit = LatentEdit::Scale(value);
      } else if (kind == "clamp") {
        edit.edit = LatentEdit::Clamp(value);
      } else {
        return absl::InvalidArgumentError(where + "\"kind\" must be \"zero\", \"scale\" or \"clamp\"");
      }
      request.edits.push_back(edit);
    }
  }
  return request;
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
    const auto fail = [&response](const absl::Status& status) {
      response.status = status.code() == absl::StatusCode::kInvalidArgument ? 400 : 500;
      response.set_content(ErrorJson(status.message()), "application/json");
    };
    absl::StatusOr<ViewRequest> parsed = ParseViewRequest(request.body);
    if (!parsed.ok()) return fail(parsed.status());
    std::lock_guard<std::mutex> lock(mutex_);
    absl::StatusOr<PromptView> view = session_.View(parsed->prompt, parsed->edits, parsed->options);
    if (!view.ok()) return fail(view.status());
    response.set_content(ViewJson(*view, session_), "application/json");
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
