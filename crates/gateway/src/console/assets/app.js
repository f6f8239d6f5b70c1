// Peregrine's console: plain JavaScript, no framework, nothing fetched from elsewhere.
// Alert text is only ever set with textContent: it is data, never markup.
"use strict";

const PRIORITIES = ["Emergency", "Alert", "Critical", "Error", "Warning", "Notice", "Informational", "Debug"];
const MAX_ROWS = 500;
const state = { user: null, role: null, csrf: null, events: null, outputsTimer: null, lastSent: {}, lastAt: null, next: null, deadOutput: null };

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function say(message, isError) {
  const s = $("status");
  s.textContent = message || "";
  s.className = isError ? "error" : "";
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.method === "POST") {
    opts.headers["content-type"] = "application/json";
    if (state.csrf) opts.headers["x-csrf-token"] = state.csrf;
  }
  const response = await fetch("api/" + path, opts);
  let body = null;
  try { body = await response.json(); } catch (_) { body = {}; }
  if (response.status === 401 && path !== "login") {
    signedOut();
    throw new Error(body.error || "sign in first");
  }
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

function show(page) {
  for (const section of document.querySelectorAll("main > section")) section.hidden = section.id !== "page-" + page;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.id === "nav-" + page) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
}

function signedIn(who) {
  state.user = who.user; state.role = who.role; state.csrf = who.csrf_token;
  $("nav").hidden = false; $("logout").hidden = false; $("who").hidden = false;
  $("who").textContent = who.user + " (" + who.role + ")";
  route();
}

function signedOut() {
  state.user = null; state.csrf = null;
  stopLive(); stopOutputs();
  $("nav").hidden = true; $("logout").hidden = true; $("who").hidden = true;
  show("login");
  $("login-name").focus();
}

// ---- Alerts -------------------------------------------------------------------------------

function filterParams() {
  const params = new URLSearchParams();
  for (const input of $("filters").querySelectorAll("input, select")) {
    if (input.value.trim() !== "") params.set(input.name, input.value.trim());
  }
  return params;
}

function alertRow(a) {
  const tr = el("tr", { class: "p-" + a.priority.toLowerCase(), "data-seq": String(a.seq) });
  const link = el("a", { href: "#/alert/" + encodeURIComponent(a.uuid), text: a.rule });
  tr.append(
    el("td", { text: a.time.replace("T", " ").slice(0, 19) }),
    el("td", {}, el("span", { class: "prio", text: a.priority })),
    el("td", {}, link),
    el("td", { text: a.hostname }),
    el("td", { class: "output", text: a.output }));
  return tr;
}

async function loadAlerts(append) {
  const params = filterParams();
  if (append && state.next) params.set("before", state.next);
  try {
    const page = await api("alerts?" + params.toString());
    const body = $("alert-rows");
    if (!append) body.replaceChildren();
    for (const a of page.alerts) body.append(alertRow(a));
    state.next = page.next_before;
    $("more").hidden = !page.next_before;
    say(body.children.length === 0 ? "No alerts match." : "");
  } catch (e) { say(e.message, true); }
}

function startLive() {
  stopLive();
  // `after`: alerts indexed between the list and this stream come first.
  const params = filterParams();
  const newest = $("alert-rows").querySelector("tr");
  params.set("after", newest ? newest.dataset.seq : "-1");
  const source = new EventSource("api/events?" + params.toString());
  source.addEventListener("alert", (m) => {
    const a = JSON.parse(m.data);
    const body = $("alert-rows");
    if (body.querySelector('tr[data-seq="' + a.seq + '"]')) return;
    body.prepend(alertRow(a));
    while (body.children.length > MAX_ROWS) body.lastElementChild.remove();
    say("");
  });
  source.addEventListener("lagged", () => loadAlerts(false));
  source.onopen = () => $("live").classList.add("on");
  source.onerror = () => $("live").classList.remove("on");
  state.events = source;
}

function stopLive() {
  if (state.events) { state.events.close(); state.events = null; }
  $("live").classList.remove("on");
}

// ---- One alert ----------------------------------------------------------------------------

