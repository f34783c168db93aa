// The pairgate dashboard. No framework, no CDN: this file and the gateway.
//
// Log in (the admin token, or an admin account: POST /_pairgate/login) for a
// bearer kept in this tab's sessionStorage; then one event stream
// (GET /_pairgate/events, Server-Sent Events read with fetch so the bearer
// travels in a header, never in a URL) brings `status` and `timeline` events;
// it reconnects by itself. Admin actions are POSTs after a confirmation.
"use strict";

const $ = (sel, root = document) => root.querySelector(sel);
const KEY = "pairgate-dashboard";
let bearer = sessionStorage.getItem(KEY);
let stream = null; // the AbortController of the open event stream
let last = null; // the last status
const seen = new Set(); // timeline ids shown

function show(loggedIn) {
  $("#login").hidden = loggedIn;
  $("#board").hidden = !loggedIn;
  $("#logout").hidden = !loggedIn;
  if (!loggedIn) {
    $("#who").textContent = "";
    setLive(false, "offline");
    $("#health").textContent = "not logged in";
    $("#health").className = "health";
  }
}

function setLive(on, text) {
  const el = $("#live");
  el.textContent = text;
  el.className = "live " + (on ? "on" : "off");
}

async function call(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (bearer) headers.Authorization = "Bearer " + bearer;
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (_) { /* no body */ }
  return { status: r.status, data };
}

function errorText(r) {
  const e = r.data && r.data.error;
  return e ? `${r.status} ${e.code}: ${e.message}` : `HTTP ${r.status}`;
}

async function login(body) {
  $("#login-error").textContent = "";
  bearer = null;
  let r;
  try {
    r = await call("POST", "/_pairgate/login", body);
  } catch (e) {
    $("#login-error").textContent = "the gateway cannot be reached: " + e;
    return;
  }
  if (r.status !== 200 || !r.data || !r.data.token) {
    $("#login-error").textContent = errorText(r);
    return;
  }
  bearer = r.data.token;
  sessionStorage.setItem(KEY, bearer);
  sessionStorage.setItem(KEY + "-who", r.data.who);
  start();
}

function start() {
  show(true);
  $("#who").textContent = sessionStorage.getItem(KEY + "-who") || "";
  connect(0);
}

async function logout() {
  if (stream) stream.abort();
  stream = null;
  try { await call("POST", "/_pairgate/logout"); } catch (_) { /* gone anyway */ }
  bearer = null;
  sessionStorage.removeItem(KEY);
  sessionStorage.removeItem(KEY + "-who");
  show(false);
}

// The event stream: parse `event:`/`data:` blocks as they arrive.
async function connect(attempt) {
  if (!bearer) return;
  if (stream) stream.abort();
  const ctl = new AbortController();
  stream = ctl;
  let r;
  try {
    r = await fetch("/_pairgate/events", { headers: { Authorization: "Bearer " + bearer, Accept: "text/event-stream" }, signal: ctl.signal });
  } catch (e) {
    return retry(ctl, attempt, "the gateway cannot be reached");
  }
  if (r.status === 401 || r.status === 403) {
    let data = null;
    try { data = await r.json(); } catch (_) { /* none */ }
    await logout();
    $("#login-error").textContent = errorText({ status: r.status, data }) + " — log in again";
    return;
  }
  if (r.status !== 200 || !r.body) return retry(ctl, attempt, `HTTP ${r.status}`);
  setLive(true, "live");
  const reader = r.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        dispatch(buf.slice(0, cut));
        buf = buf.slice(cut + 2);
      }
    }
  } catch (_) { /* cut: reconnect */ }
  retry(ctl, 0, "the stream ended");
}

function retry(ctl, attempt, why) {
  if (stream !== ctl || !bearer) return; // logged out, or replaced
  setLive(false, "reconnecting (" + why + ")");
  const wait = Math.min(5000, 500 * (attempt + 1));
  setTimeout(() => { if (stream === ctl) connect(attempt + 1); }, wait);
}

