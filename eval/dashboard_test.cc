#include "eval/dashboard.h"

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <torch/utils.h>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/internal/test_models.h"
#include "gtest/gtest.h"
#include "harness/testing/headless_chromium.h"
#include "harness/file_io.h"
#include "sae/factory.h"
#include "sae/sae_config.pb.h"

namespace saelab {
namespace {

constexpr int64_t kEmbd = 16, kLength = 16, kContexts = 6, kLatents = 32;
constexpr char kHook[] = "blocks.0.hook_resid_mid";
// A token whose text would end the data <script> and open an element if
// it were not escaped.
const char kEvil[] = "</script><b>\"&'";

// The 256 bytes, a few merges, the evil token and <|endoftext|>.
BpeTokenizer TinyTokenizer() {
  std::vector<std::string> tokens;
  for (uint8_t byte : Gpt2ByteTokenOrder())
    tokens.push_back(std::string(1, static_cast<char>(byte)));
  auto id = [&](const std::string& token) {
    return static_cast<int32_t>(std::find(tokens.begin(), tokens.end(), token) - tokens.begin());
  };
  std::vector<std::pair<int32_t, int32_t>> merges;
  for (auto [left, right] : std::vector<std::pair<std::string, std::string>>{
           {" ", "t"}, {"h", "e"}, {" t", "he"}, {"e", "r"}, {"i", "n"}, {" ", "a"}, {" ", "s"}}) {
    merges.push_back({id(left), id(right)});
    tokens.push_back(left + right);
  }
  tokens.push_back(kEvil);
  tokens.push_back(std::string(BpeTokenizer::kEndOfText));
  absl::StatusOr<BpeTokenizer> tokenizer = BpeTokenizer::FromTokens(tokens, merges);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status();
  return *std::move(tokenizer);
}

Gpt2Model TinyModel(int64_t vocab) { return TinyGpt2(vocab, kEmbd, /*positions=*/32, /*seed=*/3); }

// A ReLU-L1 SAE with random tied weights (many latents fire) and an input
// scale of 2, so that a logit effect that forgets the scale is caught.
std::unique_ptr<Sae> TinySae(int64_t d_in = kEmbd) {
  SaeConfig config;
  config.set_name("tiny");
  config.set_n_latents(kLatents);
  config.mutable_relu_l1();
  EXPECT_TRUE(ResolveSaeConfig(d_in, &config).ok());
  std::unique_ptr<Sae> sae = *CreateSae(config, d_in, 4);
  sae->set_input_scale(2.0);
  return sae;
}

// [kContexts, kLength]: BOS, then English text in the tiny vocabulary, with
// the evil token at a few places.
torch::Tensor Contexts(const BpeTokenizer& tokenizer) {
  const std::string text =
      "The weather there was fine in the spring, and the rivers ran high; she said that the "
      "harvest would come in early this year, as it had in the years her mother remembered. "
      "In the evening the lamps were lit and the stories began again.";
  std::vector<int32_t> ids = tokenizer.Encode(text);
  const int64_t evil = *tokenizer.TokenId(kEvil);
  torch::Tensor tokens = torch::empty({kContexts, kLength}, torch::kLong);
  for (int64_t b = 0; b < kContexts; ++b) {
    tokens[b][0] = *tokenizer.eos_id();
    for (int64_t p = 1; p < kLength; ++p) {
      tokens[b][p] = static_cast<int64_t>(ids[(b * (kLength - 1) + p - 1) % ids.size()]);
    }
  }
  tokens[1][4] = evil;
  tokens[3][9] = evil;
  tokens[4][15] = evil;
  return tokens;
}

DashboardOptions SmallOptions() {
  DashboardOptions options;
  options.top_contexts = 3;
  options.window_before = 3;
  options.window_after = 2;
  options.histogram_bins = 8;
  options.logit_tokens = 5;
  options.batch_contexts = 4;  // two batches of 4 and 2 contexts
  return options;
}

struct Fixture {
  BpeTokenizer tokenizer = TinyTokenizer();
  Gpt2Model model = TinyModel(tokenizer.vocab_size());
  std::unique_ptr<Sae> sae = TinySae();
  torch::Tensor contexts = Contexts(tokenizer);
};

TEST(DashboardTest, StatisticsMatchABruteForceComputation) {
  Fixture fx;
  auto built = BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, SmallOptions());
  ASSERT_TRUE(built.ok()) << built.status();
  const SaeDashboard& d = *built;
  ASSERT_EQ(d.latents.size(), static_cast<size_t>(kLatents));
  EXPECT_EQ(d.tokens, kContexts * (kLength - 1));
  EXPECT_EQ(d.contexts, kContexts);
  EXPECT_EQ(d.hook_name, kHook);
  EXPECT_EQ(d.architecture, "relu_l1");