async function loadAlert(uuid) {
  try {
    const found = await api("alerts/" + encodeURIComponent(uuid));
    const a = found.alert;
    $("a-rule").textContent = a.rule + " — " + a.priority;
    $("a-output").textContent = a.output;
    const deliveries = $("a-deliveries");
    deliveries.replaceChildren();
    for (const d of found.deliveries) {
      deliveries.append(el("tr", { class: "state-" + d.state },
        el("td", { text: d.output }), el("td", { text: d.type }),
        el("td", { text: d.state.replace("_", " ") }), el("td", { text: d.detail })));
    }
    const fields = $("a-fields");
    fields.replaceChildren();
    const rows = [["uuid", a.uuid], ["time", a.time], ["priority", a.priority], ["rule", a.rule],
      ["source", a.source], ["hostname", a.hostname || ""], ["tags", (a.tags || []).join(", ")]];
    for (const [k, v] of Object.entries(a.output_fields || {})) rows.push([k, v === null ? "<NA>" : String(v)]);
    for (const [k, v] of rows) fields.append(el("tr", {}, el("th", { scope: "row", text: k }), el("td", { text: v })));
    say(found.test ? "A test alert (POST /test)." : "");
  } catch (e) { say(e.message, true); }
}

// ---- Overview -----------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  return node;
}

function drawSeries(overview, hours) {
  const bucket = overview.bucket_seconds;
  const end = Math.floor(Date.now() / 1000 / bucket) * bucket;
  const start = end - hours * 3600 + bucket;
  const slots = Math.round((end - start) / bucket) + 1;
  const counts = new Map();
  for (const [t, p, n] of overview.series) {
    const key = t + "|" + p;
    counts.set(key, (counts.get(key) || 0) + n);
  }
  const totals = [];
  for (let i = 0; i < slots; i++) {
    let sum = 0;
    for (const p of PRIORITIES) sum += counts.get((start + i * bucket) + "|" + p) || 0;
    totals.push(sum);
  }
  const max = Math.max(1, ...totals);
  const width = 1440, height = 240;
  const chart = svg("svg", { viewBox: "0 0 " + width + " " + height, preserveAspectRatio: "none", role: "img", "aria-label": "Alerts per " + (bucket / 60) + " minutes by priority, most " + max + " in one bar" });
  const w = width / slots;
  for (let i = 0; i < slots; i++) {
    let y = height;
    for (const p of PRIORITIES) {
      const n = counts.get((start + i * bucket) + "|" + p) || 0;
      if (!n) continue;
      const h = (n / max) * height;
      y -= h;
      const bar = svg("rect", { x: i * w, y: y, width: Math.max(1, w - 1), height: h, class: "bar p-" + p.toLowerCase() });
      const title = svg("title", {});
      title.textContent = new Date((start + i * bucket) * 1000).toISOString().slice(11, 16) + " " + p + ": " + n;
      bar.append(title);
      chart.append(bar);
    }
  }
  const label = el("p", { class: "axis", text: "Highest bar: " + max + " alerts; " + overview.total + " alerts in " + hours + " h, oldest on the left." });
  $("o-chart").replaceChildren(chart, label);
  $("o-legend").replaceChildren(...PRIORITIES.map((p) => el("span", { class: "key p-" + p.toLowerCase() }, el("span", { class: "swatch" }), p)));
}

function drawTop(target, pairs) {
  const max = Math.max(1, ...pairs.map((p) => p[1]));
  const list = el("ol", { class: "top" });
  for (const [name, n] of pairs) {
    const bar = el("span", { class: "meter" });
    bar.style.width = Math.round((n / max) * 100) + "%";
    list.append(el("li", {}, el("span", { class: "name", text: name || "(none)" }), el("span", { class: "count", text: String(n) }), bar));
  }
  $(target).replaceChildren(list);
}

async function loadOverview() {
  const hours = Number($("o-hours").value);
  try {
    const found = await api("overview?hours=" + hours);
    drawSeries(found.overview, hours);
    drawTop("o-rules", found.overview.top_rules);
    drawTop("o-hosts", found.overview.top_hosts);
    say("");
  } catch (e) { say(e.message, true); }
}

// ---- Outputs ------------------------------------------------------------------------------

function seconds(s) {
  if (s === null || s === undefined) return "—";
  if (s < 1) return Math.round(s * 1000) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  return Math.round(s / 60) + " min";
}

