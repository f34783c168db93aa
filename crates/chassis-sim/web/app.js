// Chassis operator web client.
//
// Plain JavaScript, no build step. Every URL is relative (no leading slash), so
// the page works unchanged when served by a chassis or through the gateway.
'use strict';

const API = 'api/v1/';
const TOKEN_KEY = 'chassis.token';
const USER_KEY = 'chassis.user';
const WALL_KEY = 'chassis.wall';
const TAB_KEY = 'chassis.tab';

const $ = (sel) => document.querySelector(sel);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'),
  wallId: Number(sessionStorage.getItem(WALL_KEY)) || null,
  walls: [], sources: [], windows: [], scenes: [], matrix: [],
  // Configuration lists: each {data: [...]} or {data: [], error} when the
  // chassis refused the read (older firmware may lack a resource).
  plans: { data: [] }, schedules: { data: [] }, hosts: { data: [] }, seats: { data: [] },
  users: { data: [] },
  info: null,            // GET system/info, when the chassis has it
  tab: sessionStorage.getItem(TAB_KEY) || 'operate',
  selected: null,        // id of the selected window
  drag: null,            // the active pointer drag, if any
  scale: 1,              // CSS px per wall pixel
  refreshPending: false, // an event arrived during a drag
};

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (state.token) headers.Authorization = 'Bearer ' + state.token;
  let resp;
  try {
    resp = await fetch(API + path, {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    throw new ApiError(0, 'unreachable', 'The chassis did not answer (' + e.message + ').');
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    const e = new ApiError(resp.status, err.code || 'http_' + resp.status,
      err.message || `${resp.status} ${resp.statusText}`);
    if (resp.status === 401 && path !== 'login') sessionLost(e.message);
    throw e;
  }
  return data;
}

// ---------------------------------------------------------------- status bar

function setStatus(text, kind) {
  const bar = $('#status');
  bar.textContent = text;
  bar.className = 'status ' + (kind || '');
}

// One line for a refusal: "409 output_in_use: output 3 already drives …".
function errText(e) {
  if (e.code === 'not_sent') return e.message;
  if (!e.status) return `${e.message} (${e.code})`;
  return `${e.status} ${e.code}: ${e.message}`;
}

function fail(e) {
  if (e.status === 401) return; // sessionLost already showed it
  setStatus(errText(e), 'error');
  console.warn('chassis:', e);
}

// Run one operator action; on success say so and refresh.
async function act(done, fn) {
  try {
    const r = await fn();
    setStatus(typeof done === 'function' ? done(r) : done, 'ok');
    scheduleRefresh();
  } catch (e) {
    fail(e);
  }
}

// ---------------------------------------------------------------- login

function showLoginError(msg) {
  const p = $('#login-error');
  p.textContent = msg || '';
  p.hidden = !msg;
}

function showForce(on) {
  $('#force-btn').hidden = !on;
  $('#force-hint').hidden = !on;
}

async function login(force) {
  const username = $('#username').value.trim();
  const password = $('#password').value;
  showLoginError('');
  state.token = null;
  try {
    const r = await api('POST', 'login', { username, password, force });
    state.token = r.token;
    state.user = r.user;
    sessionStorage.setItem(TOKEN_KEY, r.token);
    sessionStorage.setItem(USER_KEY, JSON.stringify(r.user));
    $('#password').value = '';
    showForce(false);
    setStatus(`Logged in as ${r.user.username} (${r.user.role}).`, 'ok');
    enterMain();
  } catch (e) {
    showForce(e.code === 'already_logged_in');
    showLoginError(e.message);
  }
}

function showLogin(msg) {
  state.token = null;
  state.drag = null;
  sessionStorage.removeItem(TOKEN_KEY);
  sessionStorage.removeItem(USER_KEY);
  closeSocket();
  $('#main-view').hidden = true;
  $('#logout-btn').hidden = true;
  $('#user-info').textContent = '';
  $('#login-view').hidden = false;
  delete document.body.dataset.role;
  closeEditors();
  showForce(false);
  showLoginError(msg);
  $(state.user ? '#password' : '#username').focus();
}

// Any 401: the session is gone (expired, preempted, logged out elsewhere).
function sessionLost(msg) {
  if (!state.token) return;
  setStatus(msg, 'error');
  showLogin(msg);
  if (state.user) $('#username').value = state.user.username;
}

function enterMain() {
  $('#login-view').hidden = true;
  $('#main-view').hidden = false;
  $('#logout-btn').hidden = false;
  $('#user-info').textContent = state.user ? `${state.user.username} · ${state.user.role}` : '';
  document.body.dataset.role = state.user ? state.user.role : 'viewer';
  setTab(state.tab);
  connectSocket();
  loadInfo();
  refresh();
}

async function logout() {
  try { await api('POST', 'logout'); } catch { /* going to the login form anyway */ }
  showLogin('');
  setStatus('Logged out.', 'ok');
}

// ---------------------------------------------------------------- data

let refreshSeq = 0;
let refreshTimer = null;

// Coalesce bursts of events into one refresh ~100 ms later.
function scheduleRefresh() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(refresh, 100);
}

async function refresh() {
  if (!state.token) return;
  if (state.drag) { state.refreshPending = true; return; }
  const seq = ++refreshSeq;
  try {
    const [walls, sources, matrix, plans, schedules, hosts, seats, users] = await Promise.all([
      api('GET', 'walls'), api('GET', 'sources'), api('GET', 'matrix'),
      soft('plans'), soft('schedules'), soft('kvm/hosts'), soft('kvm/seats'),
      isAdmin() ? soft('users') : Promise.resolve({ data: [] }),
    ]);
    let wallId = state.wallId;
    if (!walls.some((w) => w.id === wallId)) wallId = walls.length ? walls[0].id : null;
    let windows = [], scenes = [];
    if (wallId != null) {
      [windows, scenes] = await Promise.all([
        api('GET', `walls/${wallId}/windows`), api('GET', `walls/${wallId}/scenes`),
      ]);
    }
    if (seq !== refreshSeq) return;                          // a newer refresh runs
    if (state.drag) { state.refreshPending = true; return; } // never under a drag
    Object.assign(state, { walls, sources, matrix, windows, scenes, wallId });
    Object.assign(state, { plans, schedules, hosts, seats, users });
    render();
  } catch (e) {
    fail(e);
  }
}

// A list read that may fail without failing the whole refresh (401 still ends it).
async function soft(path) {
  try {
    const data = await api('GET', path);
    return { data: Array.isArray(data) ? data : [] };
  } catch (e) {
    if (e.status === 401) throw e;
    return { data: [], error: e };
  }
}

// Port counts come from system/info; older firmware lacks it (then guessed).
async function loadInfo() {
  try {
    state.info = await api('GET', 'system/info');
  } catch (e) {
    state.info = null;
  }
  renderConfig();
}

const isAdmin = () => !!state.user && state.user.role === 'admin';
const isViewer = () => !state.user || state.user.role === 'viewer';

