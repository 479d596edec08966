// The fleet page (issue 15): plain DOM code, no framework. The page and its assets are public and
// carry no data; everything comes from /api/v1 with the bearer token the operator typed, kept in
// sessionStorage (this tab only, never a cookie, so there is nothing for another site to ride on).
// The live timeline reads /api/v1/events with fetch streaming: EventSource cannot send the header.
// Over 400 lines: it is the page's one DOM module (login, three tables, timeline, stream); the pure
// parts already live in timeline.js and boot-state.js, and splitting the DOM code would add requests.
import { IDLE, nextBootState, timeOf } from './boot-state.js';
import { TIMELINE_LIMIT, describeEntry, formatMs, mergeTimeline, readSseMessages } from './timeline.js';

const TOKEN_KEY = 'iot-tofu.api-token';
/** Stored timelines fetched at once when the page loads (the state and last-boot columns). */
const TIMELINE_FETCHES = 4;
const STREAM_RETRY_MAX_MS = 30_000;

const $ = (id) => document.getElementById(id);

const page = {
  token: sessionStorage.getItem(TOKEN_KEY),
  pis: [],
  /** serial → { state, lastBoot, gateSince, gateWaitMs, reason } */
  boots: new Map(),
  /** serial → timeline entries { type, event }, oldest first, bounded */
  timelines: new Map(),
  /** serial → live entries that came while its stored timeline was loading; merged when it lands. */
  pending: new Map(),
  selected: null,
  stream: null,
  refreshTimer: 0,
};

