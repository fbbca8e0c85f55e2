#include "eval/dashboard.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <torch/utils.h>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "eval/splice.h"
#include "harness/file_io.h"
#include "harness/status_macros.h"

namespace saelab {
namespace {

constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD

// Length of the valid UTF-8 sequence that starts at text[i] (1 to 4), or 0
// if the byte there does not start one (stray continuation byte, overlong
// form, surrogate, past U+10FFFF, truncated).
int Utf8SequenceLength(absl::string_view text, size_t i) {
  const unsigned char c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) return 1;
  int n;
  uint32_t code;
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
    code = c & 0x1F;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    code = c & 0x0F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    code = c & 0x07;
  } else {
    return 0;
  }
  if (i + n > text.size()) return 0;
  for (int k = 1; k < n; ++k) {
    const unsigned char next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) return 0;
    code = (code << 6) | (next & 0x3F);
  }
  if (n == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF))) return 0;
  if (n == 4 && (code < 0x10000 || code > 0x10FFFF)) return 0;
  return n;
}

std::string HexByte(unsigned char c) { return absl::StrFormat("\\x%02X", c); }

// A JSON number with `digits` significant digits; JSON has no NaN or
// infinity, so those become null.
std::string JsonNumber(double value, int digits = 6) {
  if (!std::isfinite(value)) return "null";
  char buffer[40];
  std::snprintf(buffer, sizeof(buffer), "%.*g", digits, value);
  return buffer;
}

// Entry of a latent's top-k heap: one firing position and the latent's
// activations over the window around it, copied while its context's
// activations are still in memory.
struct TopEntry {
  float activation = 0;
  int64_t context = 0;
  int64_t position = 0;
  int64_t first_position = 0;
  std::vector<float> window;
};

// Strict "a ranks before b": higher activation, then earlier context, then
// earlier position. As the heap's comparator it keeps the worst kept entry
// at the front.
bool RanksBefore(const TopEntry& a, const TopEntry& b) {
  if (a.activation != b.activation) return a.activation > b.activation;
  if (a.context != b.context) return a.context < b.context;
  return a.position < b.position;
}

// The smallest power of two w with value < w * bins (value > 0).
double SmallestBinWidth(double value, int64_t bins) {
  int exponent;
  std::frexp(value / static_cast<double>(bins), &exponent);
  double width = std::ldexp(1.0, exponent);
  // frexp's bound holds for the rounded quotient; settle it on the product.
  while (value >= width * bins) width *= 2;
  while (value < width / 2 * bins) width /= 2;
  return width;
}

// Everything kept per selected latent during the pass.
struct LatentState {
  int64_t firings = 0;
  float max_activation = 0;
  double bin_width = 0;  // 0 until the first firing
  std::vector<int64_t> bins;
  std::vector<TopEntry> heap;  // RanksBefore-heap of at most top_contexts entries

  // Counts `value` (> 0). When it does not fit below bin_width * bins, the
  // width doubles and adjacent bins merge pairwise, which is exact because
  // the edges stay multiples of the width; the final width is the smallest
  // power of two that fits the max, whatever the order of the values.
  void AddToHistogram(double value) {
    const int64_t n = static_cast<int64_t>(bins.size());
    if (bin_width == 0) bin_width = SmallestBinWidth(value, n);
    while (value >= bin_width * n) {
      // new[k] = old[2k] + old[2k + 1]; in place, since 2k >= k.
      for (int64_t k = 0; k < n; ++k) {
        int64_t merged = 0;
        if (2 * k < n) merged += bins[2 * k];
        if (2 * k + 1 < n) merged += bins[2 * k + 1];
        bins[k] = merged;
      }
      bin_width *= 2;
    }
    const int64_t k = std::min<int64_t>(n - 1, static_cast<int64_t>(std::floor(value / bin_width)));
    ++bins[k];
  }
};

std::string ShapeOf(const torch::Tensor& t) {
  if (!t.defined()) return "undefined";
  return absl::StrCat("[", absl::StrJoin(t.sizes(), ", "), "] ", c10::toString(t.scalar_type()));
}

absl::Status CheckOptions(const DashboardOptions& o) {
  if (o.top_contexts < 1 || o.histogram_bins < 1 || o.batch_contexts < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dashboard: top_contexts, histogram_bins and batch_contexts must be >= 1, got ",
        o.top_contexts, ", ", o.histogram_bins, ", ", o.batch_contexts));
  }
  if (o.window_before < 0 || o.window_after < 0 || o.logit_tokens < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("dashboard: window_before, window_after and logit_tokens must be >= 0, got ",
                     o.window_before, ", ", o.window_after, ", ", o.logit_tokens));
  }
  return absl::OkStatus();
}