const currentWall = () => state.walls.find((w) => w.id === state.wallId) || null;
const sourceName = (id) => {
  const s = state.sources.find((x) => x.id === id);
  return s ? s.name : `source ${id}`;
};
const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), Math.max(lo, hi));

// ---------------------------------------------------------------- rendering

function render() {
  renderWallSelect();
  renderSources();
  renderWall();
  renderSelected();
  renderScenes();
  renderMatrix();
  renderConfig();
}

// Rebuild a container only when what it shows changed (keeps open selects open).
function changed(el, value) {
  const key = JSON.stringify(value);
  if (el.dataset.key === key) return false;
  el.dataset.key = key;
  return true;
}

function option(value, label, selected) {
  const o = document.createElement('option');
  o.value = value;
  o.textContent = label;
  o.selected = !!selected;
  return o;
}

function renderWallSelect() {
  const sel = $('#wall-select');
  if (changed(sel, state.walls.map((w) => [w.id, w.name]))) {
    sel.replaceChildren(...state.walls.map((w) => option(w.id, `${w.id} · ${w.name}`)));
  }
  sel.value = state.wallId == null ? '' : String(state.wallId);
  const wall = currentWall();
  $('#wall-info').textContent = wall
    ? `${wall.cols}×${wall.rows} screens of ${wall.screen_width}×${wall.screen_height}, ` +
      `${state.windows.length} window(s)`
    : 'No walls on this chassis.' + (isAdmin() ? ' Create one under Walls.' : '');
}

function renderSources() {
  const sel = $('#source-select');
  const keep = sel.value;
  if (changed(sel, state.sources.map((s) => [s.id, s.name, s.kind]))) {
    sel.replaceChildren(...state.sources.map((s) =>
      option(s.id, `${s.id} · ${s.name} (${s.kind})`)));
    if (state.sources.some((s) => String(s.id) === keep)) sel.value = keep;
  }
}

const winEls = new Map(); // window id -> its div

function placeEl(el, r) {
  const s = state.scale;
  el.style.left = `${r.x * s}px`;
  el.style.top = `${r.y * s}px`;
  el.style.width = `${Math.max(r.w * s, 2)}px`;
  el.style.height = `${Math.max(r.h * s, 2)}px`;
}

function windowEl(id) {
  let el = winEls.get(id);
  if (el) return el;
  el = document.createElement('div');
  el.className = 'window';
  el.dataset.id = String(id);
  const title = document.createElement('span');
  title.className = 'title';
  const wid = document.createElement('span');
  wid.className = 'wid';
  const handle = document.createElement('div');
  handle.className = 'resize-handle';
  handle.title = 'drag to resize';
  el.append(title, wid, handle);
  el.addEventListener('pointerdown', onPointerDown);
  el.addEventListener('pointermove', onPointerMove);
  el.addEventListener('pointerup', onPointerUp);
  el.addEventListener('pointercancel', onPointerUp);
  winEls.set(id, el);
  $('#wall').appendChild(el);
  return el;
}

function renderWall() {
  const box = $('#wall');
  const wall = currentWall();
  if (!wall) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  const W = wall.cols * wall.screen_width;
  const H = wall.rows * wall.screen_height;
  const frame = $('#wall-frame');
  const availW = Math.max(frame.clientWidth - 4, 200);
  const availH = Math.max(frame.clientHeight - 4, 150);
  state.scale = Math.min(availW / W, availH / H);
  box.style.width = `${W * state.scale}px`;
  box.style.height = `${H * state.scale}px`;
  box.dataset.wallId = String(wall.id);
  box.dataset.width = String(W);
  box.dataset.height = String(H);

  // The screen grid: one cell per screen, labelled with its output port.
  box.querySelectorAll('.screen').forEach((n) => n.remove());
  const screens = wall.screens && wall.screens.length ? wall.screens
    : Array.from({ length: wall.rows * wall.cols },
      (_, i) => ({ row: Math.floor(i / wall.cols), col: i % wall.cols, output: null }));
  for (const sc of screens) {
    const d = document.createElement('div');
    d.className = 'screen';
    placeEl(d, { x: sc.col * wall.screen_width, y: sc.row * wall.screen_height,
      w: wall.screen_width, h: wall.screen_height });
    d.textContent = sc.output != null ? `out ${sc.output}` : '';
    box.prepend(d);
  }

  // The windows, stacked by z.
  const live = new Set(state.windows.map((w) => w.id));
  for (const [id, el] of winEls) {
    if (!live.has(id)) { el.remove(); winEls.delete(id); }
  }
  const byZ = [...state.windows].sort((a, b) => a.z - b.z || a.id - b.id);
  byZ.forEach((w, i) => {
    const el = windowEl(w.id);
    placeEl(el, w);
    el.style.zIndex = String(i + 1);
    el.dataset.z = String(w.z);
    el.querySelector('.title').textContent = sourceName(w.source_id);
    el.querySelector('.wid').textContent = `#${w.id}  ${w.w}×${w.h}`;
    el.classList.toggle('selected', w.id === state.selected);
  });
}

function renderSelected() {
  const w = state.windows.find((x) => x.id === state.selected);
  if (!w) state.selected = null;
  for (const b of ['#raise-btn', '#close-btn', '#switch-btn']) $(b).disabled = !w;
  $('#selected-info').textContent = w
    ? `#${w.id} · ${sourceName(w.source_id)} · ${w.w}×${w.h} at (${w.x}, ${w.y}) · z ${w.z}`
    : 'None: click a window.';
  for (const [id, el] of winEls) el.classList.toggle('selected', id === state.selected);
}

function renderScenes() {
  const ul = $('#scene-list');
  if (!changed(ul, state.scenes.map((s) => [s.id, s.name, (s.items || []).length]))) return;
  ul.replaceChildren(...state.scenes.map((s) => {
    const li = document.createElement('li');
    li.dataset.id = String(s.id);
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = s.name;
    const meta = document.createElement('span');
    meta.className = 'meta';
    meta.textContent = `${(s.items || []).length} win`;
    const recall = document.createElement('button');
    recall.type = 'button';
    recall.className = 'recall-btn';
    recall.textContent = 'Recall';
    recall.addEventListener('click', () => act(
      (r) => `Scene "${s.name}" recalled: ${r && r.windows ? r.windows.length : 0} window(s).`,
      () => api('POST', `scenes/${s.id}/recall`)));
    const del = document.createElement('button');
    del.type = 'button';
    del.className = 'danger';
    del.textContent = '×';
    del.title = 'delete scene';
    del.addEventListener('click', () => act(`Scene "${s.name}" deleted.`,
      () => api('DELETE', `scenes/${s.id}`)));
    li.append(name, meta, recall, del);
    return li;
  }));
}