class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(method, path, body) {
  const headers = { authorization: `Bearer ${page.token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const response = await fetch(path, { method, headers, cache: 'no-store', body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await response.json().catch(() => null);
  if (response.status === 401) {
    logout('The server refused this token: log in again.');
    throw new ApiError(401, 'unauthorized', 'UNAUTHORIZED');
  }
  if (!response.ok) throw new ApiError(response.status, json?.error?.message ?? response.statusText, json?.error?.code);
  return json;
}

/** What an operator reads when a change fails; an unprivileged daemon's 403 says where to make it instead. */
function explain(error) {
  if (!(error instanceof ApiError)) return `Request failed: ${error.message}`;
  if (error.status === 403) return `Not allowed here (403): ${error.message}`;
  return `${error.code ?? 'Error'} (${error.status}): ${error.message}`;
}

function showMessage(text) {
  $('message').textContent = text;
}

/** Builds an element with attributes and children (text is always set as text, never parsed). */
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  node.append(...children.filter((c) => c !== undefined && c !== null));
  return node;
}

const TIME_OF_DAY = { hour12: false, hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3 };

/** A <time>: date and time, or (timeline rows) the time of day to the millisecond. */
function timeElement(at, precise = false) {
  const ms = timeOf(at);
  if (!Number.isFinite(ms)) return el('span', { text: '—' });
  const date = new Date(ms);
  const text = precise ? date.toLocaleTimeString(undefined, TIME_OF_DAY) : date.toLocaleString(undefined, { hour12: false });
  return el('time', { datetime: date.toISOString(), title: date.toLocaleString(), text });
}

// ---- login ------------------------------------------------------------------------------------

function showLogin(error = '') {
  $('login').hidden = false;
  $('app').hidden = true;
  $('logout').hidden = true;
  $('connection').textContent = '';
  $('login-error').textContent = error;
  $('token').focus();
}

function logout(reason = '') {
  page.stream?.abort();
  page.stream = null;
  page.token = null;
  sessionStorage.removeItem(TOKEN_KEY);
  showLogin(reason);
}

async function login(token) {
  page.token = token;
  try {
    await api('GET', '/api/v1/pis');
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showLogin(explain(error));
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  $('login').hidden = true;
  $('app').hidden = false;
  $('logout').hidden = false;
  $('token').value = '';
  $('fleet-title').focus();
  followEvents();
  await refreshAll();
}

// ---- fleet, discovered, bases -----------------------------------------------------------------

/** `reloadTimelines`: after the stream reconnects every stored timeline is fetched again (events were missed). */
async function refreshAll(reloadTimelines = false) {
  try {
    const paths = ['/api/v1/pis', '/api/v1/discovered', '/api/v1/bases'];
    const [pis, discovered, bases] = await Promise.all(paths.map((path) => api('GET', path)));
    page.pis = pis;
    await loadBootStates(
      pis.map((pi) => pi.serial).filter((serial) => !page.pending.has(serial) && (reloadTimelines || !page.timelines.has(serial))),
    );
    renderFleet();
    renderDiscovered(discovered);
    renderBases(bases);
    if (page.selected && !pis.some((pi) => pi.serial === page.selected)) selectPi(null);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 401)) showMessage(explain(error));
  }
}

/** Registry changes and unknown Pis' DISCOVERs come in bursts: at most one refresh per 300 ms, even when they never stop. */
function refreshSoon() {
  if (page.refreshTimer) return;
  page.refreshTimer = setTimeout(() => {
    page.refreshTimer = 0;
    refreshAll();
  }, 300);
}

/**
 * Stored timelines give each Pi's state and last boot; a few requests at a time. Live events that
 * come while one loads are held and merged after it, so the older snapshot cannot overwrite them.
 */
async function loadBootStates(serials) {
  const queue = [...serials];
  for (const serial of queue) page.pending.set(serial, []);
  const worker = async () => {
    for (let serial = queue.shift(); serial; serial = queue.shift()) {
      const stored = await api('GET', `/api/v1/pis/${serial}/timeline`).catch(() => []);
      const entries = mergeTimeline(
        stored.map((entry) => ({ type: entry.type, event: entry })),
        page.pending.get(serial) ?? [],
      );
      page.pending.delete(serial);
      page.boots.set(
        serial,
        entries.reduce((boot, { type, event }) => nextBootState(boot, type, event), IDLE),
      );
      page.timelines.set(serial, entries.filter((entry) => entry.type !== 'transfer-started').slice(-TIMELINE_LIMIT));
      updateStateCell(serial);
      if (serial === page.selected) renderTimeline();
    }
  };
  await Promise.all(Array.from({ length: TIMELINE_FETCHES }, worker));
}

function stateText(boot) {
  if (!boot || boot.state === 'idle') return '—';
  if (boot.state === 'waiting') return 'waiting at the gate';
  if (boot.state === 'failed') return `failed: ${boot.reason ?? ''}`;
  return boot.state;
}

function renderFleet() {
  const rows = page.pis.map((pi) => {
    const boot = page.boots.get(pi.serial);
    const selected = page.selected === pi.serial;
    return el(
      'tr',
      { 'data-serial': pi.serial, 'aria-selected': selected ? 'true' : 'false' },
      el('th', { scope: 'row', text: pi.serial }),
      el('td', { text: pi.name }),
      el('td', { text: pi.owner }),
      el('td', { text: pi.model ?? '—' }),
      el('td', { text: pi.mac }),
      el('td', { text: pi.ip ?? '—' }),
      el('td', { text: pi.base ?? '—' }),
      el('td', { class: `state state-${boot?.state ?? 'idle'}`, text: stateText(boot) }),
      el('td', { class: 'last-boot' }, boot?.lastBoot ? timeElement(boot.lastBoot) : '—'),
      el(
        'td',
        {},
        el('button', {
          type: 'button',
          class: 'secondary',
          'aria-pressed': selected ? 'true' : 'false',
          'aria-label': `Timeline of ${pi.name} (${pi.serial})`,
          text: 'Timeline',
          onclick: () => selectPi(pi.serial),
        }),
        el('button', {
          type: 'button',
          class: 'danger',
          'aria-label': `Remove ${pi.name} (${pi.serial})`,
          text: 'Remove',
          onclick: () => removePi(pi),
        }),
      ),
    );
  });
  $('fleet').tBodies[0].replaceChildren(...rows);
  $('fleet-count').textContent = String(page.pis.length);
}

function renderDiscovered(discovered) {
  const rows = discovered.map((pi) =>
    el(
      'tr',
      { 'data-mac': pi.mac },
      el('th', { scope: 'row', text: pi.serial ?? '(unknown)' }),
      el('td', { text: pi.mac }),
      el('td', { text: pi.ip ?? '—' }),
      el('td', { text: pi.model ?? '—' }),
      el('td', {}, timeElement(pi.lastSeen)),
      el('td', {}, addButton(pi)),
    ),
  );
  $('discovered').tBodies[0].replaceChildren(...rows);
  $('discovered-count').textContent = String(discovered.length);
}

function addButton(pi) {
  return el('button', { type: 'button', 'aria-label': `Add ${pi.serial ?? pi.mac}`, text: 'Add…', onclick: () => prefillAdd(pi) });
}

function renderBases(bases) {
  const select = $('add-base');
  const current = select.value;
  // The API wants a base named (as pxetools without a terminal): the default one is preselected.
  const options = bases.map((base) => el('option', { value: base.name, text: base.default ? `${base.name} (default)` : base.name }));
  // No base yet: the add is sent without one and the server says what is missing (or 403 when unprivileged).
  select.replaceChildren(...(options.length > 0 ? options : [el('option', { value: '', text: 'none yet (pxetools setup)' })]));
  const keep = bases.find((b) => b.name === current) ?? bases.find((b) => b.default) ?? bases[0];
  if (keep) select.value = keep.name;
}

function prefillAdd(pi) {
  $('add-serial').value = pi.serial ?? '';
  $('add-mac').value = pi.mac ?? '';
  $('add-status').textContent = '';
  $(pi.serial ? 'add-owner' : 'add-serial').focus();
}

async function addPi(form) {
  const data = new FormData(form);
  const body = { serial: data.get('serial').trim(), owner: data.get('owner').trim(), name: data.get('name').trim() };
  const mac = data.get('mac').trim();
  const base = data.get('base');
  if (mac) body.mac = mac;
  if (base) body.base = base;
  $('add-status').textContent = `Adding ${body.serial}…`;
  try {
    const pi = await api('POST', '/api/v1/pis', body);
    form.reset();
    $('add-status').textContent = `Added ${pi.name} (${pi.serial}).`;
    showMessage('');
    await refreshAll();
  } catch (error) {
    $('add-status').textContent = '';
    showMessage(explain(error));
  }
}

async function removePi(pi) {
  if (!window.confirm(`Remove ${pi.name} (${pi.serial})? Its folders and export go too.`)) return;
  try {
    await api('DELETE', `/api/v1/pis/${pi.serial}`);
    showMessage('');
    page.timelines.delete(pi.serial);
    page.boots.delete(pi.serial);
    await refreshAll();
    $('fleet-title').focus();
  } catch (error) {
    showMessage(explain(error));
  }
}

// ---- timeline ---------------------------------------------------------------------------------

function selectPi(serial) {
  page.selected = serial;
  $('timeline-serial').textContent = serial ? `of ${serial}` : '';
  $('timeline-hint').hidden = !!serial;
  $('timeline').hidden = !serial;
  renderFleet();
  renderTimeline();
}

function timelineRow({ type, event }, before) {
  const row = describeEntry(type, event, before);
  if (!row) return null;
  return el(
    'tr',
    { class: `event-${type}` },
    el('td', {}, timeElement(event.at, true)),
    el('td', { text: row.what }),
    el('td', { text: row.file }),
    el('td', { text: row.bytes }),
    el('td', { text: row.time }),
    el('td', { text: row.retries }),
    el('td', { class: 'note', text: row.note }),
  );
}

function renderTimeline() {
  const entries = page.selected ? (page.timelines.get(page.selected) ?? []) : [];
  let boot = IDLE;
  const rows = [];
  for (const entry of entries) {
    rows.push(timelineRow(entry, boot));
    boot = nextBootState(boot, entry.type, entry.event);
  }
  $('timeline').tBodies[0].replaceChildren(...rows.filter(Boolean));
}

/** One event from the stream: timeline, state column, and a refresh when the registry changed. */
function onEvent(type, event) {
  if (type === 'registry-changed' || type === 'pi-seen') {
    if (type === 'registry-changed' || !page.pis.some((pi) => pi.serial === event.serial)) refreshSoon();
  }
  // The daemon resolved the serial (a TFTP client is known by the folder it asked for, or by its IP).
  const serial = event.serial;
  if (!serial || !page.pis.some((pi) => pi.serial === serial)) return;
  if (page.pending.has(serial)) {
    page.pending.get(serial).push({ type, event });
    return;
  }
  const before = page.boots.get(serial) ?? IDLE;
  page.boots.set(serial, nextBootState(before, type, event));
  if (type !== 'transfer-started') {
    const entries = page.timelines.get(serial) ?? [];
    entries.push({ type, event });
    const trimmed = Math.max(0, entries.length - TIMELINE_LIMIT);
    entries.splice(0, trimmed);
    page.timelines.set(serial, entries);
    if (serial === page.selected) {
      const body = $('timeline').tBodies[0];
      const row = timelineRow({ type, event }, before);
      if (row) body.append(row);
      for (let i = 0; i < trimmed; i++) body.rows[0]?.remove();
    }
  }
  updateStateCell(serial);
}

function updateStateCell(serial) {
  const row = $('fleet').querySelector(`tr[data-serial="${serial}"]`);
  const boot = page.boots.get(serial);
  if (!row || !boot) return;
  const cell = row.querySelector('td.state');
  cell.className = `state state-${boot.state}`;
  cell.textContent = stateText(boot);
  row.querySelector('td.last-boot').replaceChildren(boot.lastBoot ? timeElement(boot.lastBoot) : '—');
  if (boot.gateWaitMs !== undefined) cell.title = `last gate wait ${formatMs(boot.gateWaitMs)}`;
}

/** Reads the event stream until logout; reconnects with backoff and reloads what it may have missed. */
async function followEvents() {
  // One stream at a time: a second login (Enter pressed twice) must not leave the first one running.
  page.stream?.abort();
  const controller = new AbortController();
  page.stream = controller;
  let delay = 1000;
  while (!controller.signal.aborted) {
    try {
      const headers = { authorization: `Bearer ${page.token}`, accept: 'text/event-stream' };
      const response = await fetch('/api/v1/events', { headers, cache: 'no-store', signal: controller.signal });
      if (response.status === 401) return logout('The server refused this token: log in again.');
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      $('connection').textContent = 'Live';
      delay = 1000;
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const { messages, rest } = readSseMessages(buffer + value);
        buffer = rest;
        for (const message of messages) onEvent(message.event, message.data);
      }
    } catch {
      if (controller.signal.aborted) return;
    }
    $('connection').textContent = `Reconnecting in ${Math.round(delay / 1000)} s…`;
    await new Promise((resolve) => setTimeout(resolve, delay));
    delay = Math.min(delay * 2, STREAM_RETRY_MAX_MS);
    if (!controller.signal.aborted) refreshAll(true);
  }
}

// ---- wiring -----------------------------------------------------------------------------------

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  if (token) login(token);
});
$('add-form').addEventListener('submit', (event) => {
  event.preventDefault();
  addPi(event.target);
});
$('logout').addEventListener('click', () => logout());

if (page.token) login(page.token);
else showLogin();
