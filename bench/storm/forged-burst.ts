/**
 * Issue 19 item 7 as a model on a fake clock (no network): a burst of forged Pi DISCOVERs that
 * never fetch, then a real Pi 4 that re-sends its DISCOVER every `resendMs` until offered. Prints,
 * for the gate as the daemon wired it before (AdmissionGate counting the boot tracker's boots, a
 * silent offer released after tftpAfterOfferTimeout) and now (AdmissionControl), when the real Pi
 * got its first offer and on which DISCOVER. Both run the same code the daemon runs.
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/forged-burst.ts [FORGED] [RESEND_MS] [once|repeat] [known|unknown]
 */
import { AdmissionControl, AdmissionGate, admissionMode } from '../../packages/boot-server/src/admission.js';
import { BootTracker } from '../../packages/boot-server/src/boot-tracker.js';

const forgedCount = Math.min(Number(process.argv[2] ?? '200'), 10_000);
const resendMs = Number(process.argv[3] ?? '4000');
/** `once`: one burst; `repeat`: the forgers re-send like Pis. */
const pattern = process.argv[4] === 'repeat' ? 'repeat' : 'once';
/** `known`: the real Pi is registered and DISCOVERs from the MAC the fleet knows; `unknown`: any-pi mode, a Pi nobody registered. */
const realKnown = process.argv[5] !== 'unknown';
const real = { key: '9ffefdef', mac: 'dc:a6:32:01:02:03' };
const forged = Array.from({ length: forgedCount }, (_, i) => ({ key: `f${String(i).padStart(7, '0')}`, mac: `02:00:00:00:${(i >> 8) & 255}:${i & 255}` }));

/** The forgers re-send too (every resendMs, as a Pi would); the real Pi starts 100 ms after the burst. */
function run(admit: (pi: { key: string; mac: string; known: boolean }, now: number) => boolean, tick: (now: number) => void) {
  for (let t = 0; t <= 60_000; t += 100) {
    tick(t);
    if (t % resendMs === 0 && (t === 0 || pattern === 'repeat')) for (const f of forged) admit({ ...f, known: false }, t);
    if (t >= 100 && (t - 100) % resendMs === 0 && admit({ ...real, known: realKnown }, t)) return { firstOfferMs: t - 100, discover: (t - 100) / resendMs + 1 };
  }
  return { firstOfferMs: null, discover: null };
}

// Before (daemon at 4a1ba4c): gate.admit with the tracker's boots, tracker.admit on admission, tick each second.
const oldGate = new AdmissionGate(admissionMode('auto'));
const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000 });
const before = run(
  (pi, now) => {
    const ok = oldGate.admit({ key: pi.key, now, activeBoots: tracker.activeBoots(), bootInProgress: tracker.inProgress(pi.key) });
    if (ok) tracker.admit(pi.key, now);
    return ok;
  },
  (now) => {
    if (now % 1000 === 0) tracker.tick(now);
  },
);
const control = new AdmissionControl(new AdmissionGate(admissionMode('auto')));
const after = run((pi, now) => control.admit({ ...pi, now }), () => undefined);
process.stdout.write(`${JSON.stringify({ forged: forgedCount, resendMs, pattern, realPi: realKnown ? 'known' : 'unknown', before, after })}\n`);