  // Every row at once: [N * (L - 1), n], row r = context r / (L - 1),
  // position 1 + r % (L - 1).
  torch::NoGradGuard no_grad;
  auto cache = fx.model.RunWithCache(fx.contexts, {kHook});
  ASSERT_TRUE(cache.ok());
  const torch::Tensor f =
      fx.sae->Encode(cache->at(kHook).slice(1, 1).reshape({-1, kEmbd})).contiguous();
  const int64_t rows = f.size(0), per = kLength - 1;
  const torch::Tensor unembed = fx.model.NamedTensors().at("wte.weight").to(torch::kFloat64);
  const DashboardOptions options = SmallOptions();
  int64_t dead = 0, truncated = 0;
  for (int64_t i = 0; i < kLatents; ++i) {
    SCOPED_TRACE(absl::StrCat("latent ", i));
    const LatentDashboard& l = d.latents[i];
    ASSERT_EQ(l.latent, i);
    std::vector<std::tuple<float, int64_t, int64_t>> firing;  // (-activation, context, position)
    float max = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const float a = f[r][i].item<float>();
      if (a > 0) {
        firing.emplace_back(-a, r / per, 1 + r % per);
        max = std::max(max, a);
      }
    }
    std::sort(firing.begin(), firing.end());
    if (firing.empty()) ++dead;
    if (static_cast<int64_t>(firing.size()) > options.top_contexts) ++truncated;
    EXPECT_EQ(l.firings, static_cast<int64_t>(firing.size()));
    EXPECT_DOUBLE_EQ(l.density, static_cast<double>(firing.size()) / rows);
    EXPECT_NEAR(l.max_activation, max, 1e-5 * max);

    const size_t k = std::min<size_t>(firing.size(), options.top_contexts);
    ASSERT_EQ(l.top_contexts.size(), k);
    for (size_t c = 0; c < k; ++c) {
      const auto& [neg, context, position] = firing[c];
      const ActivatingContext& top = l.top_contexts[c];
      EXPECT_EQ(top.context, context);
      EXPECT_EQ(top.position, position);
      EXPECT_NEAR(top.activation, -neg, 1e-5 * max);
      const int64_t first = std::max<int64_t>(1, position - options.window_before);
      const int64_t last = std::min<int64_t>(kLength - 1, position + options.window_after);
      EXPECT_EQ(top.first_position, first);
      ASSERT_EQ(top.tokens.size(), static_cast<size_t>(last - first + 1));
      ASSERT_EQ(top.activations.size(), top.tokens.size());
      for (int64_t q = first; q <= last; ++q) {
        EXPECT_EQ(top.tokens[q - first], fx.contexts[context][q].item<int64_t>());
        EXPECT_NEAR(top.activations[q - first], f[context * per + q - 1][i].item<float>(),
                    1e-5 * max);
      }
      EXPECT_TRUE(d.token_text.count(top.tokens[0]));
    }