// Inputs a route can take: the physical sources' ports (else ports 1..16).
function matrixInputs() {
  const phys = state.sources
    .filter((s) => s.kind !== 'ip' && s.kind !== 'cascade' && s.port != null)
    .sort((a, b) => a.port - b.port);
  if (phys.length) return phys.map((s) => [s.port, `${s.port} · ${s.name}`]);
  return Array.from({ length: 16 }, (_, i) => [i + 1, `input ${i + 1}`]);
}

function renderMatrix() {
  const tbody = $('#matrix tbody');
  const inputs = matrixInputs();
  if (!changed(tbody, [state.matrix, inputs])) return;
  const rows = [...state.matrix].sort((a, b) => a.output - b.output);
  tbody.replaceChildren(...rows.map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.output = String(r.output);
    const th = document.createElement('td');
    th.textContent = `out ${r.output}`;
    const sel = document.createElement('select');
    sel.className = 'route-select';
    sel.dataset.output = String(r.output);
    sel.append(option('', '— none —', r.input == null));
    for (const [port, label] of inputs) sel.append(option(port, label, port === r.input));
    if (r.input != null && !inputs.some(([p]) => p === r.input)) {
      sel.append(option(r.input, `input ${r.input}`, true));
    }
    sel.addEventListener('change', () => {
      const input = sel.value === '' ? null : Number(sel.value);
      act(`Output ${r.output} ← ${input == null ? 'nothing' : 'input ' + input}.`,
        () => api('PUT', `matrix/${r.output}`, { input }));
    });
    const td = document.createElement('td');
    td.append(sel);
    tr.append(th, td);
    return tr;
  }));
}

// ---------------------------------------------------------------- selection and drag

function select(id) {
  state.selected = id;
  renderSelected();
}

function onPointerDown(e) {
  if (e.button !== 0 || state.drag) return;
  const el = e.currentTarget;
  const id = Number(el.dataset.id);
  const win = state.windows.find((w) => w.id === id);
  const wall = currentWall();
  if (!win || !wall) return;
  e.preventDefault();
  e.stopPropagation();
  select(id);
  const orig = { x: win.x, y: win.y, w: win.w, h: win.h };
  state.drag = {
    id, el, wallId: wall.id, pointerId: e.pointerId,
    mode: e.target.classList.contains('resize-handle') ? 'resize' : 'move',
    startX: e.clientX, startY: e.clientY,
    W: wall.cols * wall.screen_width, H: wall.rows * wall.screen_height,
    orig, rect: { ...orig },
  };
  el.setPointerCapture(e.pointerId);
  el.classList.add('dragging');
}

function onPointerMove(e) {
  const d = state.drag;
  if (!d || e.pointerId !== d.pointerId) return;
  const dx = (e.clientX - d.startX) / state.scale;
  const dy = (e.clientY - d.startY) / state.scale;
  const o = d.orig;
  if (d.mode === 'move') {
    d.rect.x = clamp(Math.round(o.x + dx), 0, d.W - o.w);
    d.rect.y = clamp(Math.round(o.y + dy), 0, d.H - o.h);
  } else {
    d.rect.w = clamp(Math.round(o.w + dx), 1, d.W - o.x);
    d.rect.h = clamp(Math.round(o.h + dy), 1, d.H - o.y);
  }
  placeEl(d.el, d.rect);
  const r = d.rect;
  $('#selected-info').textContent = `#${d.id} · ${r.w}×${r.h} at (${r.x}, ${r.y})`;
}

function onPointerUp(e) {
  const d = state.drag;
  if (!d || e.pointerId !== d.pointerId) return;
  state.drag = null;
  d.el.classList.remove('dragging');
  try { d.el.releasePointerCapture(e.pointerId); } catch { /* already released */ }
  const r = d.rect, o = d.orig;
  const moved = r.x !== o.x || r.y !== o.y || r.w !== o.w || r.h !== o.h;
  if (e.type === 'pointercancel' || !moved) {
    placeEl(d.el, o);
    if (state.refreshPending) { state.refreshPending = false; scheduleRefresh(); }
    return;
  }
  // Show the new place until the chassis answers; a refusal snaps back on refresh.
  const win = state.windows.find((w) => w.id === d.id);
  if (win) Object.assign(win, r);
  state.refreshPending = false;
  act(`Window ${d.id} ${d.mode === 'move' ? 'moved' : 'resized'}: ${r.w}×${r.h} at (${r.x}, ${r.y}).`,
    () => api('PUT', `walls/${d.wallId}/windows/${d.id}`, { x: r.x, y: r.y, w: r.w, h: r.h }))
    .then(() => scheduleRefresh());
}

// ---------------------------------------------------------------- live events

let ws = null;
let wsTimer = null;
let wsBackoff = 500;

function setWsState(text, live) {
  const s = $('#ws-state');
  s.textContent = text;
  s.className = 'ws ' + (live ? 'on' : 'off');
}

function connectSocket() {
  clearTimeout(wsTimer);
  if (!state.token || ws) return;
  const url = new URL('api/v1/events', location.href);
  url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
  url.searchParams.set('token', state.token);
  setWsState('connecting…', false);
  const sock = new WebSocket(url.href);
  ws = sock;
  sock.onopen = () => {
    if (ws !== sock) return;
    wsBackoff = 500;
    setWsState('live', true);
    scheduleRefresh(); // catch up on anything missed while disconnected
  };
  sock.onmessage = (m) => {
    try {
      const ev = JSON.parse(m.data);
      $('#ws-state').title = `last event: #${ev.seq} ${ev.type}`;
    } catch { /* any message means "something changed" */ }
    scheduleRefresh();
  };
  sock.onclose = () => {
    if (ws !== sock) return;
    ws = null;
    setWsState('offline', false);
    if (!state.token) return;
    scheduleRefresh(); // notices a lost session (401) or an unreachable chassis
    wsTimer = setTimeout(connectSocket, wsBackoff);
    wsBackoff = Math.min(wsBackoff * 2, 15000);
  };
}

function closeSocket() {
  clearTimeout(wsTimer);
  if (ws) {
    const s = ws;
    ws = null;
    s.close();
  }
  setWsState('offline', false);
}

// ---------------------------------------------------------------- tabs

const TABS = ['operate', 'walls', 'sources', 'kvm', 'plans', 'users'];

function setTab(name) {
  if (!TABS.includes(name) || (name === 'users' && !isAdmin())) name = 'operate';
  state.tab = name;
  sessionStorage.setItem(TAB_KEY, name);
  for (const b of document.querySelectorAll('#tabs .tab')) {
    const on = b.dataset.tab === name;
    b.classList.toggle('active', on);
    b.setAttribute('aria-selected', on ? 'true' : 'false');
  }
  for (const t of TABS) $(`#tab-${t}`).hidden = t !== name;
  if (name === 'operate' && !state.drag) renderWall(); // it needs its size
}

// ---------------------------------------------------------------- configuration helpers

