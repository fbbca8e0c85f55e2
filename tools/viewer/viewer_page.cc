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
#prompt { width: 70%; font-size: 15px; padding: 4px; }
.tok { display: inline-block; padding: 2px 3px; margin: 1px; border: 1px solid #ccc;
       border-radius: 3px; cursor: pointer; font-family: monospace; white-space: pre; }
.tok.selected { background: #fde68a; border-color: #b45309; }
.site { margin: 6px 0; }
.site .hook { font-family: monospace; font-size: 12px; color: #444; }
.latent { display: inline-block; margin: 2px; padding: 1px 4px; background: #e0e7ff;
          border-radius: 3px; font-size: 13px; }
.latent button { font-size: 11px; margin-left: 3px; }
table { border-collapse: collapse; font-size: 13px; }
td, th { border: 1px solid #ccc; padding: 2px 8px; }
td.logit, td.p { text-align: right; font-family: monospace; }
.error { color: #b91c1c; font-weight: bold; }
#edits li { font-family: monospace; }
</style></head><body>
<h1>saelab viewer</h1>
<form id="form"><input id="prompt" placeholder="a prompt"> <button type="submit">Run</button></form>
<p id="error" class="error"></p>
<h2>Edits</h2><ul id="edits"></ul>
<h2>Tokens</h2><div id="tokens"></div>
<div id="latents"></div>
<h2>Next token</h2>
<table id="next"><thead><tr><th>token</th><th>logit</th><th>probability</th></tr></thead><tbody></tbody></table>
<h2>Greedy continuation</h2><pre id="continuation"></pre>
<script>
"use strict";
// State: the prompt, the edits and the selected token, kept in the URL
// fragment (#prompt=...&edits=site:latent:kind[:value],...).
const state = {prompt: "", edits: [], selected: -1, view: null};

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.prompt = params.get("prompt") || "";
  state.edits = (params.get("edits") || "").split(",").filter(s => s).map(s => {
    const [site, latent, kind, value] = s.split(":");
    return {site: Number(site), latent: Number(latent), kind: kind || "zero",
            value: value === undefined ? 0 : Number(value)};
  });
}

function writeHash() {
  const edits = state.edits.map(e => [e.site, e.latent, e.kind].concat(
      e.kind === "zero" ? [] : [e.value]).join(":")).join(",");
  const params = new URLSearchParams({prompt: state.prompt});
  if (edits) params.set("edits", edits);
  history.replaceState(null, "", "#" + params.toString());
}

function element(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderEdits() {
  const list = document.getElementById("edits");
  list.replaceChildren();
  state.edits.forEach((e, i) => {
    const hook = state.view ? state.view.sites[e.site].hook : "site " + e.site;
    const item = element("li", "edit", hook + " latent " + e.latent + ": " + e.kind +
                         (e.kind === "zero" ? "" : " " + e.value) + " ");
    const remove = element("button", "", "remove");
    remove.onclick = () => { state.edits.splice(i, 1); writeHash(); run(); };
    item.appendChild(remove);
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
      const ablate = element("button", "ablate", "ablate");
      ablate.onclick = () => addEdit({site: s, latent: a.latent, kind: "zero", value: 0});
      const clamp = element("button", "clamp", "x2");
      clamp.onclick = () => addEdit({site: s, latent: a.latent, kind: "clamp",
                                     value: 2 * a.activation});
      chip.appendChild(ablate);
      chip.appendChild(clamp);
      row.appendChild(chip);
    }
    box.appendChild(row);
  });
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
    const row = element("tr", "next");
    row.dataset.id = n.id;
    row.appendChild(element("td", "text", JSON.stringify(n.text)));
    row.appendChild(element("td", "logit", n.logit.toFixed(4)));
    row.appendChild(element("td", "p", n.probability.toFixed(4)));
    body.appendChild(row);
  }
  document.getElementById("continuation").textContent = view.continuation;
  renderEdits();
  renderLatents();
}

function addEdit(edit) {
  state.edits = state.edits.filter(e => !(e.site === edit.site && e.latent === edit.latent));
  state.edits.push(edit);
  writeHash();
  run();
}

async function run() {
  const error = document.getElementById("error");
  error.textContent = "";
  document.body.dataset.state = "running";
  try {
    const response = await fetch("/api/view", {method: "POST",
        body: JSON.stringify({prompt: state.prompt, edits: state.edits})});
    const body = await response.json();
    if (!response.ok) throw new Error(body.error || response.statusText);
    state.view = body;
    if (state.selected < 0 || state.selected >= body.tokens.length) {
      state.selected = body.tokens.length - 1;
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
  state.selected = -1;
  writeHash();
  run();
};
readHash();
document.getElementById("prompt").value = state.prompt;
if (state.prompt) run();
</script>
</body></html>
)HTML");
  return *kPage;
}

}  // namespace saelab