function dispatch(block) {
  let kind = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
  }
  if (!data.length) return; // a keep-alive comment
  let v;
  try { v = JSON.parse(data.join("\n")); } catch (_) { return; }
  if (kind === "status") render(v);
  else if (kind === "timeline") addEvent(v);
}

function text(el, t) {
  if (el.textContent !== String(t)) el.textContent = t;
}

function bytes(n) {
  if (n == null) return "–";
  if (n < 1024) return n + " B";
  if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
  return (n / 1048576).toFixed(1) + " MiB";
}

// A chassis' last verified point: the seq, and a short form of what was compared.
function verified(v) {
  if (v == null) return "never";
  const rest = Object.entries(v).filter(([k]) => k !== "seq")
    .map(([k, x]) => `${k} ${typeof x === "string" && x.length > 16 ? x.slice(0, 12) + "…" : JSON.stringify(x)}`);
  return [`seq ${v.seq}`, ...rest].join(", ");
}

function render(s) {
  last = s;
  text($("#primary"), s.primary || "none");
  text($("#pairing"), s.pairing + (s.pairing_blocked ? " — " + s.pairing_blocked : ""));
  text($("#last-seq"), s.last_seq);
  text($("#journal"), `${s.journal_depth} entries, ${bytes(s.journal_disk_bytes)}`);
  text($("#sessions"), s.sessions);
  text($("#failovers"), s.failovers);
  text($("#divergences"), s.divergences);
  const certs = s.certificates || [];
  const expiring = certs.filter((c) => c.expiring);
  const certsEl = $("#certs");
  const problems = (s.certificate_problems || []).length;
  const own = certs.find((c) => c.role === "gateway");
  text(certsEl, [
    certs.length ? (expiring.length ? `${expiring.length} expiring within 30 days` : `${certs.length} valid`) : "none read",
    own ? `gateway's until ${own.not_after.slice(0, 10)}` : null,
    problems ? `${problems} unreadable` : null,
  ].filter(Boolean).join(", "));
  certsEl.className = "v" + (expiring.length || problems ? " warn" : "");
  certsEl.title = certs.map((c) => `${c.role}: ${c.subject}, until ${c.not_after} (${c.days_left} days)`).join("\n");

  const inSync = s.chassis.filter((c) => c.state === "in_sync").length;
  const health = $("#health");
  if (!s.primary) { health.textContent = "no chassis in sync: the pair cannot serve"; health.className = "health bad"; }
  else if (inSync < s.chassis.length) { health.textContent = `degraded: ${inSync} of ${s.chassis.length} chassis in sync`; health.className = "health warn"; }
  else if (s.pairing_blocked) { health.textContent = "blocked: " + s.pairing_blocked; health.className = "health bad"; }
  else { health.textContent = "healthy: both chassis in sync"; health.className = "health ok"; }

  const r = s.resync;
  const rs = $("#resync");
  rs.hidden = !r || r.phase === "done";
  if (r && r.phase !== "done") {
    const total = r.bytes_total ? ` of ${bytes(r.bytes_total)}` : "";
    text(rs, `resync of ${r.chassis} from ${r.source}: ${r.phase}, ${bytes(r.bytes)}${total}, attempt ${r.attempt}`);
  }

  const row = $("#chassis");
  for (const c of s.chassis) {
    let card = row.querySelector(`section.chassis[data-name="${CSS.escape(c.name)}"]`);
    if (!card) {
      card = $("#chassis-card").content.firstElementChild.cloneNode(true);
      card.dataset.name = c.name;
      text($(".name", card), "chassis " + c.name);
      $(".act-primary", card).addEventListener("click", () => act(`/_pairgate/primary/${encodeURIComponent(c.name)}`, undefined,
        `Make chassis ${c.name} the primary? Reads and the event stream move to it.`));
      $(".act-resync", card).addEventListener("click", () => act(`/_pairgate/resync/${encodeURIComponent(c.name)}`, undefined,
        `Rebuild chassis ${c.name} from the other one? Its whole configuration is replaced (export, import, replay, verify).`));
      $(".act-maint", card).addEventListener("click", () => {
        const on = !(last && (last.chassis.find((x) => x.name === c.name) || {}).maintenance);
        act(`/_pairgate/maintenance/${encodeURIComponent(c.name)}`, { on },
          on ? `Take chassis ${c.name} out for maintenance? Nothing is sent to it until it is given back.`
            : `Bring chassis ${c.name} back from maintenance? It catches up and is verified before it serves.`);
      });
      row.appendChild(card);
    }
    const st = $(".state", card);
    text(st, c.maintenance ? "maintenance" : c.state);
    st.className = "state " + c.state;
    const primary = s.primary === c.name;
    $(".primary-badge", card).hidden = !primary;
    card.classList.toggle("is-primary", primary);
    text($(".url", card), c.url);
    text($(".applied", card), c.applied_seq ?? "–");
    text($(".lag", card), c.lag == null ? "–" : c.lag + (c.lag === 1 ? " entry" : " entries"));
    text($(".verified", card), verified(c.verified));
    const fw = c.firmware;
    text($(".firmware", card), fw ? (fw.features.join(", ") || "no extras") + ` (${fw.source})` + (fw.unsupported ? " — " + fw.unsupported : "") : "not known yet");
    text($(".ids", card), fw ? `${fw.modes.ids}, replay ${fw.modes.replay}, compare ${fw.modes.compare}, rebuild ${fw.modes.rebuild}` : "–");
    text($(".resyncs", card), `${c.resyncs} done, ${c.resyncs_failed} failed`);
    text($(".service", card), c.service_login.code === "ok" ? "ok" : c.service_login.message);
    const cert = certs.find((x) => x.chassis === c.name);
    const certEl = $(".cert", card);
    text(certEl, cert ? `expires ${cert.not_after.slice(0, 10)} (${cert.days_left} days)` : "–");
    certEl.className = "cert" + (cert && cert.expiring ? " warn" : "");
    text($(".last-error", card), c.last_error || "none");
    $(".act-primary", card).disabled = primary || c.state !== "in_sync";
    text($(".act-maint", card), c.maintenance ? "End maintenance" : "Maintenance");
  }
}

