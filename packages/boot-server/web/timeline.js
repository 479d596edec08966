// Pure helpers of the fleet page: reading the event stream, following each Pi's boot state and
// describing timeline entries. No DOM here, so test/web.test.ts runs them under Node. The boot state
// itself is the daemon's machine (boot-state.js, generated from src/boot-state.ts), and every event
// arrives with the serial the daemon resolved for it.
import { timeOf } from './boot-state.js';

/** Entries kept per Pi; older ones drop off (the server keeps the full timeline). */
export const TIMELINE_LIMIT = 200;

/**
 * Splits buffered event-stream text into complete messages; returns them and the unfinished rest.
 * Comments (`: keep-alive`) and blocks without data are skipped.
 */
export function readSseMessages(buffer) {
  const text = buffer.replace(/\r\n?/g, '\n');
  const messages = [];
  let start = 0;
  for (let cut = text.indexOf('\n\n'); cut >= 0; cut = text.indexOf('\n\n', start)) {
    const message = parseSseBlock(text.slice(start, cut));
    if (message) messages.push(message);
    start = cut + 2;
  }
  return { messages, rest: text.slice(start) };
}

/** One `event:` + `data:` block → { event, data } (data parsed as JSON), or null. */
export function parseSseBlock(block) {
  let event = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line === '' || line.startsWith(':')) continue;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
    if (field === 'event') event = value;
    else if (field === 'data') data.push(value);
  }
  if (data.length === 0) return null;
  try {
    return { event, data: JSON.parse(data.join('\n')) };
  } catch {
    return null;
  }
}

/**
 * A stored timeline ({ type, event } entries, oldest first) followed by the live entries that came
 * while it loaded; a live entry the store already holds (same type, time and file) is left out.
 */
export function mergeTimeline(stored, live) {
  const key = ({ type, event }) => `${type} ${timeOf(event.at)} ${event.file ?? ''}`;
  const known = new Set(stored.map(key));
  return [...stored, ...live.filter((entry) => !known.has(key(entry)))];
}

/** `3000000` → `2.9 MiB`. */
export function formatBytes(bytes) {
  if (typeof bytes !== 'number') return '';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** `1234` → `1.2 s`, `87` → `87 ms`. */
export function formatMs(ms) {
  if (typeof ms !== 'number') return '';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The file's path without the serial folder the daemon found it in. */
function fileName({ file, serial }) {
  if (typeof file !== 'string') return '';
  const path = file.replace(/^\/+/, '');
  return serial && path.startsWith(`${serial}/`) ? path.slice(serial.length + 1) : path;
}

/**
 * One timeline row: { what, file, bytes, time, retries, note } as text, or null for events the
 * timeline leaves out (transfer starts: the served or failed entry follows). `boot` is the state
 * before this event (for the gate's wait).
 */
export function describeEntry(type, event, boot = {}) {
  const row = { what: type, file: fileName(event), bytes: '', time: '', retries: '', note: '' };
  switch (type) {
    case 'pi-seen':
      return { ...row, what: 'DHCP discover', note: event.answered ? 'answered' : 'not answered' };
    case 'dhcp-ignored':
      if (event.reason === 'deferred') return { ...row, what: 'gate: waiting', note: 'held by the boot-storm gate until a slot frees' };
      return { ...row, what: 'not answered', note: event.reason ?? '' };
    case 'offer-sent': {
      const waited = boot.gateSince !== undefined ? `waited ${formatMs(timeOf(event.at) - boot.gateSince)} at the gate` : '';
      return { ...row, what: event.messageType === 'ack' ? 'proxy ACK' : 'proxy offer', note: waited };
    }
    case 'transfer-started':
      return null;
    case 'file-served':
      return {
        ...row,
        what: 'file served',
        bytes: formatBytes(event.bytes),
        time: formatMs(event.ms),
        retries: String(event.retries ?? 0),
      };
    case 'transfer-failed':
      // The firmware asks for a file's size and ends the transfer after the answer: not a failure.
      if (event.kind === 'aborted' && /Early terminate/i.test(event.reason ?? '')) return { ...row, what: 'size probe' };
      return { ...row, what: `file ${event.kind ?? 'failed'}`, retries: String(event.retries ?? 0), note: event.reason ?? '' };
    case 'boot-complete':
      return { ...row, what: 'booted', time: formatMs(event.ms) };
    case 'boot-failed':
      return { ...row, what: 'boot failed', note: event.reason ?? '' };
    default:
      return { ...row, note: event.reason ?? '' };
  }
}
