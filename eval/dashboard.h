// Feature dashboards: one self-contained static HTML page per SAE (inline
// CSS and JS, the data as a JSON literal in a <script> tag; nothing is
// fetched, so a page opens from a file:// URL with no network) plus an
// index page. Each card shows one latent: its firing density and max
// activation, its top-activating contexts with per-token highlighting, a
// histogram of its non-zero activations, its top and bottom logit effects
// through the unembedding, and its best probe task when one is known.
// docs/metrics.md ("Feature dashboards") defines each element.
//
//   DashboardOptions options = DashboardOptionsFromConfig(config.dashboard());
//   ASSIGN_OR_RETURN(SaeDashboard d, BuildDashboard(model, tokenizer, "blocks.1.hook_resid_post",
//                                                  sae, val_contexts, options, annotations));
//   d.name = "topk_k32";
//   RETURN_IF_ERROR(WriteDashboardSite({d}, run_dir + "/dashboards"));
//   // run_dir/dashboards/index.html, run_dir/dashboards/topk_k32.html
//
// Statistics come from one pass over the contexts in batches of
// batch_contexts: the model runs only as far as the hook, the SAE encodes
// the non-BOS positions (the SAEs never see BOS), and each selected latent
// keeps a firing count, its max, a histogram and a bounded heap of its top
// (context, position) entries, so memory is bounded by the batch, not by
// the number of contexts.
#ifndef SAELAB_EVAL_DASHBOARD_H_
#define SAELAB_EVAL_DASHBOARD_H_

#include <torch/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/subject_model/gpt2_model.h"
#include "data/text/bpe_tokenizer.h"
#include "eval/eval_config.pb.h"
#include "sae/sae.h"