    // Histogram: width the smallest power of two w with max < w * bins.
    ASSERT_EQ(l.histogram.size(), static_cast<size_t>(options.histogram_bins));
    if (firing.empty()) {
      EXPECT_EQ(l.histogram_bin_width, 0);
    } else {
      double w = 1;
      while (max >= w * options.histogram_bins) w *= 2;
      while (max < w / 2 * options.histogram_bins) w /= 2;
      EXPECT_EQ(l.histogram_bin_width, w);
      std::vector<int64_t> counts(options.histogram_bins, 0);
      for (const auto& entry : firing)
        ++counts[static_cast<int64_t>(std::floor(-std::get<0>(entry) / w))];
      EXPECT_EQ(l.histogram, counts);
    }

    // Logit effects: W_dec[i] / input_scale @ W_E^T, in float64 here.
    const torch::Tensor effect =
        unembed.matmul(fx.sae->W_dec[i].to(torch::kFloat64) / 2.0).contiguous();  // [vocab]
    std::vector<int64_t> order(effect.size(0));
    for (size_t t = 0; t < order.size(); ++t) order[t] = static_cast<int64_t>(t);
    const double* e = effect.data_ptr<double>();
    std::sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return e[a] > e[b]; });
    ASSERT_EQ(l.top_logits.size(), static_cast<size_t>(options.logit_tokens));
    ASSERT_EQ(l.bottom_logits.size(), static_cast<size_t>(options.logit_tokens));
    for (int64_t t = 0; t < options.logit_tokens; ++t) {
      EXPECT_EQ(l.top_logits[t].token, order[t]);
      EXPECT_NEAR(l.top_logits[t].value, e[order[t]], 1e-5);
      const int64_t bottom = order[order.size() - 1 - t];
      EXPECT_EQ(l.bottom_logits[t].token, bottom);
      EXPECT_NEAR(l.bottom_logits[t].value, e[bottom], 1e-5);
    }
    EXPECT_FALSE(l.annotation.has_value());
  }
  EXPECT_DOUBLE_EQ(d.dead_fraction, static_cast<double>(dead) / kLatents);
  // The fixture must exercise the bounded heaps.
  EXPECT_GT(truncated, kLatents / 4);
}

TEST(DashboardTest, SelectedLatentsKeepTheirOrderValuesAndAnnotations) {
  Fixture fx;
  auto all = BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, SmallOptions());
  DashboardOptions options = SmallOptions();
  options.latents = {17, 2, 5};
  options.batch_contexts = 1;
  absl::flat_hash_map<int64_t, LatentAnnotation> annotations;
  annotations[2] = {"genre/news", 0.25};
  annotations[9] = {"ignored: not shown", 1.0};
  auto some =
      BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options, annotations);
  ASSERT_TRUE(all.ok() && some.ok()) << some.status();
  ASSERT_EQ(some->latents.size(), 3u);
  EXPECT_EQ(some->dead_fraction, all->dead_fraction);  // over every latent, not those shown
  for (size_t j = 0; j < 3; ++j) {
    const LatentDashboard& a = some->latents[j];
    const LatentDashboard& b = all->latents[options.latents[j]];
    EXPECT_EQ(a.latent, options.latents[j]);
    EXPECT_EQ(a.firings, b.firings);
    EXPECT_EQ(a.histogram, b.histogram);
    ASSERT_EQ(a.top_contexts.size(), b.top_contexts.size());
    for (size_t c = 0; c < a.top_contexts.size(); ++c) {
      EXPECT_EQ(a.top_contexts[c].context, b.top_contexts[c].context);
      EXPECT_EQ(a.top_contexts[c].position, b.top_contexts[c].position);
    }
  }
  ASSERT_TRUE(some->latents[1].annotation.has_value());
  EXPECT_EQ(some->latents[1].annotation->best_probe_task, "genre/news");
  EXPECT_EQ(some->latents[1].annotation->probe_loss, 0.25);
  EXPECT_FALSE(some->latents[0].annotation.has_value());
}

