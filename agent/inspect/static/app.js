// sluice request inspector: the live list (Server-Sent Events), filters,
// the detail view, replay, edit-and-replay and "Copy as curl". Everything
// captured is inserted as text, never as HTML.
"use strict";

const $ = (sel) => document.querySelector(sel);
let selected = null;   // id of the entry shown in the detail pane
let current = null;    // its Detail, as last fetched
let revealed = false;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k.startsWith("data-")) e.setAttribute(k, v); else e[k] = v;
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

function size(n) {
  if (n < 1024) return n + " B";
  if (n < 1 << 20) return (n / 1024).toFixed(1) + " KiB";
  return (n / (1 << 20)).toFixed(1) + " MiB";
}

function filterQuery() {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData($("#filters"))) if (v.trim() !== "") q.set(k, v.trim());
  return q;
}

const filtering = () => [...filterQuery().keys()].length > 0;

function row(s) {
  const path = el("td", { class: "path", title: s.path }, s.path);
  if (s.replay) path.append(el("span", { class: "badge replay", title: "replay of #" + s.replay_of }, "replay"));
  if (s.error) path.append(el("span", { class: "badge", title: s.error }, "error"));
  if (s.refused_by) path.append(el("span", { class: "badge", title: s.refused_by }, "refused at edge"));
  const tr = el("tr", { class: "req", "data-id": s.id },
    el("td", {}, new Date(s.time).toLocaleTimeString()),
    el("td", { class: "method" }, s.method),
    path,
    el("td", { class: "status s" + Math.floor(s.status / 100) }, s.status || "—"),
    el("td", {}, s.duration_ms.toFixed(1) + " ms"),
    el("td", {}, size(Math.max(s.req_size, s.resp_size))));
  if (s.id === selected) tr.classList.add("selected");
  tr.addEventListener("click", () => show(s.id));
  return tr;
}

function setRows(list) {
  const body = $("#rows");
  body.replaceChildren();
  if (list.length === 0) {
    body.append(el("tr", { class: "empty" }, el("td", { colSpan: 6 }, filtering() ? "No request matches the filters." : "No requests yet: send one through the tunnel and it appears here.")));
    return;
  }
  for (const s of list) body.append(row(s));
}

async function api(path, opts) {
  const r = await fetch(path, Object.assign({ credentials: "same-origin" }, opts));
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(body.error || r.status + " " + r.statusText);
  return body;
}

let reloadTimer = null;
async function reload() {
  clearTimeout(reloadTimer);
  reloadTimer = null;
  try {
    const data = await api("/api/requests?" + filterQuery());
    $("#filter-error").textContent = "";
    setRows(data.requests);
  } catch (e) {
    $("#filter-error").textContent = e.message;
  }
}
const reloadSoon = () => { if (!reloadTimer) reloadTimer = setTimeout(reload, 150); };

function connect() {
  const es = new EventSource("/api/events");
  const live = $("#live");
  es.onopen = () => { live.textContent = "live"; live.classList.remove("off"); reload(); };
  es.onerror = () => { live.textContent = "reconnecting…"; live.classList.add("off"); };
  es.addEventListener("request", (ev) => {
    const s = JSON.parse(ev.data);
    if (filtering()) { reloadSoon(); return; }
    const body = $("#rows");
    if (body.querySelector(`tr[data-id="${s.id}"]`)) return; // the reload on open had it
    const empty = body.querySelector("tr.empty");
    if (empty) empty.remove();
    body.prepend(row(s));
    while (body.children.length > 1000) body.lastChild.remove();
  });
}

function headerTable(headers) {
  const t = el("table", { class: "headers" });
  for (const [k, v] of headers) {
    const masked = v.startsWith("••••••");
    t.append(el("tr", {}, el("td", { class: "k" }, k), el("td", { class: masked ? "masked" : "" }, v)));
  }
  if (headers.length === 0) t.append(el("tr", {}, el("td", { class: "k" }, "(no headers)")));
  return t;
}

function bodyView(b) {
  const box = el("div", { class: "body-view" });
  const meta = el("div", { class: "meta" }, b.kind === "empty" ? "no body" :
    size(b.size) + (b.content_type ? " · " + b.content_type : "") + (b.truncated ? " · only the first " + size(b.captured) + " kept" : ""));
  box.append(meta);
  if (b.kind === "empty") return box;
  const views = [];
  if (b.pretty) views.push(["Pretty", b.pretty]);
  if (b.form) views.push(["Form", b.form.map(([k, v]) => k + " = " + v).join("\n")]);
  if (b.text !== undefined && b.text !== "") views.push(["Raw", b.text]);
  if (b.hex) views.push(["Hex", b.hex]);
  const pre = el("pre", { class: "body" });
  const tabs = el("div", { class: "tabs" });
  views.forEach(([name, text], i) => {
    const btn = el("button", { type: "button", class: i === 0 ? "on" : "" }, name);
    btn.addEventListener("click", () => {
      tabs.querySelectorAll("button").forEach((x) => x.classList.remove("on"));
      btn.classList.add("on");
      pre.textContent = text;
    });
    tabs.append(btn);
  });
  if (b.kind === "binary") meta.append(" · binary, hex preview of the first bytes");
  if (views.length) pre.textContent = views[0][1];
  box.append(tabs, pre);
  return box;
}