// A file name for an SAE's page: [A-Za-z0-9._-] kept, other bytes '_'.
std::string PageFileName(absl::string_view name) {
  std::string out;
  for (char c : name) {
    const bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
    out.push_back(keep ? c : '_');
  }
  return out + ".html";
}

// ---- The page templates. Neither contains "</" outside its real closing
// tags: the script bodies build the DOM with createElement and textContent
// (so token text is never parsed as HTML) and hold no HTML strings. ----

constexpr absl::string_view kCss = R"css(
:root { color-scheme: light; --fg: #1f2328; --muted: #656d76; --border: #d0d7de; --bg: #f6f8fa; --accent: #0969da; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; color: var(--fg); background: var(--bg); }
header { position: sticky; top: 0; z-index: 1; background: #fff; border-bottom: 1px solid var(--border); padding: 12px 24px; }
h1 { font-size: 20px; margin: 0 0 4px; }
.meta { color: var(--muted); margin: 0 0 8px; }
.meta code { color: var(--fg); }
.controls { display: flex; gap: 16px; align-items: center; flex-wrap: wrap; }
.controls input, .controls select, .controls button { font: inherit; padding: 4px 8px; border: 1px solid var(--border); border-radius: 6px; background: #fff; }
#status { color: var(--muted); }
main { padding: 16px 24px; display: flex; flex-direction: column; gap: 16px; }
.card { background: #fff; border: 1px solid var(--border); border-radius: 8px; padding: 12px 16px; }
.card-head { display: flex; align-items: baseline; gap: 24px; flex-wrap: wrap; }
.card-head h2 { font-size: 16px; margin: 0; }
.card-head h2 a { color: inherit; text-decoration: none; }
.stat { color: var(--fg); font-variant-numeric: tabular-nums; }
.stat-key { color: var(--muted); margin-right: 4px; }
.card-body { display: grid; grid-template-columns: minmax(0, 1fr) 320px; gap: 24px; margin-top: 8px; }
h3 { font-size: 11px; text-transform: uppercase; letter-spacing: .05em; color: var(--muted); margin: 8px 0 6px; font-weight: 600; }
.context { display: flex; gap: 8px; align-items: baseline; padding: 2px 0; border-bottom: 1px solid #eef1f4; }
.ctx-label { flex: 0 0 56px; text-align: right; color: var(--muted); font-variant-numeric: tabular-nums; font-size: 12px; }
.ctx-text { font-family: ui-monospace, "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; white-space: pre-wrap; word-break: break-all; }
.tok { border-radius: 2px; }
.tok-max { outline: 1px solid #9a3412; }
.hist .hist-bar { fill: #0969da; }
.hist text { font-size: 10px; fill: var(--muted); }
.logits { display: flex; gap: 12px; }
.logit-table { border-collapse: collapse; font-size: 12px; flex: 1; table-layout: fixed; }
.logit-table caption { text-align: left; color: var(--muted); font-size: 11px; padding-bottom: 2px; }
.logit-table td { padding: 1px 4px; border-bottom: 1px solid #eef1f4; }
.logit-token { font-family: ui-monospace, "DejaVu Sans Mono", monospace; white-space: pre; overflow: hidden; text-overflow: ellipsis; }
.logit-value { text-align: right; font-variant-numeric: tabular-nums; width: 56px; }
.positive .logit-value { color: #1a7f37; }
.negative .logit-value { color: #cf222e; }
.dead { color: var(--muted); font-style: italic; margin: 4px 0; }
#more { display: block; margin: 0 auto 24px; font: inherit; padding: 6px 16px; }
table.index { border-collapse: collapse; background: #fff; border: 1px solid var(--border); }
table.index th, table.index td { padding: 6px 12px; border-bottom: 1px solid var(--border); text-align: left; }
table.index td.num { text-align: right; font-variant-numeric: tabular-nums; }
)css";

constexpr absl::string_view kDashboardJs = R"js(
(function () {
  'use strict';
  var data = JSON.parse(document.getElementById('dashboard-data').textContent);
  var PAGE = 100;
  var SVG = 'http://www.w3.org/2000/svg';  // the SVG namespace name, not a fetch
  var cards = document.getElementById('cards');
  var search = document.getElementById('search');
  var sort = document.getElementById('sort');
  var more = document.getElementById('more');
  var status = document.getElementById('status');
  var shown = PAGE;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = text;
    return e;
  }
  function svg(tag, attrs) {
    var e = document.createElementNS(SVG, tag);
    Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    return e;
  }
  function fmt(x) {
    if (x === null) return 'NaN';
    var a = Math.abs(x);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) return x.toExponential(2);
    return String(Number(x.toPrecision(4)));
  }
  function pct(x) { return x === 0 ? '0%' : Number((100 * x).toPrecision(3)) + '%'; }
  function tok(id) {
    var t = data.vocab[String(id)];
    return t === undefined ? '\ufffd' : t;
  }

  function histogram(l) {
    var counts = l.hist.counts, w = l.hist.width;
    var last = counts.length - 1;
    while (last > 0 && counts[last] === 0) --last;
    var n = last + 1, peak = 1;
    for (var k = 0; k < n; ++k) peak = Math.max(peak, counts[k]);
    var W = 300, H = 64, bw = W / n;
    var s = svg('svg', {'class': 'hist', width: W, height: H + 14, viewBox: '0 0 ' + W + ' ' + (H + 14)});
    for (var b = 0; b < n; ++b) {
      var h = counts[b] / peak * H;
      var bar = svg('rect', {'class': 'hist-bar', x: b * bw, y: H - h, width: Math.max(bw - 1, 1), height: h});
      var title = svg('title', {});
      title.textContent = '[' + fmt(b * w) + ', ' + fmt((b + 1) * w) + '): ' + counts[b];
      bar.appendChild(title);
      s.appendChild(bar);
    }
    var lo = svg('text', {x: 0, y: H + 12});
    lo.textContent = '0';
    var hi = svg('text', {x: W, y: H + 12, 'text-anchor': 'end'});
    hi.textContent = fmt(n * w);
    s.appendChild(lo);
    s.appendChild(hi);
    return s;
  }

  function contextRow(l, c) {
    var row = el('div', 'context');
    var label = el('span', 'ctx-label', fmt(c.act));
    label.title = 'context ' + c.ctx + ', position ' + c.pos;
    row.appendChild(label);
    var text = el('span', 'ctx-text');
    for (var i = 0; i < c.toks.length; ++i) {
      var a = c.acts[i] === null ? 0 : c.acts[i];
      var t = tok(c.toks[i]);
      var span = el('span', c.start + i === c.pos ? 'tok tok-max' : 'tok', t);
      var alpha = l.max > 0 ? Math.max(0, Math.min(1, a / l.max)) : 0;
      span.style.backgroundColor = 'rgba(234, 88, 12, ' + alpha.toFixed(3) + ')';
      span.title = JSON.stringify(t) + ': ' + fmt(a);
      text.appendChild(span);
    }
    row.appendChild(text);
    return row;
  }

  function logitTable(caption, rows, cls) {
    var table = el('table', 'logit-table ' + cls);
    table.appendChild(el('caption', null, caption));
    var body = el('tbody');
    rows.forEach(function (r) {
      var tr = el('tr');
      var name = el('td', 'logit-token', tok(r[0]));
      name.title = JSON.stringify(tok(r[0])) + ' (id ' + r[0] + ')';
      tr.appendChild(name);
      tr.appendChild(el('td', 'logit-value', (r[1] > 0 ? '+' : '') + fmt(r[1])));
      body.appendChild(tr);
    });
    table.appendChild(body);
    return table;
  }

  function card(l) {
    var c = el('section', 'card');
    c.id = 'latent-' + l.id;
    var head = el('div', 'card-head');
    var h = el('h2');
    var link = el('a', null, 'Latent ' + l.id);
    link.href = '#latent-' + l.id;
    h.appendChild(link);
    head.appendChild(h);
    function stat(key, value) {
      var s = el('span', 'stat');
      s.appendChild(el('span', 'stat-key', key));
      s.appendChild(document.createTextNode(value));
      head.appendChild(s);
    }
    stat('density', pct(l.density) + ' (' + l.firings + ' of ' + data.tokens + ' tokens)');
    stat('max activation', fmt(l.max));
    stat('best probe task', l.probe ? l.probe.task + ' (loss ' + fmt(l.probe.loss) + ')' : '\u2014');
    c.appendChild(head);
    var body = el('div', 'card-body');
    var left = el('div', 'contexts');
    left.appendChild(el('h3', null, 'Top activations'));
    if (l.firings === 0) left.appendChild(el('p', 'dead', 'Never fired on the ' + data.tokens + ' tokens scanned.'));
    l.top.forEach(function (ctx) { left.appendChild(contextRow(l, ctx)); });
    var side = el('div', 'side');
    side.appendChild(el('h3', null, 'Non-zero activations'));
    if (l.firings > 0) side.appendChild(histogram(l));
    else side.appendChild(el('p', 'dead', 'none'));
    side.appendChild(el('h3', null, 'Logit effects (W_dec \u00b7 W_E\u1d40)'));
    var logits = el('div', 'logits');
    logits.appendChild(logitTable('top', l.logits_top, 'positive'));
    logits.appendChild(logitTable('bottom', l.logits_bottom, 'negative'));
    side.appendChild(logits);
    body.appendChild(left);
    body.appendChild(side);
    c.appendChild(body);
    return c;
  }

  var sorters = {
    'id': function (a, b) { return a.id - b.id; },
    'density-desc': function (a, b) { return b.density - a.density || a.id - b.id; },
    'density-asc': function (a, b) { return a.density - b.density || a.id - b.id; },
    'max-desc': function (a, b) { return (b.max || 0) - (a.max || 0) || a.id - b.id; }
  };

  // Ids typed in the search box (separated by spaces or commas); null: all.
  function wanted() {
    var words = search.value.split(/[\s,]+/).filter(function (s) { return s !== ''; });
    if (words.length === 0) return null;
    var ids = {};
    words.forEach(function (s) { if (/^\d+$/.test(s)) ids[Number(s)] = true; });
    return ids;
  }

  function render() {
    var ids = wanted();
    var list = data.latents.filter(function (l) { return ids === null || ids[l.id] === true; });
    list.sort(sorters[sort.value] || sorters.id);
    var n = Math.min(list.length, shown);
    var fragment = document.createDocumentFragment();
    for (var i = 0; i < n; ++i) fragment.appendChild(card(list[i]));
    cards.textContent = '';
    cards.appendChild(fragment);
    more.hidden = n >= list.length;
    status.textContent = list.length === 0 ? 'no latent on this page matches'
                                           : 'showing ' + n + ' of ' + list.length + ' latents';
  }

  // index.html links to page#latent-<id>: show that latent.
  function fromHash() {
    var m = /^#latent-(\d+)$/.exec(window.location.hash);
    if (!m) return false;
    search.value = m[1];
    shown = PAGE;
    render();
    var target = document.getElementById('latent-' + m[1]);
    if (target) target.scrollIntoView();
    return true;
  }

  search.addEventListener('input', function () { shown = PAGE; render(); });
  sort.addEventListener('change', function () { shown = PAGE; render(); });
  more.addEventListener('click', function () { shown += PAGE; render(); });
  window.addEventListener('hashchange', fromHash);
  if (!fromHash()) render();
})();
)js";

constexpr absl::string_view kIndexJs = R"js(
(function () {
  'use strict';
  var form = document.getElementById('jump');
  var latent = document.getElementById('latent');
  form.addEventListener('submit', function (e) {
    e.preventDefault();
    var id = latent.value.trim();
    if (!/^\d+$/.test(id)) return;
    window.location.href = document.getElementById('sae').value + '#latent-' + id;
  });
})();
)js";

std::string DashboardJson(const SaeDashboard& d) {
  std::string out = "{";
  absl::StrAppend(
      &out, "\"name\":", JsonScriptString(d.name), ",\"hook\":", JsonScriptString(d.hook_name),
      ",\"architecture\":", JsonScriptString(d.architecture), ",\"d_in\":", d.d_in,
      ",\"n_latents\":", d.n_latents, ",\"contexts\":", d.contexts, ",\"tokens\":", d.tokens,
      ",\"dead_fraction\":", JsonNumber(d.dead_fraction), ",\n\"vocab\":{");
  bool first = true;
  for (const auto& [id, text] : d.token_text) {
    absl::StrAppend(&out, first ? "" : ",", "\"", id, "\":", JsonScriptString(text));
    first = false;
  }
  absl::StrAppend(&out, "},\n\"latents\":[");
  for (size_t i = 0; i < d.latents.size(); ++i) {
    const LatentDashboard& l = d.latents[i];
    absl::StrAppend(&out, i == 0 ? "\n" : ",\n", "{\"id\":", l.latent, ",\"firings\":", l.firings,
                    ",\"density\":", JsonNumber(l.density),
                    ",\"max\":", JsonNumber(l.max_activation),
                    ",\"hist\":{\"width\":", JsonNumber(l.histogram_bin_width, 17), ",\"counts\":[",
                    absl::StrJoin(l.histogram, ","), "]},\"top\":[");
    for (size_t c = 0; c < l.top_contexts.size(); ++c) {
      const ActivatingContext& context = l.top_contexts[c];
      std::vector<std::string> acts;
      for (float a : context.activations) acts.push_back(JsonNumber(a, 4));
      absl::StrAppend(&out, c == 0 ? "" : ",", "{\"ctx\":", context.context,
                      ",\"pos\":", context.position, ",\"act\":", JsonNumber(context.activation),
                      ",\"start\":", context.first_position, ",\"toks\":[",
                      absl::StrJoin(context.tokens, ","), "],\"acts\":[", absl::StrJoin(acts, ","),
                      "]}");
    }
    auto logits = [&](const std::vector<LogitEffect>& effects) {
      std::vector<std::string> rows;
      for (const LogitEffect& e : effects) {
        rows.push_back(absl::StrCat("[", e.token, ",", JsonNumber(e.value, 5), "]"));
      }
      return absl::StrCat("[", absl::StrJoin(rows, ","), "]");
    };
    absl::StrAppend(&out, "],\"logits_top\":", logits(l.top_logits),
                    ",\"logits_bottom\":", logits(l.bottom_logits), ",\"probe\":");
    if (l.annotation.has_value()) {
      absl::StrAppend(&out, "{\"task\":", JsonScriptString(l.annotation->best_probe_task),
                      ",\"loss\":", JsonNumber(l.annotation->probe_loss), "}");
    } else {
      out += "null";
    }
    out += "}";
  }
  out += "\n]}";
  return out;
}

absl::Status CheckRelativePage(const std::string& page) {
  if (page.empty() || page[0] == '/' || page.find_first_of(":#?\"\\<>") != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dashboard index: page '", page,
        "' must be a non-empty relative path without ':', '#', '?', quotes, '<', '>' or '\\'"));
  }
  return absl::OkStatus();
}

}  // namespace

DashboardOptions DashboardOptionsFromConfig(const DashboardConfig& config) {
  DashboardOptions o;
  o.top_contexts = config.top_contexts();
  o.window_before = config.window_before();
  o.window_after = config.window_after();
  o.histogram_bins = config.histogram_bins();
  o.logit_tokens = config.logit_tokens();
  o.batch_contexts = config.batch_contexts();
  o.latents.assign(config.latents().begin(), config.latents().end());
  if (o.latents.empty()) {
    for (int64_t i = 0; i < config.first_latents(); ++i) o.latents.push_back(i);
  }
  return o;
}

std::string HtmlEscape(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const char c = text[i];
    switch (c) {
      case '&':
        out += "&amp;";
        ++i;
        continue;
      case '<':
        out += "&lt;";
        ++i;
        continue;
      case '>':
        out += "&gt;";
        ++i;
        continue;
      case '"':
        out += "&quot;";
        ++i;
        continue;
      case '\'':
        out += "&#39;";
        ++i;
        continue;
      default:
        break;
    }
    const int n = Utf8SequenceLength(text, i);
    if (n == 0) {
      out += kReplacement;
      ++i;
    } else {
      out.append(text.data() + i, n);
      i += n;
    }
  }
  return out;
}

std::string JsonScriptString(absl::string_view text) {
  std::string out = "\"";
  for (size_t i = 0; i < text.size();) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        // Inside <script>, "</script>" would end the element and "<!--"
        // changes how the parser reads it; & and > for good measure.
        case '<':
          out += "\\u003c";
          break;
        case '>':
          out += "\\u003e";
          break;
        case '&':
          out += "\\u0026";
          break;
        default:
          if (c < 0x20) {
            out += absl::StrFormat("\\u%04x", c);
          } else {
            out.push_back(static_cast<char>(c));
          }
      }
      ++i;
      continue;
    }
    const int n = Utf8SequenceLength(text, i);
    if (n == 0) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    const absl::string_view sequence = text.substr(i, n);
    if (sequence == "\xE2\x80\xA8") {
      out += "\\u2028";  // line separators end a JavaScript string literal
    } else if (sequence == "\xE2\x80\xA9") {
      out += "\\u2029";
    } else {
      out.append(sequence.data(), sequence.size());
    }
    i += n;
  }
  out += "\"";
  return out;
}