function addEvent(e) {
  if (seen.has(e.id)) return;
  seen.add(e.id);
  const li = document.createElement("li");
  li.dataset.kind = e.kind;
  li.dataset.id = e.id;
  const t = document.createElement("span");
  t.className = "t";
  t.textContent = new Date(e.at_ms).toLocaleTimeString();
  const k = document.createElement("span");
  k.className = "kind";
  k.textContent = e.kind;
  const x = document.createElement("span");
  x.className = "text";
  x.textContent = e.text;
  li.append(t, k, x);
  const list = $("#timeline");
  // Newest first; ids only grow, so the right place is before the first smaller id.
  let before = null;
  for (const other of list.children) {
    if (Number(other.dataset.id) < e.id) { before = other; break; }
  }
  list.insertBefore(li, before);
  while (list.children.length > 500) list.lastElementChild.remove();
}

// An admin action, after the operator confirms it in the dialog.
function act(path, body, question) {
  const dlg = $("#confirm");
  text($("#confirm-text"), question);
  dlg.returnValue = "";
  dlg.onclose = async () => {
    if (dlg.returnValue !== "yes") return;
    const out = $("#action-result");
    out.className = "result";
    out.textContent = "…";
    try {
      const r = await call("POST", path, body === undefined ? {} : body);
      if (r.status >= 200 && r.status < 300) {
        out.textContent = "done: " + JSON.stringify(r.data);
      } else {
        out.className = "result error";
        out.textContent = errorText(r);
      }
    } catch (e) {
      out.className = "result error";
      out.textContent = "the gateway cannot be reached: " + e;
    }
  };
  dlg.showModal();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#login-token-form").addEventListener("submit", (ev) => { ev.preventDefault(); login({ token: $("#token").value }); });
  $("#login-account-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    login({ username: $("#username").value, password: $("#password").value });
  });
  $("#logout").addEventListener("click", logout);
  $("#act-reload").addEventListener("click", () => act("/_pairgate/reload", undefined,
    "Read gateway.toml and the certificates again? A file that does not pass check-config is refused and nothing changes."));
  if (bearer) start(); else show(false);
});