async function show(id) {
  selected = id;
  document.querySelectorAll("#rows tr.selected").forEach((r) => r.classList.remove("selected"));
  const r = document.querySelector(`#rows tr[data-id="${id}"]`);
  if (r) r.classList.add("selected");
  try {
    current = await api(`/api/requests/${id}` + (revealed ? "?reveal=1" : ""));
  } catch (e) {
    $("#action-msg").textContent = e.message;
    return;
  }
  const d = current;
  $("#detail").classList.remove("hidden");
  $("#editor").classList.add("hidden");
  $("#curl-text").classList.add("hidden");
  $("#action-msg").textContent = "";
  $("#reveal").textContent = revealed ? "Hide sensitive headers" : "Reveal hidden headers";
  const head = $("#detail-head");
  head.replaceChildren(el("strong", {}, `#${d.id} ${d.method} ${d.path}`), " → ",
    el("span", { class: "status s" + Math.floor(d.status / 100) }, d.status || "no response"),
    el("div", { class: "meta" }, `${d.host} · ${d.proto} · from ${d.remote_addr} · ${d.duration_ms.toFixed(1)} ms · ${new Date(d.time).toLocaleString()}` +
      (d.replay ? ` · replay of #${d.replay_of}` : "") + (d.error ? " · " + d.error : "") +
      (d.refused_by ? " · refused at the edge by " + d.refused_by : "")));
  $("#req").replaceChildren(headerTable(d.request.headers), bodyView(d.request.body));
  $("#resp").replaceChildren(headerTable(d.response.headers), bodyView(d.response.body));
}

async function replay(mod) {
  const msg = $("#action-msg");
  msg.textContent = "replaying…";
  try {
    const s = await api(`/api/requests/${selected}/replay`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(mod || {}),
    });
    msg.textContent = `sent as #${s.id}: ${s.status || "no response"}`;
  } catch (e) {
    msg.textContent = e.message;
  }
}

function openEditor() {
  const f = $("#editor");
  const d = current;
  f.method.value = d.method;
  f.path.value = d.path;
  f.headers.value = d.request.headers.map(([k, v]) => k + ": " + v).join("\n");
  const b = d.request.body;
  f.body.value = b.text || "";
  f.body.disabled = b.kind === "binary";
  f.body.placeholder = b.kind === "binary" ? "binary body: sent unchanged" : "";
  f.classList.remove("hidden");
}

function submitEditor(ev) {
  ev.preventDefault();
  const f = $("#editor");
  const headers = f.headers.value.split("\n").map((l) => l.trim()).filter(Boolean).map((l) => {
    const i = l.indexOf(":");
    return i < 0 ? [l, ""] : [l.slice(0, i).trim(), l.slice(i + 1).trim()];
  });
  const mod = { method: f.method.value, path: f.path.value, headers };
  if (!f.body.disabled) mod.body = f.body.value;
  f.classList.add("hidden");
  replay(mod);
}

async function copyCurl() {
  const msg = $("#action-msg");
  try {
    const d = await api(`/api/requests/${selected}?reveal=1`);
    const ta = $("#curl-text");
    ta.value = d.curl;
    ta.classList.remove("hidden");
    try {
      await navigator.clipboard.writeText(d.curl);
      msg.textContent = "curl command copied";
    } catch (_) {
      ta.select();
      msg.textContent = "select and copy the command below";
    }
  } catch (e) {
    msg.textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#filters").addEventListener("input", reloadSoon);
  $("#filters").addEventListener("reset", () => setTimeout(reload, 0));
  $("#filters").addEventListener("submit", (ev) => { ev.preventDefault(); reload(); });
  $("#replay").addEventListener("click", () => replay(null));
  $("#edit").addEventListener("click", openEditor);
  $("#edit-cancel").addEventListener("click", () => $("#editor").classList.add("hidden"));
  $("#editor").addEventListener("submit", submitEditor);
  $("#curl").addEventListener("click", copyCurl);
  $("#reveal").addEventListener("click", () => { revealed = !revealed; show(selected); });
  reload();
  connect();
});