TEST(DashboardTest, BadInputsAreRefusedNamingTheProblem) {
  Fixture fx;
  auto message = [](const absl::StatusOr<SaeDashboard>& r) {
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << r.status();
    return std::string(r.status().message());
  };
  DashboardOptions options = SmallOptions();
  options.latents = {3, kLatents};
  EXPECT_TRUE(absl::StrContains(
      message(BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options)),
      "latent 32 is out of range: the SAE has 32 latents"));
  options.latents = {3, 3};
  EXPECT_TRUE(absl::StrContains(
      message(BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options)),
      "latent 3 is listed twice"));

  std::unique_ptr<Sae> narrow = TinySae(8);
  EXPECT_TRUE(absl::StrContains(
      message(BuildDashboard(fx.model, fx.tokenizer, kHook, *narrow, fx.contexts, SmallOptions())),
      "the SAE's d_in is 8 but blocks.0.hook_resid_mid has width n_embd = 16"));
  EXPECT_TRUE(
      absl::StrContains(message(BuildDashboard(fx.model, fx.tokenizer, "blocks.3.hook_resid_post",
                                               *fx.sae, fx.contexts, SmallOptions())),
                        "blocks.3.hook_resid_post"));

  for (const torch::Tensor& bad : {fx.contexts.to(torch::kFloat32), fx.contexts.select(0, 0),
                                   fx.contexts.slice(1, 0, 1), fx.contexts.slice(0, 0, 0)}) {
    EXPECT_TRUE(absl::StrContains(
        message(BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, bad, SmallOptions())),
        "contexts must be [N >= 1, L >= 2] int64"));
  }
  options = SmallOptions();
  options.top_contexts = 0;
  EXPECT_TRUE(absl::StrContains(
      message(BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options)),
      "top_contexts"));
}

TEST(DashboardTest, OptionsComeFromTheConfig) {
  DashboardConfig config;
  DashboardOptions defaults;
  DashboardOptions from = DashboardOptionsFromConfig(config);
  EXPECT_EQ(from.top_contexts, defaults.top_contexts);
  EXPECT_EQ(from.window_before, defaults.window_before);
  EXPECT_EQ(from.window_after, defaults.window_after);
  EXPECT_EQ(from.histogram_bins, defaults.histogram_bins);
  EXPECT_EQ(from.logit_tokens, defaults.logit_tokens);
  EXPECT_EQ(from.batch_contexts, defaults.batch_contexts);
  EXPECT_TRUE(from.latents.empty());
  config.set_top_contexts(4);
  config.add_latents(7);
  config.add_latents(1);
  config.set_first_latents(3);  // explicit latents win
  from = DashboardOptionsFromConfig(config);
  EXPECT_EQ(from.top_contexts, 4);
  EXPECT_EQ(from.latents, (std::vector<int64_t>{7, 1}));
  config.clear_latents();
  from = DashboardOptionsFromConfig(config);
  EXPECT_EQ(from.latents, (std::vector<int64_t>{0, 1, 2}));
}

TEST(DashboardTest, EscapersHandleMarkupQuotesAndBadUtf8) {
  EXPECT_EQ(HtmlEscape(kEvil), "&lt;/script&gt;&lt;b&gt;&quot;&amp;&#39;");
  EXPECT_EQ(HtmlEscape("caf\xC3\xA9 \xFF"), "caf\xC3\xA9 \xEF\xBF\xBD");
  EXPECT_EQ(JsonScriptString(kEvil), "\"\\u003c/script\\u003e\\u003cb\\u003e\\\"\\u0026'\"");
  EXPECT_EQ(JsonScriptString("a\\b\n\x01\xE2\x80\xA8\xD0"), "\"a\\\\b\\n\\u0001\\u2028\\ufffd\"");
  EXPECT_EQ(TokenDisplayText("\n"), "\xE2\x86\xB5");
  EXPECT_EQ(TokenDisplayText(" caf\xC3\xA9\t"), " caf\xC3\xA9\xE2\x87\xA5");
  EXPECT_EQ(TokenDisplayText("\xD0"), "\\xD0");  // half of a Cyrillic letter
  EXPECT_EQ(TokenDisplayText(std::string("\0\x7F", 2)), "\\x00\\x7F");
}