async function loadOutputs() {
  try {
    const found = await api("outputs");
    const now = Date.now() / 1000;
    const body = $("out-rows");
    body.replaceChildren();
    for (const o of found.outputs) {
      const before = state.lastSent[o.name];
      const rate = before === undefined || !state.lastAt ? "…" : ((o.sent - before) / Math.max(0.001, now - state.lastAt)).toFixed(1);
      state.lastSent[o.name] = o.sent;
      const reasons = o.dead_letters_by_reason.map(([r, n]) => r + " " + n).join(", ");
      const name = el("button", { type: "button", class: "link", text: o.name + " (" + o.type + ")", "aria-label": "Dead letters of " + o.name });
      name.addEventListener("click", () => loadDeadLetters(o.name));
      body.append(el("tr", {},
        el("td", {}, name), el("td", { text: rate }), el("td", { text: seconds(o.mean_latency_seconds) }),
        el("td", { text: String(o.queue_depth) }), el("td", { text: seconds(o.oldest_pending_seconds) }),
        el("td", { text: o.paused_for_seconds === null ? "no" : "for " + seconds(o.paused_for_seconds) }),
        el("td", { text: String(o.retries) }),
        el("td", { text: o.dead_lettered + (reasons ? " (" + reasons + ")" : "") })));
    }
    state.lastAt = now;
  } catch (e) { say(e.message, true); }
}

async function loadDeadLetters(name) {
  state.deadOutput = name;
  try {
    const found = await api("outputs/" + encodeURIComponent(name) + "/dead-letters");
    $("dl").hidden = false;
    $("dl-title").textContent = "Dead letters of " + name + " (" + found.total + ")";
    $("redrive").hidden = state.role !== "operator" || found.total === 0;
    const rows = $("dl-rows");
    rows.replaceChildren();
    for (const d of found.dead_letters) {
      const a = d.alert || {};
      rows.append(el("tr", {}, el("td", { text: d.time }), el("td", { text: d.code + ": " + d.reason }),
        el("td", { text: a.rule || "" }), el("td", {}, el("a", { href: "#/alert/" + encodeURIComponent(a.uuid || ""), text: a.uuid || "" }))));
    }
    $("dl-reasons").textContent = found.total === 0 ? "None." : "";
  } catch (e) { say(e.message, true); }
}

async function redrive() {
  const name = state.deadOutput;
  if (!name || !window.confirm("Put every dead letter of " + name + " back for delivery to " + name + "?")) return;
  try {
    const done = await api("outputs/" + encodeURIComponent(name) + "/redrive", { method: "POST", body: "{}" });
    say("Redrove " + done.redriven + " alert(s) to " + name + " (recorded as " + done.by + ").");
    await loadDeadLetters(name);
    await loadOutputs();
  } catch (e) { say("Redrive refused: " + e.message, true); }
}

function stopOutputs() {
  if (state.outputsTimer) { clearInterval(state.outputsTimer); state.outputsTimer = null; }
}

// ---- Navigation ---------------------------------------------------------------------------

function route() {
  if (!state.user) { signedOut(); return; }
  const hash = location.hash || "#/alerts";
  stopOutputs();
  if (hash.startsWith("#/alert/")) {
    stopLive(); show("alert"); loadAlert(decodeURIComponent(hash.slice(8)));
  } else if (hash === "#/overview") {
    stopLive(); show("overview"); loadOverview();
  } else if (hash === "#/outputs") {
    stopLive(); show("outputs"); loadOutputs();
    state.outputsTimer = setInterval(loadOutputs, 5000);
  } else {
    show("alerts"); loadAlerts(false).then(startLive);
  }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("login-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const who = await api("login", { method: "POST", body: JSON.stringify({ name: $("login-name").value, password: $("login-password").value }) });
      $("login-password").value = "";
      say("");
      signedIn(who);
    } catch (err) { say(err.message, true); }
  });
  $("logout").addEventListener("click", async () => {
    try { await api("logout", { method: "POST", body: "{}" }); } catch (_) { /* signed out either way */ }
    signedOut();
  });
  $("filters").addEventListener("submit", (e) => { e.preventDefault(); loadAlerts(false).then(startLive); });
  $("more").addEventListener("click", () => loadAlerts(true));
  $("o-hours").addEventListener("change", loadOverview);
  $("redrive").addEventListener("click", redrive);
  window.addEventListener("hashchange", route);
  try { signedIn(await api("session")); } catch (_) { signedOut(); }
});