namespace saelab {

// What other evaluations know about a latent (filled by the caller, e.g.
// from linear probes); shown on its card, "—" when absent.
struct LatentAnnotation {
  std::string best_probe_task;
  double probe_loss = 0;
};

struct DashboardOptions {
  int64_t top_contexts = 10;    // top-activating contexts per latent (>= 1)
  int64_t window_before = 12;   // tokens shown before the max position (>= 0)
  int64_t window_after = 4;     // tokens shown after it (>= 0)
  int64_t histogram_bins = 20;  // bins of the non-zero activation histogram (>= 1)
  int64_t logit_tokens = 10;    // tokens in each of the top and bottom logit tables (>= 0)
  int64_t batch_contexts = 32;  // contexts per forward pass (>= 1); results do not depend on it
  // Latent ids to show, in this order; empty: every latent.
  std::vector<int64_t> latents;
};

// The options of a DashboardConfig (eval/eval_config.proto).
DashboardOptions DashboardOptionsFromConfig(const DashboardConfig& config);

// One top-activating context: a window of tokens around the position where
// the latent reached `activation`.
struct ActivatingContext {
  int64_t context = 0;   // row of `contexts`
  int64_t position = 0;  // position in the context (>= 1: BOS is never a row)
  float activation = 0;  // the latent's activation there
  // The window: positions [first_position, first_position + tokens.size()),
  // clipped to [1, L) (BOS is not shown).
  int64_t first_position = 0;
  std::vector<int64_t> tokens;     // token ids
  std::vector<float> activations;  // the latent's activation at each of them
};

struct LogitEffect {
  int64_t token = 0;
  double value = 0;  // (W_dec[i] / input_scale) . W_E[token], logit units per unit of f_i
};

struct LatentDashboard {
  int64_t latent = 0;
  int64_t firings = 0;       // non-BOS tokens with f_i > 0
  double density = 0;        // firings / SaeDashboard::tokens
  float max_activation = 0;  // max of f_i over those tokens (0 if it never fired)
  // Best first: activation descending, then context, then position
  // ascending; at most top_contexts.
  std::vector<ActivatingContext> top_contexts;
  // Histogram of the non-zero activations: bin k counts f_i in
  // [k * bin_width, (k + 1) * bin_width); bin_width is the smallest power of
  // two with max_activation < bin_width * bins (0 if it never fired), so the
  // edges do not depend on batching and the counts are exact.
  double histogram_bin_width = 0;
  std::vector<int64_t> histogram;          // [histogram_bins], sums to firings
  std::vector<LogitEffect> top_logits;     // largest first
  std::vector<LogitEffect> bottom_logits;  // smallest first
  std::optional<LatentAnnotation> annotation;
};

struct SaeDashboard {
  std::string name;  // the SAE's name (the caller sets it; page title, index, file name)
  std::string hook_name;
  std::string architecture;
  int64_t d_in = 0;
  int64_t n_latents = 0;
  int64_t contexts = 0;  // contexts scanned
  int64_t tokens = 0;    // non-BOS tokens scanned: contexts * (L - 1)
  // Fraction of all n_latents (not only those shown) that never fired on
  // the scanned tokens.
  double dead_fraction = 0;
  std::vector<LatentDashboard> latents;  // in DashboardOptions::latents order
  // Display text of every token id the latents refer to (TokenDisplayText).
  std::map<int64_t, std::string> token_text;
};

// Scans `contexts` ([N >= 1, L >= 2] int64, each starting with BOS) at
// `hook_name` and builds the dashboard of the selected latents.
// InvalidArgument for an unknown hook (listing the valid names), an SAE
// whose d_in differs from the hook width (naming both), a latent id out of
// range or listed twice, bad contexts, or options out of range; errors from
// the forward pass (token ids out of range, contexts longer than
// n_positions) pass through. Annotations of latents not shown are ignored.
absl::StatusOr<SaeDashboard> BuildDashboard(
    const Gpt2Model& model, const BpeTokenizer& tokenizer, const std::string& hook_name, Sae& sae,
    const torch::Tensor& contexts, const DashboardOptions& options,
    const absl::flat_hash_map<int64_t, LatentAnnotation>& annotations = {});

// The per-SAE page, self-contained. Its element ids: `latent-<id>` per card.
std::string RenderDashboardHtml(const SaeDashboard& dashboard);

// Writes RenderDashboardHtml(dashboard) to `path` atomically (the parent
// directory must exist).
absl::Status WriteDashboardHtml(const SaeDashboard& dashboard, const std::string& path);

// One row of the index page.
struct DashboardIndexEntry {
  std::string name;
  std::string page;  // relative URL of the SAE's page from the index, e.g. "topk_k32.html"
  std::string hook_name;
  int64_t latents_shown = 0;
  double dead_fraction = 0;
};

// The index row of `dashboard`, whose page is at `page` (relative).
DashboardIndexEntry IndexEntryFor(const SaeDashboard& dashboard, const std::string& page);

// The index page: a table of the SAE pages (name, hook, latents shown, dead
// fraction, relative links) and a search that jumps to
// `<page>#latent-<id>`. InvalidArgument for a page that is empty, absolute
// ("/..." or with a URL scheme) or contains '#', '?', '"' or a backslash.
absl::StatusOr<std::string> RenderDashboardIndex(const std::vector<DashboardIndexEntry>& saes);
absl::Status WriteDashboardIndex(const std::vector<DashboardIndexEntry>& saes,
                                 const std::string& path);

// Writes `dir`/<file name of name>.html for each dashboard and `dir`/index.html
// linking them, creating `dir`. The file name keeps [A-Za-z0-9._-] of the
// name and replaces every other byte with '_'. InvalidArgument for an empty
// name or two dashboards with the same file name.
absl::Status WriteDashboardSite(const std::vector<SaeDashboard>& dashboards,
                                const std::string& dir);

// ---- Text helpers (exposed for the tests). ----

// `text` with & < > " ' replaced by entities, for element text and
// attribute values; invalid UTF-8 bytes become U+FFFD.
std::string HtmlEscape(absl::string_view text);

// `text` as a JSON string literal (quotes included) that is safe inside a
// <script> element: < > & become \u003c \u003e \u0026, so "</script>" and
// "<!--" cannot occur; U+2028 and U+2029 and control characters are
// escaped; invalid UTF-8 bytes become U+FFFD.
std::string JsonScriptString(absl::string_view text);

// How a token's raw bytes are shown: valid UTF-8 is kept; '\n' becomes
// "↵", '\t' "⇥", '\r' "␍", other control bytes and bytes that are not
// valid UTF-8 (a token may hold part of a character) "\xHH".
std::string TokenDisplayText(absl::string_view bytes);

}  // namespace saelab

#endif  // SAELAB_EVAL_DASHBOARD_H_
