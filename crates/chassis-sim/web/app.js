// Chassis operator web client.
//
// Plain JavaScript, no build step. Every URL is relative (no leading slash), so
// the page works unchanged when served by a chassis or through the gateway.
'use strict';

const API = 'api/v1/';
const TOKEN_KEY = 'chassis.token';
const USER_KEY = 'chassis.user';
const WALL_KEY = 'chassis.wall';

const $ = (sel) => document.querySelector(sel);

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  user: JSON.parse(sessionStorage.getItem(USER_KEY) || 'null'),
  wallId: Number(sessionStorage.getItem(WALL_KEY)) || null,
  walls: [], sources: [], windows: [], scenes: [], matrix: [],
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

function fail(e) {
  if (e.status === 401) return; // sessionLost already showed it
  setStatus(e.message + (e.code ? ` (${e.code})` : ''), 'error');
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
  connectSocket();
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
    const [walls, sources, matrix] = await Promise.all([
      api('GET', 'walls'), api('GET', 'sources'), api('GET', 'matrix'),
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
    render();
  } catch (e) {
    fail(e);
  }
}

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
    : 'No walls on this chassis.';
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
if (state.token) enterMain(); else showLogin('');