std::string TokenDisplayText(absl::string_view bytes) {
  std::string out;
  for (size_t i = 0; i < bytes.size();) {
    const unsigned char c = static_cast<unsigned char>(bytes[i]);
    if (c == '\n') {
      out += "\xE2\x86\xB5";  // ↵
    } else if (c == '\t') {
      out += "\xE2\x87\xA5";  // ⇥
    } else if (c == '\r') {
      out += "\xE2\x90\x8D";  // ␍
    } else if (c < 0x20 || c == 0x7F) {
      out += HexByte(c);
    } else {
      const int n = Utf8SequenceLength(bytes, i);
      if (n == 0) {
        out += HexByte(c);  // part of a character split across tokens
      } else {
        out.append(bytes.data() + i, n);
        i += n;
        continue;
      }
    }
    ++i;
  }
  return out;
}

absl::StatusOr<SaeDashboard> BuildDashboard(
    const Gpt2Model& model, const BpeTokenizer& tokenizer, const std::string& hook_name, Sae& sae,
    const torch::Tensor& contexts, const DashboardOptions& options,
    const absl::flat_hash_map<int64_t, LatentAnnotation>& annotations) {
  if (!contexts.defined() || contexts.dim() != 2 || contexts.size(0) < 1 || contexts.size(1) < 2 ||
      contexts.scalar_type() != torch::kLong) {
    return absl::InvalidArgumentError(absl::StrCat(
        "dashboard: contexts must be [N >= 1, L >= 2] int64, got ", ShapeOf(contexts)));
  }
  RETURN_IF_ERROR(CheckOptions(options));
  ASSIGN_OR_RETURN(HookLocation location, ParseHookName(hook_name, model.config().n_layer));
  if (model.config().n_embd != sae.d_in()) {
    return absl::InvalidArgumentError(absl::StrCat("dashboard: the SAE's d_in is ", sae.d_in(),
                                                   " but ", hook_name,
                                                   " has width n_embd = ", model.config().n_embd));
  }
  std::vector<int64_t> latents = options.latents;
  if (latents.empty()) {
    for (int64_t i = 0; i < sae.n_latents(); ++i) latents.push_back(i);
  } else {
    absl::flat_hash_set<int64_t> seen;
    for (int64_t latent : latents) {
      RETURN_IF_ERROR(CheckLatent(sae, latent));
      if (!seen.insert(latent).second) {
        return absl::InvalidArgumentError(
            absl::StrCat("dashboard: latent ", latent, " is listed twice"));
      }
    }
  }

  torch::NoGradGuard no_grad;
  const int64_t n_contexts = contexts.size(0), length = contexts.size(1);
  const int64_t per_context = length - 1;  // non-BOS positions
  const int64_t m = static_cast<int64_t>(latents.size());
  const size_t top_k = static_cast<size_t>(options.top_contexts);
  const torch::Tensor index = torch::tensor(latents, torch::kLong);
  const bool all_latents = options.latents.empty();

  std::vector<LatentState> state(m);
  for (LatentState& s : state) s.bins.assign(options.histogram_bins, 0);
  torch::Tensor fired = torch::zeros({sae.n_latents()}, torch::kBool);  // over every latent

  for (int64_t begin = 0; begin < n_contexts; begin += options.batch_contexts) {
    const int64_t end = std::min(n_contexts, begin + options.batch_contexts);
    ASSIGN_OR_RETURN(torch::Tensor activations,
                     model.RunToHook(contexts.slice(0, begin, end), location));
    // [b * (L - 1), n_latents]: only this batch's rows are ever in memory.
    torch::Tensor f = sae.Encode(activations.slice(1, 1).reshape({-1, sae.d_in()}))
                          .to(torch::kCPU, torch::kFloat32);
    fired = fired.logical_or((f > 0).any(0));
    // [b * (L - 1), m] row-major, read directly: per firing the work is a
    // few scalar updates, far cheaper than per-latent tensor calls.
    const torch::Tensor selected = (all_latents ? f : f.index_select(1, index)).contiguous();
    const float* data = selected.data_ptr<float>();
    const int64_t rows = selected.size(0);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t context_row = r / per_context;  // within the batch
      const int64_t position = 1 + r % per_context;
      const float* row = data + r * m;
      for (int64_t j = 0; j < m; ++j) {
        const float value = row[j];
        if (!(value > 0)) continue;
        LatentState& s = state[j];
        ++s.firings;
        s.max_activation = std::max(s.max_activation, value);
        s.AddToHistogram(value);
        TopEntry entry;
        entry.activation = value;
        entry.context = begin + context_row;
        entry.position = position;
        if (s.heap.size() == top_k && !RanksBefore(entry, s.heap.front())) continue;
        entry.first_position = std::max<int64_t>(1, position - options.window_before);
        const int64_t last = std::min(length - 1, position + options.window_after);
        for (int64_t q = entry.first_position; q <= last; ++q) {
          entry.window.push_back(data[(context_row * per_context + q - 1) * m + j]);
        }
        if (s.heap.size() == top_k) {
          std::pop_heap(s.heap.begin(), s.heap.end(), RanksBefore);
          s.heap.pop_back();
        }
        s.heap.push_back(std::move(entry));
        std::push_heap(s.heap.begin(), s.heap.end(), RanksBefore);
      }
    }
  }

  SaeDashboard d;
  d.hook_name = hook_name;
  d.architecture = sae.architecture();
  d.d_in = sae.d_in();
  d.n_latents = sae.n_latents();
  d.contexts = n_contexts;
  d.tokens = n_contexts * per_context;
  d.dead_fraction = 1.0 - fired.sum().item<double>() / static_cast<double>(sae.n_latents());
  const torch::Tensor tokens = contexts.contiguous();
  const int64_t* token_data = tokens.data_ptr<int64_t>();
  absl::flat_hash_set<int64_t> token_ids;
  d.latents.resize(m);
  for (int64_t j = 0; j < m; ++j) {
    LatentState& s = state[j];
    LatentDashboard& l = d.latents[j];
    l.latent = latents[j];
    l.firings = s.firings;
    l.density = static_cast<double>(s.firings) / static_cast<double>(d.tokens);
    l.max_activation = s.max_activation;
    l.histogram_bin_width = s.bin_width;
    l.histogram = std::move(s.bins);
    std::sort(s.heap.begin(), s.heap.end(), RanksBefore);
    for (TopEntry& e : s.heap) {
      ActivatingContext c;
      c.context = e.context;
      c.position = e.position;
      c.activation = e.activation;
      c.first_position = e.first_position;
      c.activations = std::move(e.window);
      for (size_t k = 0; k < c.activations.size(); ++k) {
        const int64_t id =
            token_data[e.context * length + e.first_position + static_cast<int64_t>(k)];
        c.tokens.push_back(id);
        token_ids.insert(id);
      }
      l.top_contexts.push_back(std::move(c));
    }
    auto annotation = annotations.find(l.latent);
    if (annotation != annotations.end()) l.annotation = annotation->second;
  }

  // Logit effects: each decoder row in model units (Decode divides by the
  // input scale) through the tied unembedding, without the final
  // LayerNorm (docs/metrics.md). Chunked so that [chunk, vocab] stays small.
  const int64_t k_logits = std::min<int64_t>(options.logit_tokens, model.config().vocab_size);
  if (k_logits > 0) {
    const torch::Tensor unembed = model.NamedTensors().at("wte.weight").t();  // [d_model, vocab]
    const torch::Tensor decoder =
        sae.W_dec.detach().index_select(0, index).to(torch::kFloat32) / sae.input_scale();
    constexpr int64_t kChunk = 64;
    for (int64_t c0 = 0; c0 < m; c0 += kChunk) {
      const int64_t c1 = std::min(m, c0 + kChunk);
      const torch::Tensor effects = decoder.slice(0, c0, c1).matmul(unembed);  // [chunk, vocab]
      auto [top_values, top_ids] = effects.topk(k_logits, 1, /*largest=*/true, /*sorted=*/true);
      auto [bottom_values, bottom_ids] =
          effects.topk(k_logits, 1, /*largest=*/false, /*sorted=*/true);
      top_values = top_values.to(torch::kFloat64).contiguous();
      bottom_values = bottom_values.to(torch::kFloat64).contiguous();
      top_ids = top_ids.contiguous();
      bottom_ids = bottom_ids.contiguous();
      for (int64_t j = c0; j < c1; ++j) {
        LatentDashboard& l = d.latents[j];
        for (int64_t k = 0; k < k_logits; ++k) {
          const int64_t offset = (j - c0) * k_logits + k;
          l.top_logits.push_back(
              {top_ids.data_ptr<int64_t>()[offset], top_values.data_ptr<double>()[offset]});
          l.bottom_logits.push_back(
              {bottom_ids.data_ptr<int64_t>()[offset], bottom_values.data_ptr<double>()[offset]});
          token_ids.insert(l.top_logits.back().token);
          token_ids.insert(l.bottom_logits.back().token);
        }
      }
    }
  }

  for (int64_t id : token_ids) {
    const int32_t id32 = static_cast<int32_t>(id);
    d.token_text[id] = TokenDisplayText(tokenizer.Decode(absl::MakeConstSpan(&id32, 1)));
  }
  return d;
}

