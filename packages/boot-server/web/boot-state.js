// Generated from src/boot-state.ts by scripts/web-boot-state.mjs: edit that file, then run the script.
export const IDLE = Object.freeze({ state: 'idle' });
export const AFTER_BOOT_MS = 60_000;
export function timeOf(at) {
  return typeof at === 'number' ? at : Date.parse(at);
}
function newBoot(previous) {
  const next = { ...previous };
  delete next.gateSince;
  delete next.reason;
  return next;
}
export function nextBootState(previous, type, event) {
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
      const lateFile = previous.state === 'booted' && previous.lastBoot !== undefined && at - previous.lastBoot < AFTER_BOOT_MS;
      if (lateFile || previous.state === 'booting') return previous;
      return { ...newBoot(previous), state: 'booting' };
    }
    case 'boot-complete': {
      const next = { ...newBoot(previous), state: 'booted', lastBoot: at };
      if (event.ms !== undefined) next.lastBootMs = event.ms;
      return next;
    }
    case 'boot-failed': {
      const next = { ...previous, state: 'failed' };
      delete next.gateSince;
      if (event.reason !== undefined) next.reason = event.reason;
      return next;
    }
    default:
      return previous;
  }
}
export function bootStateOf(entries) {
  return entries.reduce((boot, entry) => nextBootState(boot, entry.type, entry), IDLE);
}