// A refusal shown where the operator acted: status, code and the chassis' sentence.
function showError(el, e) {
  if (!el) return;
  if (!e) {
    el.hidden = true;
    el.replaceChildren();
    delete el.dataset.status;
    delete el.dataset.code;
    delete el.dataset.from;
    return;
  }
  const head = document.createElement('strong');
  const code = document.createElement('span');
  code.className = 'err-code';
  if (e.code === 'not_sent') {
    head.textContent = 'Not sent:';
  } else {
    head.textContent = e.status ? `Refused, ${e.status}` : 'No answer';
    code.textContent = e.code;
  }
  el.replaceChildren(head, ' ', code, document.createTextNode(code.textContent ? ` · ${e.message}` : e.message));
  el.dataset.status = String(e.status || 0);
  el.dataset.code = e.code || '';
  el.dataset.from = 'action';
  el.hidden = false;
}

// A mistake caught before anything is sent (a port list that does not parse).
const notSent = (message) => new ApiError(0, 'not_sent', message);

// Run one configuration request: its refusal goes to `errEl` (and the status
// bar), its success to the status bar, then `after` and a refresh. Buttons
// are disabled meanwhile (no double submit). Whether it succeeded.
async function attempt({ errEl, buttons = [], done, fn, after }) {
  showError(errEl, null);
  for (const b of buttons) b.disabled = true;
  try {
    const r = await fn();
    setStatus(typeof done === 'function' ? done(r) : done, 'ok');
    if (after) after(r);
    scheduleRefresh();
    return true;
  } catch (e) {
    showError(errEl, e);
    fail(e);
    return false;
  } finally {
    for (const b of buttons) b.disabled = false;
  }
}

// A form: submit runs `fn`; refusals show in its .form-error.
function onSubmit(form, { done, fn, after }) {
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    attempt({
      errEl: form.querySelector('.form-error'),
      buttons: [...form.querySelectorAll('button[type="submit"]')],
      done, fn, after,
    });
  });
}

function button(label, cls, title) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = label;
  if (cls) b.className = cls;
  if (title) b.title = title;
  return b;
}

// A destructive button: the first click arms it, a second within 4 s acts.
// The armed one is remembered by `key`, so a list rebuilt by a refresh in
// between keeps it armed.
const armed = { key: null, until: 0 };

function dangerButton(label, what, key, onConfirm) {
  const b = button(label, 'danger delete-btn', `delete ${what}`);
  let timer = null;
  const look = (on) => {
    b.classList.toggle('confirm', on);
    b.textContent = on ? 'Confirm' : label;
  };
  const arm = (ms) => {
    look(true);
    clearTimeout(timer);
    timer = setTimeout(() => { look(false); if (armed.key === key) armed.key = null; }, ms);
  };
  if (armed.key === key && Date.now() < armed.until) arm(armed.until - Date.now());
  b.addEventListener('click', () => {
    if (!b.classList.contains('confirm')) {
      armed.key = key;
      armed.until = Date.now() + 4000;
      arm(4000);
      return;
    }
    clearTimeout(timer);
    armed.key = null;
    look(false);
    onConfirm();
  });
  return b;
}

function cell(text, cls) {
  const td = document.createElement('td');
  if (cls) td.className = cls;
  if (text instanceof Node) td.append(text); else td.textContent = text == null ? '' : String(text);
  return td;
}

function tag(text) {
  const s = document.createElement('span');
  s.className = 'tag';
  s.textContent = text;
  return s;
}

// "1–4, 7, 9–16"
function ranges(nums) {
  const v = [...nums].sort((a, b) => a - b);
  const out = [];
  for (let i = 0; i < v.length; i++) {
    let j = i;
    while (j + 1 < v.length && v[j + 1] === v[j] + 1) j++;
    out.push(j > i ? `${v[i]}–${v[j]}` : String(v[i]));
    i = j;
  }
  return out.join(', ');
}

function boardPorts(kind) {
  const boards = state.info && Array.isArray(state.info.boards) ? state.info.boards : [];
  const b = boards.find((x) => x.kind === kind);
  return b && Number.isInteger(b.ports) && b.ports > 0 ? b.ports : null;
}

// Output ports 1..M: system/info says M; else the highest port seen (at least 16).
function outputCount() {
  const known = boardPorts('output');
  if (known) return known;
  const seen = [...state.matrix.map((r) => r.output),
    ...state.walls.flatMap((w) => (w.screens || []).map((s) => s.output))];
  return Math.max(16, ...seen);
}

function inputCount() {
  const known = boardPorts('input');
  if (known) return known;
  return Math.max(16, ...state.sources.filter((s) => s.port != null).map((s) => s.port));
}

// Output port -> the wall whose screen it drives.
function outputWalls() {
  const m = new Map();
  for (const w of state.walls) for (const s of w.screens || []) m.set(s.output, w);
  return m;
}

function freeOutputs() {
  const used = outputWalls();
  const free = [];
  for (let o = 1; o <= outputCount(); o++) if (!used.has(o)) free.push(o);
  return free;
}

// "3, 4 5" -> [3, 4, 5]; anything else is refused before sending.
function parsePorts(text) {
  const parts = text.split(/[\s,;]+/).filter(Boolean);
  const bad = parts.find((p) => !/^\d+$/.test(p));
  if (bad !== undefined) throw notSent(`"${bad}" is not a port number: list output ports like "1, 2, 3, 4".`);
  return parts.map(Number);
}

function intOf(input) {
  const v = input.value.trim();
  if (!/^\d+$/.test(v)) throw notSent(`${input.name || input.id} must be a whole number.`);
  return Number(v);
}

// The row being edited in each page (its form is open), by page.
const editing = { wall: null, source: null, user: null };

function closeEditors() {
  for (const k of Object.keys(editing)) editing[k] = null;
  for (const f of ['#wall-edit-form', '#source-edit-form', '#user-edit-form']) {
    $(f).hidden = true;
    showError($(f).querySelector('.form-error'), null);
  }
}

function renderConfig() {
  renderWallConfig();
  renderSourceConfig();
  renderKvm();
  renderPlans();
  renderSchedules();
  renderUsers();
}

// A list's own read error (older firmware, a role that may not read it).
// It replaces, and is replaced by, only another read error: a refused
// action's error stays until the next action there.
function listError(el, list) {
  if (list.error) {
    showError(el, list.error);
    el.dataset.from = 'read';
  } else if (el.dataset.from === 'read') {
    showError(el, null);
  }
}

// ---------------------------------------------------------------- walls