std::string RenderDashboardHtml(const SaeDashboard& d) {
  const std::string title = d.name.empty() ? absl::StrCat(d.architecture, " SAE") : d.name;
  std::string out;
  absl::StrAppend(
      &out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>",
      HtmlEscape(title), " \xE2\x80\x94 feature dashboard</title>\n<style>", kCss,
      "</style>\n</head>\n<body>\n<header>\n<h1>", HtmlEscape(title), "</h1>\n<p class=\"meta\">",
      "hook <code>", HtmlEscape(d.hook_name), "</code> \xC2\xB7 ", HtmlEscape(d.architecture),
      " \xC2\xB7 d_in ", d.d_in, " \xC2\xB7 ", d.n_latents, " latents, ", d.latents.size(),
      " shown \xC2\xB7 ", d.tokens, " tokens from ", d.contexts, " contexts (BOS skipped)",
      " \xC2\xB7 dead fraction ", absl::StrFormat("%.4g", d.dead_fraction),
      " \xC2\xB7 <a href=\"index.html\">all SAEs</a></p>\n", "<div class=\"controls\">\n",
      "<label>Latent id <input id=\"search\" type=\"search\" placeholder=\"e.g. 17 or 3, 9, 12\" "
      "autocomplete=\"off\"></label>\n",
      "<label>Sort by <select id=\"sort\">", "<option value=\"id\">latent id</option>",
      "<option value=\"density-desc\">density, high to low</option>",
      "<option value=\"density-asc\">density, low to high</option>",
      "<option value=\"max-desc\">max activation</option></select></label>\n",
      "<span id=\"status\"></span>\n</div>\n</header>\n<main id=\"cards\"></main>\n",
      "<button id=\"more\" type=\"button\" hidden>Show more</button>\n",
      "<noscript><p>This page draws its latents with JavaScript.</p></noscript>\n",
      "<script id=\"dashboard-data\" type=\"application/json\">", DashboardJson(d),
      "</script>\n<script>", kDashboardJs, "</script>\n</body>\n</html>\n");
  return out;
}

