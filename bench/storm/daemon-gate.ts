/**
 * The daemon's admission gate (packages/boot-server/src/admission.ts and admission-control.ts),
 * wired to our TftpServer's events the way daemon.ts wires it, for `ours-script` (ours.ts). There
 * is no second gate: only the wiring and the bench's counters live here. The daemon learns a boot's
 * end from its boot tracker; the bench has no tracker and ends it at the kernel, which is what the
 * tracker does for a Pi 4.
 */
import { AdmissionControl, type SlotTiming } from '../../packages/boot-server/src/admission-control.js';
import { AdmissionGate, DEFAULT_ADAPTIVE_TUNING, type AdmissionMode } from '../../packages/boot-server/src/admission.js';

/** `--gate off|adaptive|fixed:K`. Adaptive has a ceiling of 1024 instead of 256, so the bench can see where the CPU gives out. */
export function parseGate(text: string): AdmissionMode {
  if (text === 'off') return { kind: 'off' };
  if (text === 'adaptive') return { kind: 'adaptive', tuning: { ...DEFAULT_ADAPTIVE_TUNING, max: 1024 } };
  const fixed = /^fixed:(\d+)$/.exec(text);
  if (fixed) return { kind: 'fixed', budget: Math.max(1, Number(fixed[1])) };
  throw new Error(`--gate ${text}: expected off, adaptive or fixed:<n>`);
}

const KERNEL = /(^|\/)(kernel[^/]*\.img|kernel_2712\.img)$/;

export class BenchGate {
  readonly gate: AdmissionGate;
  private readonly control: AdmissionControl;
  private counters = { admitted: 0, deferred: 0, booted: 0, maxActive: 0, maxCapacity: 0 };

  constructor(
    mode: AdmissionMode,
    private readonly now: () => number = () => performance.now(),
    slotTiming: Partial<SlotTiming> = {},
  ) {
    this.gate = new AdmissionGate(mode);
    this.control = new AdmissionControl(this.gate, slotTiming);
  }

  /** The proxy's question for a DISCOVER (key: serial, else MAC). Every Pi is unregistered (any-pi mode, empty fleet). */
  admit(key: string, mac: string): boolean {
    const t = this.now();
    const ok = this.control.admit({ key, mac, known: false, now: t });
    if (ok) this.counters.admitted++;
    else this.counters.deferred++;
    const capacity = this.gate.capacity();
    this.counters.maxCapacity = Math.max(this.counters.maxCapacity, Number.isFinite(capacity) ? capacity : 0);
    this.counters.maxActive = Math.max(this.counters.maxActive, this.control.active(t));
    return ok;
  }

  transferStarted(serial: string | undefined): void {
    if (serial) this.control.fetched(serial, this.now());
  }

  /** Every TFTP transfer end: a served kernel ends that Pi's boot and steers the adaptive capacity; a kernel that timed out cuts it. */
  transferEnded(serial: string | undefined, file: string, durationMs: number, outcome: 'served' | 'timed-out' | 'failed'): void {
    const t = this.now();
    if (!KERNEL.test(file)) {
      if (serial) this.control.fetched(serial, t);
      return;
    }
    if (outcome === 'served') {
      this.gate.observeKernel({ kind: 'served', ms: durationMs }, t);
      if (serial) this.control.release(serial);
      this.counters.booted++;
    } else if (outcome === 'timed-out') this.gate.observeKernel({ kind: 'timed-out' }, t);
  }

  stats(): Record<string, number> {
    const t = this.now();
    const capacity = this.gate.capacity();
    const active = this.control.active(t);
    return { ...this.counters, active, waiting: this.gate.snapshot(t).waiting, capacity: Number.isFinite(capacity) ? capacity : -1 };
  }
}