function renderWallConfig() {
  const tbody = $('#wall-table tbody');
  $('#wall-empty').hidden = state.walls.length > 0;
  if (changed(tbody, [state.walls, editing.wall, isAdmin()])) {
    tbody.replaceChildren(...state.walls.map((w) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(w.id);
      tr.classList.toggle('editing', editing.wall === w.id);
      const outs = [];
      for (let r = 0; r < w.rows; r++) {
        outs.push((w.screens || []).filter((s) => s.row === r).sort((a, b) => a.col - b.col)
          .map((s) => s.output).join(', '));
      }
      const show = button('Show', 'show-btn', 'operate this wall');
      show.addEventListener('click', () => {
        state.wallId = w.id;
        sessionStorage.setItem(WALL_KEY, String(w.id));
        state.selected = null;
        setTab('operate');
        refresh();
      });
      const acts = cell(show, 'actions');
      if (isAdmin()) {
        const edit = button('Edit', 'edit-btn', 'rename this wall');
        edit.addEventListener('click', () => openWallEditor(w));
        acts.append(edit, dangerButton('Delete', `wall "${w.name}"`, `wall:${w.id}`, () => attempt({
          errEl: $('#walls-error'),
          done: `Wall "${w.name}" deleted.`,
          fn: () => api('DELETE', `walls/${w.id}`),
          after: () => { if (editing.wall === w.id) closeWallEditor(); },
        })));
      }
      tr.append(cell(w.id, 'id'), cell(w.name, 'name'),
        cell(`${w.rows} × ${w.cols} of ${w.screen_width}×${w.screen_height}`), cell(outs.join(' / '), 'wrap'), acts);
      return tr;
    }));
  }
  if (editing.wall != null && !state.walls.some((w) => w.id === editing.wall)) closeWallEditor();
  const free = freeOutputs();
  $('#wall-free').textContent = free.length
    ? `Free outputs: ${ranges(free)} (${free.length} of ${outputCount()}).`
    : `All ${outputCount()} outputs drive walls already.`;
  const outputs = $('#wall-outputs');
  if (outputs.dataset.auto !== 'off') fillWallOutputs();
  renderWallPreview();
}

// The first rows×cols free outputs, until the operator types their own.
function fillWallOutputs() {
  const n = (Number($('#wall-rows').value) || 0) * (Number($('#wall-cols').value) || 0);
  const outputs = $('#wall-outputs');
  outputs.value = freeOutputs().slice(0, Math.max(n, 0)).join(', ');
  outputs.dataset.auto = 'on';
  renderWallPreview();
}

function renderWallPreview() {
  const box = $('#wall-preview');
  const rows = Number($('#wall-rows').value);
  const cols = Number($('#wall-cols').value);
  if (!(rows >= 1 && rows <= 8 && cols >= 1 && cols <= 8)) { box.replaceChildren(); return; }
  let ports = [];
  try { ports = parsePorts($('#wall-outputs').value); } catch { ports = []; }
  const used = outputWalls();
  box.style.gridTemplateColumns = `repeat(${cols}, minmax(0, 1fr))`;
  const cells = [];
  for (let i = 0; i < rows * cols; i++) {
    const d = document.createElement('div');
    const p = ports[i];
    d.textContent = p == null ? '?' : `out ${p}`;
    const taken = p != null && used.has(p);
    d.classList.toggle('bad', p == null || taken || p < 1 || p > outputCount() || ports.indexOf(p) !== i);
    if (taken) d.title = `output ${p} drives wall "${used.get(p).name}"`;
    cells.push(d);
  }
  box.replaceChildren(...cells);
}

function openWallEditor(w) {
  editing.wall = w.id;
  const f = $('#wall-edit-form');
  f.querySelector('.edit-id').textContent = `#${w.id}`;
  $('#wall-edit-name').value = w.name;
  showError(f.querySelector('.form-error'), null);
  f.hidden = false;
  $('#wall-edit-name').focus();
  renderWallConfig();
}

function closeWallEditor() {
  editing.wall = null;
  $('#wall-edit-form').hidden = true;
  renderWallConfig();
}

// ---------------------------------------------------------------- sources

function sourceWhere(s) {
  if (s.kind === 'ip') return s.url || '';
  if (s.kind === 'cascade') return `subordinate ${s.subordinate_id}, its source ${s.remote_source_id}`;
  return s.port != null ? `input ${s.port}` : '';
}

function renderSourceConfig() {
  const tbody = $('#source-table tbody');
  if (changed(tbody, [state.sources, editing.source, isAdmin()])) {
    tbody.replaceChildren(...state.sources.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(s.id);
      tr.classList.toggle('editing', editing.source === s.id);
      const name = cell(s.name, 'name');
      if (s.builtin) name.append(tag('physical'));
      const acts = cell('', 'actions');
      if (isAdmin()) {
        const edit = button('Edit', 'edit-btn', s.kind === 'ip' ? 'rename, change the url' : 'rename');
        edit.addEventListener('click', () => openSourceEditor(s));
        acts.append(edit);
        if (!s.builtin && s.kind !== 'cascade') {
          acts.append(dangerButton('Delete', `source "${s.name}"`, `source:${s.id}`, () => attempt({
            errEl: $('#sources-error'),
            done: `Source "${s.name}" deleted.`,
            fn: () => api('DELETE', `sources/${s.id}`),
            after: () => { if (editing.source === s.id) closeSourceEditor(); },
          })));
        }
      }
      tr.append(cell(s.id, 'id'), name, cell(s.kind), cell(sourceWhere(s), 'wrap'), acts);
      return tr;
    }));
  }
  if (editing.source != null && !state.sources.some((s) => s.id === editing.source)) closeSourceEditor();
  $('#source-port').max = String(inputCount());
}

function sourceKindChanged() {
  const ip = $('#source-kind').value === 'ip';
  $('#source-form .kind-ip').hidden = !ip;
  $('#source-form .kind-port').hidden = ip;
}

function openSourceEditor(s) {
  editing.source = s.id;
  const f = $('#source-edit-form');
  f.querySelector('.edit-id').textContent = `#${s.id} (${s.kind})`;
  f.dataset.id = String(s.id);
  f.dataset.kind = s.kind;
  f.dataset.url = s.url || '';
  $('#source-edit-name').value = s.name;
  $('#source-edit-url').value = s.url || '';
  f.querySelector('.edit-url').hidden = s.kind !== 'ip';
  showError(f.querySelector('.form-error'), null);
  f.hidden = false;
  $('#source-edit-name').focus();
  renderSourceConfig();
}

function closeSourceEditor() {
  editing.source = null;
  $('#source-edit-form').hidden = true;
  renderSourceConfig();
}

// ---------------------------------------------------------------- KVM

const hostLabel = (h) => `${h.name} (port ${h.port})`;

function hostOptions(selected) {
  const opts = [option('', '— none —', selected == null)];
  for (const h of state.hosts.data) opts.push(option(h.id, hostLabel(h), h.id === selected));
  if (selected != null && !state.hosts.data.some((h) => h.id === selected)) {
    opts.push(option(selected, `host ${selected}`, true));
  }
  return opts;
}