absl::Status WriteDashboardHtml(const SaeDashboard& dashboard, const std::string& path) {
  return AtomicWriteFile(path, RenderDashboardHtml(dashboard));
}

DashboardIndexEntry IndexEntryFor(const SaeDashboard& dashboard, const std::string& page) {
  DashboardIndexEntry e;
  e.name = dashboard.name;
  e.page = page;
  e.hook_name = dashboard.hook_name;
  e.latents_shown = static_cast<int64_t>(dashboard.latents.size());
  e.dead_fraction = dashboard.dead_fraction;
  return e;
}

absl::StatusOr<std::string> RenderDashboardIndex(const std::vector<DashboardIndexEntry>& saes) {
  std::string options, rows;
  for (const DashboardIndexEntry& e : saes) {
    RETURN_IF_ERROR(CheckRelativePage(e.page));
    absl::StrAppend(&options, "<option value=\"", HtmlEscape(e.page), "\">", HtmlEscape(e.name),
                    "</option>");
    absl::StrAppend(&rows, "<tr><td><a href=\"", HtmlEscape(e.page), "\">", HtmlEscape(e.name),
                    "</a></td><td><code>", HtmlEscape(e.hook_name),
                    "</code></td><td class=\"num\">", e.latents_shown, "</td><td class=\"num\">",
                    absl::StrFormat("%.4g", e.dead_fraction), "</td></tr>\n");
  }
  std::string out;
  absl::StrAppend(
      &out, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
      "<title>SAE feature dashboards</title>\n<style>", kCss, "</style>\n</head>\n<body>\n",
      "<header>\n<h1>SAE feature dashboards</h1>\n<p class=\"meta\">", saes.size(),
      " SAEs</p>\n<form id=\"jump\" class=\"controls\">\n<label>SAE <select id=\"sae\">", options,
      "</select></label>\n<label>Latent id <input id=\"latent\" type=\"text\" "
      "inputmode=\"numeric\" "
      "pattern=\"[0-9]+\" required></label>\n<button type=\"submit\">Go</button>\n</form>\n",
      "</header>\n<main>\n<table class=\"index\">\n<thead><tr><th>SAE</th><th>hook</th>",
      "<th>latents shown</th><th>dead fraction</th></tr></thead>\n<tbody>\n", rows,
      "</tbody>\n</table>\n</main>\n<script>", kIndexJs, "</script>\n</body>\n</html>\n");
  return out;
}

absl::Status WriteDashboardIndex(const std::vector<DashboardIndexEntry>& saes,
                                 const std::string& path) {
  ASSIGN_OR_RETURN(std::string html, RenderDashboardIndex(saes));
  return AtomicWriteFile(path, html);
}

absl::Status WriteDashboardSite(const std::vector<SaeDashboard>& dashboards,
                                const std::string& dir) {
  std::vector<DashboardIndexEntry> entries;
  absl::flat_hash_set<std::string> pages;
  for (const SaeDashboard& d : dashboards) {
    if (d.name.empty()) {
      return absl::InvalidArgumentError("dashboard site: every dashboard needs a name");
    }
    const std::string page = PageFileName(d.name);
    if (page == "index.html" || !pages.insert(page).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("dashboard site: the page of '", d.name, "' (", page, ") is not unique"));
    }
    entries.push_back(IndexEntryFor(d, page));
  }
  RETURN_IF_ERROR(MakeDirs(dir));
  for (size_t i = 0; i < dashboards.size(); ++i) {
    RETURN_IF_ERROR(WriteDashboardHtml(dashboards[i], dir + "/" + entries[i].page));
  }
  return WriteDashboardIndex(entries, dir + "/index.html");
}

}  // namespace saelab
