/**
 * Admission control for a boot storm, at the proxy offer: a Pi that gets no offer resends its
 * DISCOVER ~4 s later, so staying silent is a free, standard way to make it wait. Admitted Pis
 * ("active") keep getting offers until their kernel has been served; new Pis are let in, oldest
 * waiter first, while fewer than `capacity` are active.
 *
 * capacity: `fixed:K`, or `adaptive`: steered on what matters to the Pi, the time its kernel
 * transfer took (the largest file, the one that meets the 30 s per-file limit first), by the
 * daemon's own rule (`steerCapacity`, packages/boot-server/src/admission.ts: ramp while Pis wait,
 * +1 per fast kernel, ×0.75 per slow one, floor 8), with a ceiling of 1024 instead of 256 so the
 * bench can see where the CPU gives out. It needs no knowledge of the link rate.
 * The floor matters on a lossy link: there loss stalls, not sharing, make kernels slow, and
 * cutting concurrency would only idle the link (a first version with floor 2 and a 15 s target
 * starved the lossy profile at 2 Pis).
 */
import { DEFAULT_ADAPTIVE_TUNING, steerCapacity } from '@iot-tofu/boot-server';
import type { AdaptiveTuning, SteerState } from '@iot-tofu/boot-server';

export type GateMode =
  | { kind: 'off' }
  | { kind: 'fixed'; capacity: number }
  | { kind: 'adaptive'; tuning: AdaptiveTuning };

export function parseGate(text: string): GateMode {
  if (text === 'off') return { kind: 'off' };
  if (text === 'adaptive') return { kind: 'adaptive', tuning: { ...DEFAULT_ADAPTIVE_TUNING, max: 1024 } };
  const fixed = /^fixed:(\d+)$/.exec(text);
  if (fixed) return { kind: 'fixed', capacity: Math.max(1, Number(fixed[1])) };
  throw new Error(`--gate ${text}: expected off, adaptive or fixed:<n>`);
}

interface Active {
  admittedAt: number;
  lastSeen: number;
}

const KERNEL = /(^|\/)(kernel[^/]*\.img|kernel_2712\.img)$/;

export class AdmissionGate {
  private readonly active = new Map<string, Active>();
  private readonly waiting = new Map<string, { firstSeen: number; lastSeen: number }>();
  private steering: SteerState;
  private counters = { admitted: 0, deferred: 0, booted: 0, expired: 0, maxActive: 0, maxCapacity: 0 };

  constructor(
    private readonly mode: GateMode,
    private readonly now: () => number = () => performance.now(),
    private readonly options = { staleActiveMs: 45_000, staleWaiterMs: 30_000, discoverGapMs: 4500 },
  ) {
    this.steering = { capacity: mode.kind === 'adaptive' ? mode.tuning.initial : 0, lastCutAt: Number.NEGATIVE_INFINITY };
  }

  capacity(): number {
    switch (this.mode.kind) {
      case 'off':
        return Number.POSITIVE_INFINITY;
      case 'fixed':
        return this.mode.capacity;
      case 'adaptive':
        return this.steering.capacity;
    }
  }

  private steer(kernelMs: number): void {
    if (this.mode.kind !== 'adaptive') return;
    this.steering = steerCapacity(this.steering, { kind: 'served', ms: kernelMs }, this.now(), this.mode.tuning, this.waiting.size > 0);
  }

  /** The proxy's question for a DISCOVER: offer now (true) or stay silent (false)? */
  admit(key: string): boolean {
    const t = this.now();
    this.expire(t);
    const known = this.active.get(key);
    if (known) {
      known.lastSeen = t;
      return true;
    }
    const waiter = this.waiting.get(key) ?? { firstSeen: t, lastSeen: t };
    waiter.lastSeen = t;
    this.waiting.set(key, waiter);
    const capacity = this.capacity();
    this.counters.maxCapacity = Math.max(this.counters.maxCapacity, Number.isFinite(capacity) ? capacity : 0);
    const free = capacity - this.active.size;
    // Oldest waiters first: a Pi that has waited longest takes the next free slot. Only waiters
    // still sending DISCOVERs hold a place; one in its 5 s back-off after a DHCP timeout keeps its
    // seniority but does not leave the slot idle meanwhile.
    const ahead = [...this.waiting.values()].filter((w) => w.firstSeen < waiter.firstSeen && t - w.lastSeen <= this.options.discoverGapMs).length;
    if (free <= 0 || ahead >= free) {
      this.counters.deferred++;
      return false;
    }
    this.waiting.delete(key);
    this.active.set(key, { admittedAt: t, lastSeen: t });
    this.counters.admitted++;
    this.counters.maxActive = Math.max(this.counters.maxActive, this.active.size);
    return true;
  }

  transferStarted(_id: number, serial: string | undefined): void {
    const entry = serial ? this.active.get(serial) : undefined;
    if (entry) entry.lastSeen = this.now();
  }

  /** Every TFTP transfer end: a served kernel ends that Pi's boot and steers the adaptive capacity. */
  transferEnded(_id: number, serial: string | undefined, file: string, durationMs: number, complete: boolean): void {
    const t = this.now();
    const isKernel = KERNEL.test(file);
    if (complete && isKernel) {
      this.expire(t);
      this.steer(durationMs);
    }
    const entry = serial ? this.active.get(serial) : undefined;
    if (!entry || !serial) return;
    entry.lastSeen = t;
    if (complete && isKernel) {
      this.active.delete(serial);
      this.counters.booted++;
    }
  }

  private expire(t: number): void {
    for (const [key, entry] of this.active) {
      if (t - entry.lastSeen > this.options.staleActiveMs) {
        this.active.delete(key);
        this.counters.expired++;
      }
    }
    for (const [key, waiter] of this.waiting) if (t - waiter.lastSeen > this.options.staleWaiterMs) this.waiting.delete(key);
  }

  stats(): Record<string, number> {
    return { ...this.counters, active: this.active.size, waiting: this.waiting.size, capacity: Number.isFinite(this.capacity()) ? this.capacity() : -1 };
  }
}