function renderKvm() {
  const seats = state.seats.data;
  const hosts = state.hosts.data;
  listError($('#seats-error'), state.seats);
  listError($('#hosts-error'), state.hosts);
  $('#seat-empty').hidden = seats.length > 0 || !!state.seats.error;
  $('#host-empty').hidden = hosts.length > 0 || !!state.hosts.error;

  const stb = $('#seat-table tbody');
  if (changed(stb, [seats, hosts, state.user && state.user.role])) {
    stb.replaceChildren(...seats.map((s) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(s.id);
      const sel = document.createElement('select');
      sel.className = 'seat-host';
      sel.setAttribute('aria-label', `host of seat ${s.name}`);
      sel.append(...hostOptions(s.host_id));
      sel.disabled = isViewer();
      sel.addEventListener('change', () => {
        const hostId = sel.value === '' ? null : Number(sel.value);
        const h = hosts.find((x) => x.id === hostId);
        attempt({
          errEl: $('#seats-error'),
          done: `Seat "${s.name}" now shows ${h ? `"${h.name}"` : 'no host'}.`,
          fn: () => api('PUT', `kvm/seats/${s.id}`, { host_id: hostId }),
        }).then((ok) => { if (!ok) { stb.dataset.key = ''; renderKvm(); } }); // snap back
      });
      const acts = cell('', 'actions');
      if (isAdmin()) {
        acts.append(dangerButton('Delete', `seat "${s.name}"`, `seat:${s.id}`, () => attempt({
          errEl: $('#seats-error'), done: `Seat "${s.name}" deleted.`,
          fn: () => api('DELETE', `kvm/seats/${s.id}`),
        })));
      }
      tr.append(cell(s.id, 'id'), cell(s.name, 'name'), cell(s.console), cell(sel), acts);
      return tr;
    }));
  }

  const htb = $('#host-table tbody');
  if (changed(htb, [hosts, seats, isAdmin()])) {
    htb.replaceChildren(...hosts.map((h) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(h.id);
      const on = seats.filter((s) => s.host_id === h.id).map((s) => s.name);
      const acts = cell('', 'actions');
      if (isAdmin()) {
        acts.append(dangerButton('Delete', `host "${h.name}"`, `host:${h.id}`, () => attempt({
          errEl: $('#hosts-error'),
          done: `Host "${h.name}" deleted${on.length ? `; ${on.length} seat(s) now show no host` : ''}.`,
          fn: () => api('DELETE', `kvm/hosts/${h.id}`),
        })));
      }
      tr.append(cell(h.id, 'id'), cell(h.name, 'name'), cell(h.port), cell(on.join(', ') || '—', 'wrap'), acts);
      return tr;
    }));
  }

  // The add-seat form's host list, and a free KVM port suggested for a new host.
  const seatHost = $('#seat-host');
  if (changed(seatHost, hosts.map((h) => [h.id, h.name, h.port]))) {
    const keep = seatHost.value;
    seatHost.replaceChildren(...hostOptions(null));
    if (hosts.some((h) => String(h.id) === keep)) seatHost.value = keep;
  }
  const usedPorts = new Set(hosts.map((h) => h.port));
  let free = 1;
  while (usedPorts.has(free) && free < 256) free++;
  $('#host-port').placeholder = `1 to 256, e.g. ${free} (free)`;
}

// ---------------------------------------------------------------- plans and schedules

function inputLabel(port) {
  const s = state.sources.find((x) => x.builtin && x.port === port)
    || state.sources.find((x) => x.port === port && x.kind !== 'ip' && x.kind !== 'cascade');
  return s ? `in ${port} · ${s.name}` : `in ${port}`;
}

const routeText = (r) => `out ${r.output} ← ${r.input == null ? 'none' : `in ${r.input}`}`;

function renderPlans() {
  const plans = state.plans.data;
  listError($('#plans-error'), state.plans);
  $('#plan-empty').hidden = plans.length > 0 || !!state.plans.error;
  const tbody = $('#plan-table tbody');
  if (changed(tbody, [plans, state.user && state.user.role])) {
    tbody.replaceChildren(...plans.map((p) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(p.id);
      const acts = cell('', 'actions');
      if (!isViewer()) {
        const run = button('Run', 'run-btn primary', 'set these routes now');
        run.addEventListener('click', () => attempt({
          errEl: $('#plans-error'), buttons: [run],
          done: `Plan "${p.name}" ran: ${(p.routes || []).length} route(s) set.`,
          fn: () => api('POST', `plans/${p.id}/run`),
        }));
        acts.append(run);
      }
      if (isAdmin()) {
        acts.append(dangerButton('Delete', `plan "${p.name}"`, `plan:${p.id}`, () => attempt({
          errEl: $('#plans-error'), done: `Plan "${p.name}" deleted.`,
          fn: () => api('DELETE', `plans/${p.id}`),
        })));
      }
      const routes = (p.routes || []).map(routeText).join(', ') || '(no routes)';
      tr.append(cell(p.id, 'id'), cell(p.name, 'name'), cell(routes, 'wrap'), acts);
      return tr;
    }));
  }
  // The new schedule's plan choices (checked ones stay checked).
  const box = $('#schedule-plans');
  if (changed(box, plans.map((p) => [p.id, p.name]))) {
    const checked = new Set([...box.querySelectorAll('input:checked')].map((i) => i.value));
    const legend = box.querySelector('legend');
    const items = plans.map((p) => {
      const l = document.createElement('label');
      const c = document.createElement('input');
      c.type = 'checkbox';
      c.value = String(p.id);
      c.checked = checked.has(c.value);
      l.append(c, ` ${p.id} · ${p.name}`);
      return l;
    });
    if (!plans.length) {
      const hint = document.createElement('p');
      hint.className = 'hint';
      hint.textContent = 'Create a plan first.';
      items.push(hint);
    }
    box.replaceChildren(legend, ...items);
  }
}

// One route row of the new plan: output ← input.
function addRouteRow(output, input) {
  const wrap = $('#plan-routes');
  const row = document.createElement('div');
  row.className = 'route';
  const walls = outputWalls();
  const outSel = document.createElement('select');
  outSel.className = 'route-output';
  outSel.setAttribute('aria-label', 'output');
  for (let o = 1; o <= outputCount(); o++) {
    const w = walls.get(o);
    outSel.append(option(o, w ? `out ${o} (wall ${w.name})` : `out ${o}`, o === output));
  }
  const inSel = document.createElement('select');
  inSel.className = 'route-input';
  inSel.setAttribute('aria-label', 'input');
  inSel.append(option('', '— none —', input == null));
  for (let i = 1; i <= inputCount(); i++) inSel.append(option(i, inputLabel(i), i === input));
  const arrow = document.createElement('span');
  arrow.textContent = '←';
  const del = button('×', 'danger', 'remove this route');
  del.addEventListener('click', () => row.remove());
  row.append(outSel, arrow, inSel, del);
  wrap.append(row);
}

function nextPlanOutput() {
  const taken = new Set([...document.querySelectorAll('#plan-routes .route-output')].map((s) => Number(s.value)));
  const walls = outputWalls();
  for (let o = 1; o <= outputCount(); o++) if (!taken.has(o) && !walls.has(o)) return o;
  for (let o = 1; o <= outputCount(); o++) if (!taken.has(o)) return o;
  return 1;
}

