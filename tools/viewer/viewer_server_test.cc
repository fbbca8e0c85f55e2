#include "tools/viewer/viewer_server.h"

#include <httplib.h>
#include <torch/types.h>

#include <cmath>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "harness/file_io.h"
#include "harness/testing/headless_chromium.h"
#include "nlohmann/json.hpp"
#include "re2/re2.h"
#include "tools/viewer/internal/test_session.h"

namespace saelab {
namespace {

constexpr char kPrompt[] = "And God said, Let there be light: and there was";

// The page at `url` after its script ran, as Chromium's DOM dump (saved
// as `name` in the test's temporary directory); expects the page's run to
// have finished and the console to be clean.
absl::StatusOr<std::string> RenderedPage(const std::string& url, const std::string& name) {
  const std::string dom = absl::StrCat(testing::TempDir(), "/", name);
  if (RunChromium(url, "--dump-dom", dom, 10000) != 0) {
    return absl::InternalError("chromium failed on " + url);
  }
  absl::StatusOr<std::string> html = ReadFile(dom);
  if (!html.ok()) return html.status();
  EXPECT_THAT(*html, ::testing::HasSubstr("data-state=\"done\""));
  absl::StatusOr<std::string> stderr_text = ReadFile(dom + ".stderr");
  EXPECT_THAT(ConsoleLines(stderr_text.ok() ? *stderr_text : ""), ::testing::IsEmpty());
  return html;
}

class ViewerServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    session_ = TestSession();
    server_ = std::make_unique<ViewerServer>(*session_);
    absl::StatusOr<int> port = server_->Start(0);
    ASSERT_TRUE(port.ok()) << port.status();
    port_ = *port;
  }
  void TearDown() override { server_.reset(); }

  std::optional<ViewerSession> session_;
  std::unique_ptr<ViewerServer> server_;
  int port_ = 0;
};

TEST_F(ViewerServerTest, ApiAnswersWhatTheSessionComputes) {
  httplib::Client client("127.0.0.1", port_);
  auto saes = client.Get("/api/saes");
  ASSERT_TRUE(saes);
  EXPECT_EQ(saes->status, 200);
  const nlohmann::json sites = nlohmann::json::parse(saes->body);
  ASSERT_EQ(sites.size(), 2u);
  EXPECT_EQ(sites[1]["hook"], "blocks.2.hook_mlp_out");
  EXPECT_EQ(sites[1]["n_latents"], 256);

  const std::string body = nlohmann::json{
      {"prompt", kPrompt},
      {"edits", {{{"site", 1}, {"latent", 5}, {"kind", "clamp"}, {"value", 3.5}}}}}.dump();
  auto view = client.Post("/api/view", body, "application/json");
  ASSERT_TRUE(view);
  ASSERT_EQ(view->status, 200) << view->body;
  const nlohmann::json json = nlohmann::json::parse(view->body);
  absl::StatusOr<PromptView> expected =
      session_->View(kPrompt, LatentEdits({{1, 5, LatentEdit::Clamp(3.5)}}));
  ASSERT_TRUE(expected.ok());
  ASSERT_EQ(json["next_tokens"].size(), expected->next_tokens.size());
  for (size_t j = 0; j < expected->next_tokens.size(); ++j) {
    EXPECT_EQ(json["next_tokens"][j]["id"], expected->next_tokens[j].id);
    EXPECT_DOUBLE_EQ(json["next_tokens"][j]["logit"].get<double>(), expected->next_tokens[j].logit);
  }
  EXPECT_EQ(json["continuation"], expected->continuation_text);
  EXPECT_EQ(json["sites"][0]["top_latents"].size(), expected->tokens.size());
}

