/**
 * Issue 19 item 7 as a model on a fake clock (no network): a burst of forged Pi DISCOVERs that
 * never fetch, then a real Pi 4 that re-sends its DISCOVER every `resendMs` until offered. Prints,
 * for three versions of the daemon's gate, when the real Pi got its first offer and on which
 * DISCOVER; all three run the daemon's own code:
 * - `tracker`: before issue 19 (AdmissionGate counting the boot tracker's boots; a silent offer
 *   held its slot for tftpAfterOfferTimeout);
 * - `slots`: AdmissionControl without the newcomer lane (newcomerSlots 0);
 * - `lane`: AdmissionControl as the daemon runs it.
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/forged-burst.ts \
 *     [FORGED] [RESEND_MS] [once|repeat|rotate] [known|unknown] [REAL_PI_AFTER_MS]
 * The wire version of this (the daemon in namespaces) is forged-wire.ts.
 */
import { AdmissionControl } from '../../packages/boot-server/src/admission-control.js';
import { AdmissionGate, admissionMode } from '../../packages/boot-server/src/admission.js';
import { BootTracker } from '../../packages/boot-server/src/boot-tracker.js';

const forgedCount = Math.min(Number(process.argv[2] ?? '200'), 10_000);
const resendMs = Number(process.argv[3] ?? '4000');
/** `once`: one burst; `repeat`: the forgers re-send like Pis; `rotate`: a burst of new keys every resendMs. */
const pattern = process.argv[4] === 'repeat' || process.argv[4] === 'rotate' ? process.argv[4] : 'once';
/** `known`: the real Pi is registered and DISCOVERs from the MAC the fleet knows; `unknown`: any-pi mode, a Pi nobody registered. */
const realKnown = process.argv[5] !== 'unknown';
/** When the real Pi powers on after the burst (a multiple of the 100 ms tick). */
const realAfterMs = Math.max(100, Math.round(Number(process.argv[6] ?? '100') / 100) * 100);
const real = { key: '9ffefdef', mac: 'dc:a6:32:01:02:03' };
const forger = (i: number) => ({ key: `f${String(i).padStart(7, '0')}`, mac: `02:00:00:${(i >> 16) & 255}:${(i >> 8) & 255}:${i & 255}` });
const forgersOfRound = (round: number) =>
  Array.from({ length: forgedCount }, (_, i) => forger((pattern === 'rotate' ? round * forgedCount : 0) + i));

type Admit = (pi: { key: string; mac: string; known: boolean }, now: number) => boolean;

/** The forgers re-send too (every resendMs, as a Pi would); bounded at 60 s of fake time. */
function run(admit: Admit, tick: (now: number) => void = () => undefined) {
  for (let t = 0; t <= 60_000; t += 100) {
    tick(t);
    if (t % resendMs === 0 && (t === 0 || pattern !== 'once')) {
      for (const f of forgersOfRound(t / resendMs)) admit({ ...f, known: false }, t);
    }
    if (t >= realAfterMs && (t - realAfterMs) % resendMs === 0 && admit({ ...real, known: realKnown }, t)) {
      return { firstOfferMs: t - realAfterMs, discover: (t - realAfterMs) / resendMs + 1 };
    }
  }
  return { firstOfferMs: null, discover: null };
}

const oldGate = new AdmissionGate(admissionMode('auto'));
const tracker = new BootTracker({ tftpAfterOfferTimeoutMs: 10_000 });
const trackerRun = run(
  (pi, now) => {
    const ok = oldGate.admit({ key: pi.key, now, activeBoots: tracker.activeBoots(), bootInProgress: tracker.inProgress(pi.key) });
    if (ok) tracker.admit(pi.key, now);
    return ok;
  },
  (now) => {
    if (now % 1000 === 0) tracker.tick(now);
  },
);
const control = (newcomerSlots?: number): Admit => {
  const admission = new AdmissionControl(new AdmissionGate(admissionMode('auto')), newcomerSlots === undefined ? {} : { newcomerSlots });
  return (pi, now) => admission.admit({ ...pi, now });
};
const result = {
  forged: forgedCount,
  resendMs,
  pattern,
  realPi: realKnown ? 'known' : 'unknown',
  realPiAfterMs: realAfterMs,
  tracker: trackerRun,
  slots: run(control(0)),
  lane: run(control()),
};
process.stdout.write(`${JSON.stringify(result)}\n`);