function planRoutes() {
  return [...document.querySelectorAll('#plan-routes .route')].map((row) => {
    const i = row.querySelector('.route-input').value;
    return { output: Number(row.querySelector('.route-output').value), input: i === '' ? null : Number(i) };
  });
}

function renderSchedules() {
  const list = state.schedules.data;
  listError($('#schedules-error'), state.schedules);
  $('#schedule-empty').hidden = list.length > 0 || !!state.schedules.error;
  const tbody = $('#schedule-table tbody');
  const planName = (id) => {
    const p = state.plans.data.find((x) => x.id === id);
    return p ? p.name : `plan ${id}`;
  };
  if (!changed(tbody, [list, state.plans.data.map((p) => [p.id, p.name]), isAdmin()])) return;
  tbody.replaceChildren(...list.map((s) => {
    const tr = document.createElement('tr');
    tr.dataset.id = String(s.id);
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'schedule-enabled';
    box.checked = !!s.enabled;
    box.disabled = !isAdmin();
    box.setAttribute('aria-label', `schedule ${s.name} enabled`);
    box.addEventListener('change', () => attempt({
      errEl: $('#schedules-error'),
      done: `Schedule "${s.name}" ${box.checked ? 'enabled' : 'disabled'}.`,
      fn: () => api('PUT', `schedules/${s.id}`, { enabled: box.checked }),
    }).then((ok) => { if (!ok) box.checked = !!s.enabled; }));
    const acts = cell('', 'actions');
    if (isAdmin()) {
      acts.append(dangerButton('Delete', `schedule "${s.name}"`, `schedule:${s.id}`, () => attempt({
        errEl: $('#schedules-error'), done: `Schedule "${s.name}" deleted.`,
        fn: () => api('DELETE', `schedules/${s.id}`),
      })));
    }
    tr.append(cell(s.id, 'id'), cell(s.name, 'name'), cell((s.plan_ids || []).map(planName).join(' → '), 'wrap'),
      cell(`${s.interval_s} s`), cell(box), acts);
    return tr;
  }));
}

// ---------------------------------------------------------------- users

function renderUsers() {
  const users = state.users.data;
  listError($('#users-error'), state.users);
  const tbody = $('#user-table tbody');
  const me = state.user ? state.user.id : null;
  if (changed(tbody, [users, editing.user, me])) {
    tbody.replaceChildren(...users.map((u) => {
      const tr = document.createElement('tr');
      tr.dataset.id = String(u.id);
      tr.classList.toggle('editing', editing.user === u.id);
      const name = cell(u.username, 'name');
      if (u.id === me) name.append(tag('you'));
      const edit = button('Edit', 'edit-btn', 'rename, change role or password');
      edit.addEventListener('click', () => openUserEditor(u));
      const acts = cell(edit, 'actions');
      acts.append(dangerButton('Delete', `user "${u.username}"`, `user:${u.id}`, () => attempt({
        errEl: $('#users-error'), done: `User "${u.username}" deleted.`,
        fn: () => api('DELETE', `users/${u.id}`),
        after: () => { if (editing.user === u.id) closeUserEditor(); if (u.id === me) showLogin('Your account was deleted.'); },
      })));
      tr.append(cell(u.id, 'id'), name, cell(u.role), acts);
      return tr;
    }));
  }
  if (editing.user != null && !users.some((u) => u.id === editing.user) && !state.users.error) closeUserEditor();
}

function openUserEditor(u) {
  editing.user = u.id;
  const f = $('#user-edit-form');
  f.querySelector('.edit-id').textContent = `#${u.id}`;
  f.dataset.id = String(u.id);
  f.dataset.username = u.username;
  f.dataset.role = u.role;
  $('#user-edit-name').value = u.username;
  $('#user-edit-role').value = u.role;
  $('#user-edit-password').value = '';
  showError(f.querySelector('.form-error'), null);
  f.hidden = false;
  $('#user-edit-name').focus();
  renderUsers();
}

function closeUserEditor() {
  editing.user = null;
  $('#user-edit-form').hidden = true;
  $('#user-edit-password').value = '';
  renderUsers();
}

// ---------------------------------------------------------------- configuration controls