// /api/attribute answers what ViewerSession::Attribute computes, with the
// token text of every node's position; /dashboard serves a latent's card
// when the session has contexts.
TEST_F(ViewerServerTest, AttributionAndCardsAreTheSessions) {
  httplib::Client client("127.0.0.1", port_);
  absl::StatusOr<PromptView> view = session_->View(kPrompt, {});
  ASSERT_TRUE(view.ok());
  const int32_t target = view->next_tokens[0].id;
  ViewEdits edits;
  edits.heads.push_back({0, 1, 0.5});
  const std::string body =
      nlohmann::json{{"prompt", kPrompt},
                     {"heads", {{{"layer", 0}, {"head", 1}, {"scale", 0.5}}}},
                     {"target", target},
                     {"top_nodes", 12}}
          .dump();
  auto response = client.Post("/api/attribute", body, "application/json");
  ASSERT_TRUE(response);
  ASSERT_EQ(response->status, 200) << response->body;
  const nlohmann::json json = nlohmann::json::parse(response->body);
  absl::StatusOr<PromptAttribution> expected = session_->Attribute(kPrompt, edits, {target, {}, 12});
  ASSERT_TRUE(expected.ok());
  EXPECT_DOUBLE_EQ(json["metric"].get<double>(), expected->metric);
  ASSERT_EQ(json["nodes"].size(), 12u);
  for (size_t j = 0; j < 12; ++j) {
    const AttributedNode& node = expected->nodes[j];
    EXPECT_DOUBLE_EQ(json["nodes"][j]["effect"].get<double>(), node.effect);
    EXPECT_EQ(json["nodes"][j]["position"], node.position);
    EXPECT_EQ(json["nodes"][j]["token"], view->token_texts[node.position]);
    if (node.kind == AttributedNode::Kind::kLatent) {
      EXPECT_EQ(json["nodes"][j]["kind"], "latent");
      EXPECT_EQ(json["nodes"][j]["latent"], node.latent);
      EXPECT_EQ(json["nodes"][j]["hook"], session_->saes()[node.site].hook);
    }
  }

  ViewerSession with_contexts = *session_;
  with_contexts.SetDashboardContexts(
      torch::tensor(std::vector<int64_t>{*BpeTokenizer::FromDir(kTestModelDir)->eos_id(), 400, 401,
                                         402, 403},
                    torch::kInt64)
          .unsqueeze(0));
  ViewerServer card_server(with_contexts);
  absl::StatusOr<int> card_port = card_server.Start(0);
  ASSERT_TRUE(card_port.ok());
  httplib::Client card_client("127.0.0.1", *card_port);
  auto card = card_client.Get("/dashboard?site=1&latent=7");
  ASSERT_TRUE(card);
  ASSERT_EQ(card->status, 200) << card->body;
  EXPECT_THAT(card->body, ::testing::HasSubstr("\"id\":7"));
  auto unknown = card_client.Get("/dashboard?site=1&latent=700");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->status, 400);
}

// Bad requests get a 400 naming the problem, and the server keeps serving.
TEST_F(ViewerServerTest, MalformedRequestsGetAClearErrorAndTheServerLives) {
  httplib::Client client("127.0.0.1", port_);
  const std::pair<std::string, std::string> bad[] = {
      {"{not json", "not a JSON object"},
      {"[1, 2]", "not a JSON object"},
      {R"({"edits": []})", "\"prompt\" must be a string"},
      {R"({"prompt": "a", "edits": [{"site": 0}]})", "needs \"site\" and \"latent\""},
      {R"({"prompt": "a", "edits": [{"site": 0, "latent": 1, "kind": "melt"}]})", "\"kind\" must be"},
      {R"({"prompt": "a", "edits": [{"site": 7, "latent": 1, "kind": "zero"}]})", "no SAE number 7"},
      {R"({"prompt": "a", "edits": [{"site": 0, "latent": 999, "kind": "zero"}]})", "999"},
      {R"({"prompt": ""})", "empty"},
      {R"({"prompt": "a", "top_latents": 100000})", "at most"},
      {R"({"prompt": "a", "edits": [{"site": 0, "latent": 1, "kind": "patch"}]})", "needs \"from\""},
      {R"({"prompt": "a", "heads": [{"layer": 0}]})", "needs \"layer\" and \"head\""},
      {R"({"prompt": "a", "heads": [{"layer": 0, "head": 99}]})", "no head 0.99"},
      {R"({"prompt": "a", "heads": [{"layer": 0, "head": 1, "scale": "x"}]})", "\"scale\" must be a number"},
  };
  for (const auto& [body, message] : bad) {
    auto response = client.Post("/api/view", body, "application/json");
    ASSERT_TRUE(response) << body;
    EXPECT_EQ(response->status, 400) << body;
    const nlohmann::json error = nlohmann::json::parse(response->body, nullptr, false);
    ASSERT_TRUE(error.is_object() && error.contains("error")) << response->body;
    EXPECT_THAT(error["error"].get<std::string>(), ::testing::HasSubstr(message)) << body;
  }
  for (const auto& [body, message] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "a"})", "\"target\" (a token id) is missing"},
           {R"({"prompt": "a", "target": 1, "top_nodes": 1000})", "\"top_nodes\""},
           {R"({"prompt": "a", "target": 99999999})", "outside the vocabulary"},
           {R"({"prompt": "a", "target": 1, "contrast": -4})", "outside the vocabulary"}}) {
    auto response = client.Post("/api/attribute", body, "application/json");
    ASSERT_TRUE(response) << body;
    EXPECT_EQ(response->status, 400) << body;
    EXPECT_THAT(response->body, ::testing::HasSubstr(nlohmann::json(message).dump().substr(1, message.size())))
        << body;
  }
  for (const char* query : {"/dashboard", "/dashboard?site=0", "/dashboard?site=x&latent=1"}) {
    auto response = client.Get(query);
    ASSERT_TRUE(response) << query;
    EXPECT_EQ(response->status, 400) << query;
  }
  // This server has no dashboard contexts: a 404 that says so.
  auto no_cards = client.Get("/dashboard?site=0&latent=1");
  ASSERT_TRUE(no_cards);
  EXPECT_EQ(no_cards->status, 404);
  EXPECT_THAT(no_cards->body, ::testing::HasSubstr("no contexts"));
  auto missing = client.Get("/nothing/here");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  auto page = client.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_THAT(page->body, ::testing::HasSubstr("saelab viewer"));
}

