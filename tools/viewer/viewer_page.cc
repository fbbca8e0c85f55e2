// The viewer's page: one self-contained HTML file with an inline script
// that talks only to its own server's API (viewer_server.h).
#include <string>

#include "tools/viewer/viewer_server.h"

namespace saelab {

const std::string& ViewerPageHtml() {
  static const std::string* const kPage = new std::string(R"HTML(<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>saelab viewer</title>
<style>
body { font-family: sans-serif; margin: 20px; color: #111; max-width: 1100px; }
#prompt, #from { width: 70%; font-size: 15px; padding: 4px; }
.tok { display: inline-block; padding: 2px 3px; margin: 1px; border: 1px solid #ccc;
       border-radius: 3px; cursor: pointer; font-family: monospace; white-space: pre; }
.tok.selected { background: #fde68a; border-color: #b45309; }
.site { margin: 6px 0; }
.site .hook { font-family: monospace; font-size: 12px; color: #444; }
.latent { display: inline-block; margin: 2px; padding: 1px 4px; background: #e0e7ff;
          border-radius: 3px; font-size: 13px; }
.latent button, .latent a, #why button { font-size: 11px; margin-left: 3px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.logit, td.p, td.value, td.effect { text-align: right; font-family: monospace; }
tr.next { cursor: pointer; }
tr.next.target { background: #fde68a; }
td.effect.neg { color: #1d4ed8; }
td.effect.pos { color: #b91c1c; }
.error { color: #b91c1c; font-weight: bold; }
.hint { color: #555; font-size: 13px; }
#edits li { font-family: monospace; }
</style></head><body>
<h1>saelab viewer</h1>
<form id="form"><input id="prompt" placeholder="a prompt"> <button type="submit">Run</button></form>
<p><input id="from" placeholder="a second prompt to patch latents from (optional)"></p>
<p id="error" class="error"></p>
<h2>Edits</h2><ul id="edits"></ul>
<form id="head-form" class="hint">Scale a head: layer.head <input id="head" size="6" placeholder="1.3">
  by <input id="head-scale" size="4" value="0"> <button type="submit">apply</button></form>
<h2>Tokens</h2><div id="tokens"></div>
<p class="hint">Click a token for each SAE's top latents there; "card" opens the latent's dashboard.</p>
<div id="latents"></div>
<h2>Next token</h2>
<p class="hint">Click a row to see which latents, SAE error terms and attention heads drive it.</p>
<table id="next"><thead><tr><th>token</th><th>logit</th><th>probability</th></tr></thead><tbody></tbody></table>
<div id="why-box" hidden>
<h2 id="why-title"></h2>
<p class="hint">Effect: the first-order change of the logit if the node alone were zeroed at that
token (attribution patching: minus gradient times value).</p>
<table id="why"><thead><tr><th>node</th><th>at token</th><th>value</th><th>effect</th><th></th></tr></thead>
<tbody></tbody></table>
</div>
<h2>Greedy continuation</h2><pre id="continuation"></pre>
<script>
"use strict";
// State, kept in the URL fragment: #prompt=...&from=...&edits=site:latent:kind[:value],...
// &heads=layer.head:scale,...&target=token id.
const state = {prompt: "", from: "", edits: [], heads: [], target: null, selected: -1,
               view: null, why: null};

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.prompt = params.get("prompt") || "";
  state.from = params.get("from") || "";
  state.edits = (params.get("edits") || "").split(",").filter(s => s).map(s => {
    const [site, latent, kind, value] = s.split(":");
    return {site: Number(site), latent: Number(latent), kind: kind || "zero",
            value: value === undefined ? 0 : Number(value)};
  });
  state.heads = (params.get("heads") || "").split(",").filter(s => s).map(s => {
    const [where, scale] = s.split(":");
    const [layer, head] = where.split(".");
    return {layer: Number(layer), head: Number(head), scale: scale === undefined ? 0 : Number(scale)};
  });
  state.target = params.has("target") ? Number(params.get("target")) : null;
}

function writeHash() {
  const edits = state.edits.map(e => [e.site, e.latent, e.kind].concat(
      e.kind === "zero" || e.kind === "patch" ? [] : [e.value]).join(":")).join(",");
  const heads = state.heads.map(h => h.layer + "." + h.head + ":" + h.scale).join(",");
  const params = new URLSearchParams({prompt: state.prompt});
  if (state.from) params.set("from", state.from);
  if (edits) params.set("edits", edits);
  if (heads) params.set("heads", heads);
  if (state.target !== null) params.set("target", state.target);
  history.replaceState(null, "", "#" + params.toString());
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function button(className, text, onclick) {
  const b = element("button", className, text);
  b.type = "button";
  b.onclick = onclick;
  return b;
}

function hookOf(site) {
  return state.view ? state.view.sites[site].hook : "site " + site;
}

function renderEdits() {
  const list = document.getElementById("edits");
  list.replaceChildren();
  state.edits.forEach((e, i) => {
    const what = e.kind === "patch" ? "patched from " + JSON.stringify(state.from) :
                 e.kind + (e.kind === "zero" ? "" : " " + e.value);
    const item = element("li", "edit", hookOf(e.site) + " latent " + e.latent + ": " + what + " ");
    item.appendChild(button("remove", "remove", () => {
      state.edits.splice(i, 1); writeHash(); run(); }));
    list.appendChild(item);
  });
  state.heads.forEach((h, i) => {
    const item = element("li", "edit", "head " + h.layer + "." + h.head + ": " +
                         (h.scale === 0 ? "ablated" : "scaled by " + h.scale) + " ");
    item.appendChild(button("remove", "remove", () => {
      state.heads.splice(i, 1); writeHash(); run(); }));
    list.appendChild(item);
  });
}

function renderLatents() {
  const box = document.getElementById("latents");
  box.replaceChildren();
  const view = state.view;
  if (!view || state.selected < 0) return;
  view.sites.forEach((site, s) => {
    const row = element("div", "site");
    row.appendChild(element("span", "hook", site.hook + " (" + site.name + "): "));
    for (const a of site.top_latents[state.selected]) {
      const chip = element("span", "latent", a.latent + " " + a.activation.toFixed(3));
      chip.dataset.site = s;
      chip.dataset.latent = a.latent;
      const card = element("a", "card", "card");
      card.href = "/dashboard?site=" + s + "&latent=" + a.latent;
      card.target = "_blank";
      chip.appendChild(card);
      chip.appendChild(button("ablate", "ablate",
          () => addEdit({site: s, latent: a.latent, kind: "zero", value: 0})));
      chip.appendChild(button("clamp", "x2",
          () => addEdit({site: s, latent: a.latent, kind: "clamp", value: 2 * a.activation})));
      if (state.from) {
        chip.appendChild(button("patch", "patch",
            () => addEdit({site: s, latent: a.latent, kind: "patch", value: 0})));
      }
      row.appendChild(chip);
    }
    box.appendChild(row);
  });
}

function nodeLabel(n) {
  if (n.kind === "head") return "head " + n.layer + "." + n.head;
  if (n.kind === "error") return n.hook + " error";
  return n.hook + " latent " + n.latent;
}

function renderWhy() {
  const box = document.getElementById("why-box");
  const why = state.why;
  box.hidden = !why;
  if (!why) return;
  const text = why.target_text === undefined ? "token " + state.target : JSON.stringify(why.target_text);
  document.getElementById("why-title").textContent =
      "Why " + text + "? (logit " + why.metric.toFixed(4) + ")";
  const body = document.querySelector("#why tbody");
  body.replaceChildren();
  for (const n of why.nodes) {
    const row = element("tr", "node");
    row.dataset.kind = n.kind;
    row.dataset.effect = n.effect;
    row.appendChild(element("td", "label", nodeLabel(n)));
    row.appendChild(element("td", "at", JSON.stringify(n.token)));
    row.appendChild(element("td", "value", n.value.toFixed(3)));
    row.appendChild(element("td", "effect " + (n.effect < 0 ? "neg" : "pos"), n.effect.toFixed(4)));
    const actions = element("td");
    if (n.kind === "latent") {
      actions.appendChild(button("ablate", "ablate",
          () => addEdit({site: n.site, latent: n.latent, kind: "zero", value: 0})));
    } else if (n.kind === "head") {
      actions.appendChild(button("ablate", "ablate",
          () => addHead({layer: n.layer, head: n.head, scale: 0})));
    }
    row.appendChild(actions);
    body.appendChild(row);
  }
}

function render() {
  const view = state.view;
  const tokens = document.getElementById("tokens");
  tokens.replaceChildren();
  view.tokens.forEach((t, i) => {
    const span = element("span", "tok" + (i === state.selected ? " selected" : ""), t.text);
    span.onclick = () => { state.selected = i; render(); };
    tokens.appendChild(span);
  });
  const body = document.querySelector("#next tbody");
  body.replaceChildren();
  for (const n of view.next_tokens) {
    const row = element("tr", "next" + (n.id === state.target ? " target" : ""));
    row.dataset.id = n.id;
    row.appendChild(element("td", "text", JSON.stringify(n.text)));
    row.appendChild(element("td", "logit", n.logit.toFixed(4)));
    row.appendChild(element("td", "p", n.probability.toFixed(4)));
    row.onclick = () => { state.target = n.id; writeHash(); run(); };
    body.appendChild(row);
  }
  document.getElementById("continuation").textContent = view.continuation;
  renderEdits();
  renderLatents();
  renderWhy();
}

function addEdit(edit) {
  state.edits = state.edits.filter(e => !(e.site === edit.site && e.latent === edit.latent));
  state.edits.push(edit);
  writeHash();
  run();
}

function addHead(edit) {
  state.heads = state.heads.filter(h => !(h.layer === edit.layer && h.head === edit.head));
  state.heads.push(edit);
  writeHash();
  run();
}

function requestBody() {
  return {prompt: state.prompt,
          edits: state.edits.map(e => e.kind === "patch" ? Object.assign({from: state.from}, e) : e),
          heads: state.heads};
}

async function post(path, body) {
  const response = await fetch(path, {method: "POST", body: JSON.stringify(body)});
  const json = await response.json();
  if (!response.ok) throw new Error(json.error || response.statusText);
  return json;
}

async function run() {
  const error = document.getElementById("error");
  error.textContent = "";
  document.body.dataset.state = "running";
  try {
    state.view = await post("/api/view", requestBody());
    state.why = null;
    if (state.target !== null) {
      state.why = await post("/api/attribute", Object.assign({target: state.target}, requestBody()));
      const shown = state.view.next_tokens.find(n => n.id === state.target);
      if (shown) state.why.target_text = shown.text;
    }
    if (state.selected < 0 || state.selected >= state.view.tokens.length) {
      state.selected = state.view.tokens.length - 1;
    }
    render();
    document.body.dataset.state = "done";
  } catch (e) {
    error.textContent = String(e.message || e);
    document.body.dataset.state = "error";
  }
}

document.getElementById("form").onsubmit = event => {
  event.preventDefault();
  state.prompt = document.getElementById("prompt").value;
  state.from = document.getElementById("from").value;
  state.selected = -1;
  state.target = null;
  writeHash();
  run();
};
document.getElementById("from").onchange = () => {
  state.from = document.getElementById("from").value;
  writeHash();
  if (state.view) render();
};
document.getElementById("head-form").onsubmit = event => {
  event.preventDefault();
  const [layer, head] = document.getElementById("head").value.split(".").map(Number);
  addHead({layer: layer, head: head, scale: Number(document.getElementById("head-scale").value)});
};
readHash();
document.getElementById("prompt").value = state.prompt;
document.getElementById("from").value = state.from;
if (state.prompt) run();
</script>
</body></html>
)HTML");
  return *kPage;
}

}  // namespace saelab