function wireConfig() {
  for (const b of document.querySelectorAll('#tabs .tab')) {
    b.addEventListener('click', () => { setTab(b.dataset.tab); scheduleRefresh(); });
  }
  for (const f of document.querySelectorAll('form .cancel-btn')) {
    f.addEventListener('click', () => {
      const form = f.closest('form');
      if (form.id === 'wall-edit-form') closeWallEditor();
      if (form.id === 'source-edit-form') closeSourceEditor();
      if (form.id === 'user-edit-form') closeUserEditor();
    });
  }

  // Walls.
  for (const id of ['#wall-rows', '#wall-cols']) {
    $(id).addEventListener('input', () => { if ($('#wall-outputs').dataset.auto !== 'off') fillWallOutputs(); else renderWallPreview(); });
  }
  $('#wall-outputs').addEventListener('input', (e) => {
    e.target.dataset.auto = e.target.value.trim() ? 'off' : 'on';
    renderWallPreview();
  });
  $('#wall-auto-btn').addEventListener('click', fillWallOutputs);
  onSubmit($('#wall-form'), {
    fn: () => {
      const body = {
        name: $('#wall-name').value,
        rows: intOf($('#wall-rows')),
        cols: intOf($('#wall-cols')),
        outputs: parsePorts($('#wall-outputs').value),
        screen_width: intOf($('#wall-sw')),
        screen_height: intOf($('#wall-sh')),
      };
      return api('POST', 'walls', body);
    },
    done: (w) => `Wall "${w.name}" created: #${w.id}, ${w.rows} × ${w.cols} screens on outputs ${ranges((w.screens || []).map((s) => s.output))}.`,
    after: (w) => {
      $('#wall-name').value = '';
      $('#wall-outputs').dataset.auto = 'on';
      // The operate page shows the new wall.
      state.wallId = w.id;
      sessionStorage.setItem(WALL_KEY, String(w.id));
    },
  });
  onSubmit($('#wall-edit-form'), {
    fn: () => api('PUT', `walls/${editing.wall}`, { name: $('#wall-edit-name').value }),
    done: (w) => `Wall #${w.id} renamed "${w.name}".`,
    after: () => closeWallEditor(),
  });

  // Sources.
  $('#source-kind').addEventListener('change', sourceKindChanged);
  sourceKindChanged();
  onSubmit($('#source-form'), {
    fn: () => {
      const kind = $('#source-kind').value;
      const body = { name: $('#source-name').value, kind };
      if (kind === 'ip') body.url = $('#source-url').value.trim();
      else body.port = intOf($('#source-port'));
      return api('POST', 'sources', body);
    },
    done: (s) => `Source "${s.name}" added: #${s.id} (${s.kind}).`,
    after: () => { $('#source-name').value = ''; $('#source-url').value = ''; $('#source-port').value = ''; },
  });
  onSubmit($('#source-edit-form'), {
    fn: () => {
      const f = $('#source-edit-form');
      const body = { name: $('#source-edit-name').value };
      const url = $('#source-edit-url').value.trim();
      if (f.dataset.kind === 'ip' && url !== f.dataset.url) body.url = url;
      return api('PUT', `sources/${f.dataset.id}`, body);
    },
    done: (s) => `Source #${s.id} is now "${s.name}".`,
    after: () => closeSourceEditor(),
  });

  // KVM.
  onSubmit($('#host-form'), {
    fn: () => api('POST', 'kvm/hosts', { name: $('#host-name').value, port: intOf($('#host-port')) }),
    done: (h) => `KVM host "${h.name}" added on port ${h.port}.`,
    after: () => { $('#host-name').value = ''; $('#host-port').value = ''; },
  });
  onSubmit($('#seat-form'), {
    fn: () => {
      const body = { name: $('#seat-name').value, console: $('#seat-console').value };
      if ($('#seat-host').value !== '') body.host_id = Number($('#seat-host').value);
      return api('POST', 'kvm/seats', body);
    },
    done: (s) => `KVM seat "${s.name}" added.`,
    after: () => { $('#seat-name').value = ''; $('#seat-console').value = ''; },
  });

  // Plans and schedules.
  $('#plan-add-route').addEventListener('click', () => addRouteRow(nextPlanOutput(), null));
  $('#plan-from-matrix').addEventListener('click', () => {
    const set = state.matrix.filter((r) => r.input != null);
    if (!set.length) { setStatus('The matrix routes nothing now: add routes by hand.'); return; }
    $('#plan-routes').replaceChildren();
    for (const r of set) addRouteRow(r.output, r.input);
  });
  onSubmit($('#plan-form'), {
    fn: () => api('POST', 'plans', { name: $('#plan-name').value, routes: planRoutes() }),
    done: (p) => `Plan "${p.name}" created: #${p.id}, ${(p.routes || []).length} route(s).`,
    after: () => { $('#plan-name').value = ''; $('#plan-routes').replaceChildren(); },
  });
  onSubmit($('#schedule-form'), {
    fn: () => {
      const planIds = [...document.querySelectorAll('#schedule-plans input:checked')].map((c) => Number(c.value));
      return api('POST', 'schedules', {
        name: $('#schedule-name').value, plan_ids: planIds,
        interval_s: intOf($('#schedule-interval')), enabled: $('#schedule-enabled').checked,
      });
    },
    done: (s) => `Schedule "${s.name}" created: #${s.id}, every ${s.interval_s} s.`,
    after: () => {
      $('#schedule-name').value = '';
      for (const c of document.querySelectorAll('#schedule-plans input')) c.checked = false;
    },
  });

  // Users.
  onSubmit($('#user-form'), {
    fn: () => api('POST', 'users', {
      username: $('#user-name').value.trim(), password: $('#user-password').value, role: $('#user-role').value,
    }),
    done: (u) => `User "${u.username}" created (${u.role}).`,
    after: () => { $('#user-name').value = ''; $('#user-password').value = ''; },
  });
  onSubmit($('#user-edit-form'), {
    fn: () => {
      const f = $('#user-edit-form');
      const body = {};
      const name = $('#user-edit-name').value.trim();
      if (name !== f.dataset.username) body.username = name;
      if ($('#user-edit-role').value !== f.dataset.role) body.role = $('#user-edit-role').value;
      if ($('#user-edit-password').value) body.password = $('#user-edit-password').value;
      if (!Object.keys(body).length) throw notSent('Nothing changed.');
      return api('PUT', `users/${f.dataset.id}`, body);
    },
    done: (u) => `User #${u.id} saved: "${u.username}", ${u.role}.`,
    after: (u) => {
      closeUserEditor();
      // The chassis (and the gateway) end the sessions of a changed account.
      if (state.user && u.id === state.user.id) {
        const name = u.username;
        showLogin('Your account was changed: log in again.');
        $('#username').value = name;
      }
    },
  });
}

// ---------------------------------------------------------------- controls

function wire() {
  $('#login-form').addEventListener('submit', (e) => { e.preventDefault(); login(false); });
  $('#force-btn').addEventListener('click', () => login(true));
  $('#logout-btn').addEventListener('click', logout);

  $('#wall-select').addEventListener('change', (e) => {
    state.wallId = Number(e.target.value) || null;
    sessionStorage.setItem(WALL_KEY, String(state.wallId || ''));
    state.selected = null;
    refresh();
  });

  // Click on empty wall: deselect.
  $('#wall').addEventListener('pointerdown', (e) => { if (e.target.id === 'wall') select(null); });

  $('#open-btn').addEventListener('click', () => {
    const wall = currentWall();
    const sourceId = Number($('#source-select').value);
    if (!wall || !sourceId) { setStatus('Pick a wall and a source first.', 'error'); return; }
    // Default place: one screen, the next screen along for each new window.
    const i = state.windows.length % (wall.rows * wall.cols);
    const rect = {
      x: (i % wall.cols) * wall.screen_width, y: Math.floor(i / wall.cols) * wall.screen_height,
      w: wall.screen_width, h: wall.screen_height,
    };
    act((w) => `Window ${w.id} opened: ${sourceName(sourceId)}.`,
      () => api('POST', `walls/${wall.id}/windows`, { source_id: sourceId, ...rect }));
  });

  $('#clear-btn').addEventListener('click', () => {
    const wall = currentWall();
    if (!wall) return;
    act(`Wall "${wall.name}" cleared.`, () => api('DELETE', `walls/${wall.id}/windows`));
  });

  $('#raise-btn').addEventListener('click', () => {
    const id = state.selected;
    act(`Window ${id} raised.`, () => api('POST', `walls/${state.wallId}/windows/${id}/raise`));
  });
  $('#close-btn').addEventListener('click', () => {
    const id = state.selected;
    act(`Window ${id} closed.`, () => api('DELETE', `walls/${state.wallId}/windows/${id}`));
  });
  $('#switch-btn').addEventListener('click', () => {
    const id = state.selected;
    const sourceId = Number($('#source-select').value);
    act(`Window ${id} now shows ${sourceName(sourceId)}.`,
      () => api('PUT', `walls/${state.wallId}/windows/${id}`, { source_id: sourceId }));
  });

  $('#scene-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const wall = currentWall();
    if (!wall) return;
    const input = $('#scene-name');
    const name = input.value.trim() || `Scene ${state.scenes.length + 1}`;
    act((s) => { input.value = ''; return `Scene "${s.name}" saved.`; },
      () => api('POST', `walls/${wall.id}/scenes`, { name }));
  });

  let resizeTimer = null;
  window.addEventListener('resize', () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => { if (!state.drag) renderWall(); }, 100);
  });
}

wire();
wireConfig();
if (state.token) enterMain(); else showLogin('');