TEST(ViewerAddressTest, OnlyLoopbackAddressesAreLocal) {
  for (const char* local : {"127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"}) {
    EXPECT_TRUE(IsLoopbackAddress(local)) << local;
  }
  for (const char* remote : {"10.0.0.2", "192.168.1.5", "::ffff:10.0.0.1", "fe80::1", "", "1.127.0.0"}) {
    EXPECT_FALSE(IsLoopbackAddress(remote)) << remote;
  }
}

// The page in headless Chromium: the URL carries a prompt and an ablation,
// the page runs it through the API, and the logits it shows are the ones
// the library computes, and not the unedited ones.
TEST_F(ViewerServerTest, ChromiumShowsTheEditedLogits) {
  if (!ChromiumInstalled()) GTEST_SKIP() << kChromium << " is not installed";
  absl::StatusOr<PromptView> unedited = session_->View(kPrompt, {});
  ASSERT_TRUE(unedited.ok());
  const int64_t latent = unedited->top_latents[0].back()[0].latent;
  absl::StatusOr<PromptView> edited =
      session_->View(kPrompt, LatentEdits({{0, latent, LatentEdit::Zero()}}));
  ASSERT_TRUE(edited.ok());
  const std::string url = absl::StrCat("http://127.0.0.1:", port_,
                                       "/#prompt=And+God+said%2C+Let+there+be+light%3A+and+there+was",
                                       "&edits=0:", latent, ":zero");
  const absl::StatusOr<std::string> html = RenderedPage(url, "viewer_dom.html");
  ASSERT_TRUE(html.ok()) << html.status();
  // <tr class="next" data-id="ID"><td class="text">..</td><td class="logit">X</td>
  std::map<int64_t, double> shown;
  re2::StringPiece input(*html);
  std::string id, logit;
  while (RE2::FindAndConsume(&input, R"re(data-id="(\d+)"><td class="text">.*?</td><td class="logit">(-?[\d.]+)</td>)re",
                             &id, &logit)) {
    int64_t token;
    double value;
    ASSERT_TRUE(absl::SimpleAtoi(id, &token) && absl::SimpleAtod(logit, &value));
    shown[token] = value;
  }
  ASSERT_EQ(shown.size(), edited->next_tokens.size());
  double moved = 0;
  for (const NextToken& next : edited->next_tokens) {
    ASSERT_TRUE(shown.count(next.id)) << next.text;
    EXPECT_NEAR(shown[next.id], next.logit, 5e-5);  // shown to 4 decimals
    for (const NextToken& before : unedited->next_tokens) {
      if (before.id == next.id) moved = std::max(moved, std::abs(before.logit - next.logit));
    }
  }
  EXPECT_GT(moved, 1e-3);
  EXPECT_THAT(*html, ::testing::HasSubstr(absl::StrCat("latent ", latent, ": zero")));
}

// With a target token in the URL the page shows the nodes that drive it,
// with the effects the library computes, and ablates a head from the URL.
TEST_F(ViewerServerTest, ChromiumShowsTheNodesThatDriveATargetToken) {
  if (!ChromiumInstalled()) GTEST_SKIP() << kChromium << " is not installed";
  ViewEdits edits;
  edits.heads.push_back({1, 0, 0});
  absl::StatusOr<PromptView> view = session_->View(kPrompt, edits);
  ASSERT_TRUE(view.ok());
  const int32_t target = view->next_tokens[1].id;
  absl::StatusOr<PromptAttribution> expected = session_->Attribute(kPrompt, edits, {target});
  ASSERT_TRUE(expected.ok());
  const std::string url = absl::StrCat("http://127.0.0.1:", port_,
                                       "/#prompt=And+God+said%2C+Let+there+be+light%3A+and+there+was",
                                       "&heads=1.0:0&target=", target);
  const absl::StatusOr<std::string> html = RenderedPage(url, "viewer_why_dom.html");
  ASSERT_TRUE(html.ok()) << html.status();
  EXPECT_THAT(*html, ::testing::HasSubstr("head 1.0: ablated"));
  // <td class="effect neg">-0.1234</td>, in the library's order.
  std::vector<double> shown;
  re2::StringPiece input(*html);
  std::string effect;
  while (RE2::FindAndConsume(&input, R"re(<td class="effect (?:neg|pos)">(-?[\d.]+)</td>)re", &effect)) {
    double value;
    ASSERT_TRUE(absl::SimpleAtod(effect, &value));
    shown.push_back(value);
  }
  ASSERT_EQ(shown.size(), expected->nodes.size());
  for (size_t j = 0; j < shown.size(); ++j) {
    EXPECT_NEAR(shown[j], expected->nodes[j].effect, 5e-5) << j;
  }
}

}  // namespace
}  // namespace saelab
