// The viewer's local HTTP server: a ViewerSession behind a JSON API and a
// single page, on 127.0.0.1 only. Requests from any other address are
// refused (403) before they are read; a malformed request gets a 400 with
// the reason, and the server keeps serving.
//
//   ViewerServer server(std::move(session));
//   ASSIGN_OR_RETURN(int port, server.Start(/*port=*/0));   // 0: any free port
//   // http://127.0.0.1:<port>/                      the page
//   // GET  /api/saes                                [{"site":0,"hook":...,"name":...,"n_latents":...}]
//   // POST /api/view {"prompt":"...", "edits":[{"site":0,"latent":17,"kind":"zero"}],
//   //                 "heads":[{"layer":1,"head":3,"scale":0}]}
//   // POST /api/attribute {"prompt":"...", "edits":..., "heads":..., "target":262}
//   // GET  /dashboard?site=0&latent=17              the latent's dashboard card
//   server.Wait();   // until Stop() from another thread
//
// The page keeps its state in the URL fragment (#prompt=...&edits=0:17:zero,
// 1:3:clamp:5&heads=1.3:0&target=262), so a view is a link, and loading
// one runs it.
#ifndef SAELAB_TOOLS_VIEWER_VIEWER_SERVER_H_
#define SAELAB_TOOLS_VIEWER_VIEWER_SERVER_H_

#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "tools/viewer/viewer_session.h"

namespace httplib {
class Server;
}

namespace saelab {

struct ViewRequest {
  std::string prompt;
  ViewEdits edits;
  ViewOptions options;
};

// {"prompt": string, "edits": [{"site": int, "latent": int, "kind":
// "zero"|"scale"|"clamp"|"patch", "value": number, "from": string}],
// "heads": [{"layer": int, "head": int, "scale": number}], "top_latents":
// int, "top_next_tokens": int, "continuation_tokens": int} (all but
// "prompt" optional; "from" is the prompt a "patch" takes the latent's
// values from). InvalidArgument naming the field for anything else.
absl::StatusOr<ViewRequest> ParseViewRequest(const std::string& body);

struct AttributeRequest {
  std::string prompt;
  ViewEdits edits;
  AttributionTarget target;
};

// ParseViewRequest's "prompt", "edits" and "heads", and "target": int (a
// token id), "contrast": int, "top_nodes": int (at most 200).
absl::StatusOr<AttributeRequest> ParseAttributeRequest(const std::string& body);

// {"metric": number, "nodes": [{"kind": "latent"|"error"|"head", "site",
// "hook", "latent" (latents), "layer", "head" (heads), "position",
// "token", "value", "effect"}]}.
std::string AttributionJson(const PromptAttribution& attribution, const ViewerSession& session);

// The view as JSON: {"tokens": [{"id", "text"}], "sites": [{"hook", "name",
// "top_latents": [[{"latent", "activation"}] per token]}], "next_tokens":
// [{"id", "text", "logit", "probability"}], "continuation": string}.
std::string ViewJson(const PromptView& view, const ViewerSession& session);

// True for 127.0.0.0/8 and ::1 (and ::ffff:127.x.y.z).
bool IsLoopbackAddress(const std::string& address);

// The page (self-contained HTML, inline script, no network but its own API).
const std::string& ViewerPageHtml();

class ViewerServer {
 public:
  explicit ViewerServer(ViewerSession session);
  ~ViewerServer();

  // Binds 127.0.0.1:port (0: a free port) and serves on a background
  // thread. Returns the port. Unavailable if the port cannot be bound.
  absl::StatusOr<int> Start(int port);
  // Blocks until the server stops.
  void Wait();
  void Stop();

 private:
  ViewerSession session_;
  std::mutex mutex_;  // one view at a time: the model and SAEs are shared
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace saelab

#endif  // SAELAB_TOOLS_VIEWER_VIEWER_SERVER_H_
