// A Pi's boot state as the operator sees it (issue 15): one machine for the fleet page and the MQTT
// state topic, so the two cannot disagree. Pure and import-free on purpose: the page's copy,
// web/boot-state.js, is generated from this file by scripts/web-boot-state.mjs, and
// test/web.test.ts fails when that copy is stale.

/** idle (nothing seen), waiting (held at the boot-storm gate), booting, booted, failed. */
export type BootStateName = 'idle' | 'waiting' | 'booting' | 'booted' | 'failed';

export interface BootState {
  state: BootStateName;
  /** When the last boot completed (ms since the epoch), and how long it took. */
  lastBoot?: number;
  lastBootMs?: number;
  /** When the gate first deferred the current boot. */
  gateSince?: number;
  /** How long the gate held the current boot back, measured at its offer. */
  gateWaitMs?: number;
  /** Why the last boot failed. */
  reason?: string;
}

/** The fields the machine reads: live events carry `at` in ms, stored timeline entries as an ISO string. */
export interface BootStateEvent {
  at: number | string;
  reason?: string;
  ms?: number;
}

export const IDLE: BootState = Object.freeze({ state: 'idle' });

/** Files served this soon after a completed boot (initramfs, late overlays) still belong to it. */
export const AFTER_BOOT_MS = 60_000;

/** Milliseconds since the epoch from a number or an ISO string. */
export function timeOf(at: number | string): number {
  return typeof at === 'number' ? at : Date.parse(at);
}

/** `previous` without the current boot's gate and failure fields. */
function newBoot(previous: BootState): BootState {
  const next = { ...previous };
  delete next.gateSince;
  delete next.reason;
  return next;
}

/**
 * The state after one more event. Returns `previous` itself when the event changes nothing, so a
 * caller can tell a change by identity (MQTT publishes only changes).
 */
export function nextBootState(previous: BootState, type: string, event: BootStateEvent): BootState {
  const at = timeOf(event.at);
  switch (type) {
    case 'dhcp-ignored':
      if (event.reason !== 'deferred' || previous.state === 'waiting') return previous;
      return { ...previous, state: 'waiting', gateSince: at };
    case 'offer-sent': {
      if (previous.state === 'booting') return previous;
      const next = newBoot(previous);
      delete next.gateWaitMs;
      if (previous.gateSince !== undefined) next.gateWaitMs = at - previous.gateSince;
      return { ...next, state: 'booting' };
    }
    case 'transfer-started':
    case 'file-served': {
      // TFTP alone (no DHCP seen, e.g. TFTP-only mode) starts a boot too.
      const lateFile = previous.state === 'booted' && previous.lastBoot !== undefined && at - previous.lastBoot < AFTER_BOOT_MS;
      if (lateFile || previous.state === 'booting') return previous;
      return { ...newBoot(previous), state: 'booting' };
    }
    case 'boot-complete': {
      const next: BootState = { ...newBoot(previous), state: 'booted', lastBoot: at };
      if (event.ms !== undefined) next.lastBootMs = event.ms;
      return next;
    }
    case 'boot-failed': {
      const next: BootState = { ...previous, state: 'failed' };
      delete next.gateSince;
      if (event.reason !== undefined) next.reason = event.reason;
      return next;
    }
    default:
      return previous;
  }
}

/** The state a list of events (oldest first, each with its `type`) ends in. */
export function bootStateOf(entries: ReadonlyArray<BootStateEvent & { type: string }>): BootState {
  return entries.reduce((boot, entry) => nextBootState(boot, entry.type, entry), IDLE);
}