size_t Count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + 1)) {
    ++n;
  }
  return n;
}

TEST(DashboardTest, PagesEscapeTokenTextAndNamesAndFetchNothing) {
  Fixture fx;
  auto built = BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, SmallOptions());
  ASSERT_TRUE(built.ok()) << built.status();
  // The evil token is in the contexts; force it into the page whatever the
  // top contexts are.
  built->token_text[*fx.tokenizer.TokenId(kEvil)] = kEvil;
  built->name = "tiny <b>sae</b>";
  const std::string page = RenderDashboardHtml(*built);
  EXPECT_EQ(Count(page, "<script"), 2u);
  EXPECT_EQ(Count(page, "</script"), 2u);  // only the two real closing tags
  EXPECT_EQ(Count(page, "</script>\n<script>"), 1u);
  EXPECT_FALSE(absl::StrContains(page, kEvil));
  EXPECT_FALSE(absl::StrContains(page, "<b>"));
  EXPECT_TRUE(absl::StrContains(page, JsonScriptString(kEvil)));
  EXPECT_TRUE(absl::StrContains(page, "<h1>tiny &lt;b&gt;sae&lt;/b&gt;</h1>"));
  // Nothing external: no src attributes, CSS urls or imports, no absolute links.
  for (const char* external : {"src=", "url(", "@import", "href=\"http", "href=\"//"}) {
    EXPECT_FALSE(absl::StrContains(page, external)) << external;
  }

  DashboardIndexEntry entry = IndexEntryFor(*built, "tiny.html");
  entry.name = kEvil;
  auto index = RenderDashboardIndex({entry});
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_FALSE(absl::StrContains(*index, kEvil));
  EXPECT_EQ(Count(*index, "</script"), 1u);
  EXPECT_TRUE(absl::StrContains(*index, "<a href=\"tiny.html\">&lt;/script&gt;"));
  for (const char* bad : {"", "/tmp/a.html", "http://example.com/a.html", "a.html#x", "a\".html"}) {
    entry.page = bad;
    EXPECT_EQ(RenderDashboardIndex({entry}).status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

// ---- Rendering in headless Chromium. ----

std::string ReadAll(const std::string& path) {
  absl::StatusOr<std::string> text = ReadFile(path);
  return text.ok() ? *text : std::string();
}

TEST(DashboardRenderTest, ChromiumDrawsEveryCardWithoutConsoleErrors) {
  if (!PathExists(kChromium)) {
    GTEST_SKIP() << kChromium << " is not installed (./bazelw installs Debian's chromium)";
  }
  Fixture fx;
  DashboardOptions options;  // the defaults: 10 contexts, 12 tokens before, 4 after
  options.batch_contexts = 4;
  auto full = BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options,
                             {{3, {"language/en", 0.1234}}});
  options.latents = {9, 4};
  auto subset = BuildDashboard(fx.model, fx.tokenizer, kHook, *fx.sae, fx.contexts, options);
  ASSERT_TRUE(full.ok() && subset.ok()) << full.status() << subset.status();
  full->name = "tiny_relu";
  subset->name = "tiny_relu_subset";
  const std::string site = testing::TempDir() + "/dashboards";
  ASSERT_TRUE(WriteDashboardSite({*full, *subset}, site).ok());
  const std::string page = site + "/tiny_relu.html";

  // The evil token must be among the shown tokens for the escaping check.
  const int64_t evil = *fx.tokenizer.TokenId(kEvil);
  ASSERT_TRUE(full->token_text.count(evil));

  const std::string dom_path = testing::TempDir() + "/dom.html";
  ASSERT_EQ(RunChromium("file://" + page, "--dump-dom", dom_path), 0)
      << ReadAll(dom_path + ".stderr");
  const std::string dom = ReadAll(dom_path);
  EXPECT_TRUE(ConsoleLines(ReadAll(dom_path + ".stderr")).empty())
      << absl::StrJoin(ConsoleLines(ReadAll(dom_path + ".stderr")), "\n");
  for (int64_t i = 0; i < kLatents; ++i) {
    EXPECT_TRUE(absl::StrContains(dom, absl::StrCat("id=\"latent-", i, "\""))) << i;
  }
  EXPECT_TRUE(absl::StrContains(dom, "showing 32 of 32 latents"));
  // Token spans, each with its highlight (Chromium serializes an opaque
  // one as rgb(...), the rest as rgba(...)).
  EXPECT_GT(Count(dom, "<span class=\"tok\" title="), 100u);
  EXPECT_GT(Count(dom, "style=\"background-color: rgba(234, 88, 12, 0."), 100u);
  EXPECT_GT(Count(dom, "<span class=\"tok tok-max\""), 20u);
  EXPECT_GT(Count(dom, "class=\"hist-bar\""), 20u);
  EXPECT_EQ(Count(dom, "<table class=\"logit-table positive\">"), static_cast<size_t>(kLatents));
  EXPECT_EQ(Count(dom, "<table class=\"logit-table negative\">"), static_cast<size_t>(kLatents));
  EXPECT_TRUE(absl::StrContains(dom, "language/en (loss 0.1234)"));
  EXPECT_TRUE(absl::StrContains(dom, "best probe task</span>\xE2\x80\x94"));  // "—"
  // The evil token's text reached the DOM as text, escaped by the DOM
  // serializer, and never as markup.
  EXPECT_TRUE(absl::StrContains(dom, ">&lt;/script&gt;&lt;b&gt;\"&amp;'</span>"));
  EXPECT_FALSE(absl::StrContains(dom, "<b>"));

  // What the index's search jumps to: only that latent.
  const std::string hash_path = testing::TempDir() + "/dom_hash.html";
  ASSERT_EQ(RunChromium("file://" + page + "#latent-5", "--dump-dom", hash_path), 0);
  const std::string hash_dom = ReadAll(hash_path);
  EXPECT_TRUE(absl::StrContains(hash_dom, "id=\"latent-5\""));
  EXPECT_FALSE(absl::StrContains(hash_dom, "id=\"latent-6\""));
  EXPECT_TRUE(absl::StrContains(hash_dom, "showing 1 of 1 latents"));
  EXPECT_TRUE(ConsoleLines(ReadAll(hash_path + ".stderr")).empty());

  const std::string index_path = testing::TempDir() + "/dom_index.html";
  ASSERT_EQ(RunChromium("file://" + site + "/index.html", "--dump-dom", index_path), 0);
  const std::string index_dom = ReadAll(index_path);
  EXPECT_TRUE(absl::StrContains(index_dom, "<a href=\"tiny_relu.html\">tiny_relu</a>"));
  EXPECT_TRUE(
      absl::StrContains(index_dom, "<a href=\"tiny_relu_subset.html\">tiny_relu_subset</a>"));
  EXPECT_TRUE(absl::StrContains(index_dom, "<td class=\"num\">2</td>"));  // latents shown
  EXPECT_TRUE(ConsoleLines(ReadAll(index_path + ".stderr")).empty());

  const std::string png = testing::TempDir() + "/dashboard.png";
  ASSERT_EQ(RunChromium("file://" + page,
                        absl::StrCat("--screenshot='", png, "' --window-size=1280,1600"),
                        testing::TempDir() + "/screenshot.out"),
            0)
      << ReadAll(testing::TempDir() + "/screenshot.out.stderr");
  const std::string image = ReadAll(png);
  ASSERT_GT(image.size(), 8u);
  EXPECT_EQ(image.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_GT(image.size(), 20000u);
  // A real example for the maintainers: bazel test //eval:dashboard_test
  // --test_env=SAELAB_DASHBOARD_SCREENSHOT_OUT=/abs/path/dashboard.png
  if (const char* out = std::getenv("SAELAB_DASHBOARD_SCREENSHOT_OUT")) {
    EXPECT_TRUE(AtomicWriteFile(out, image).ok()) << out;
  }
}

}  // namespace
}  // namespace saelab
