/**
 * Admission control for a boot storm, at the proxy offer: a Pi that gets no offer resends its
 * DISCOVER ~4 s later, so staying silent is a free, standard way to make it wait. Admitted Pis
 * ("active") keep getting offers until their kernel has been served; new Pis are let in, oldest
 * waiter first, while fewer than `capacity` are active.
 *
 * capacity: `fixed:K`, or `adaptive`: start at `initial` and steer on what matters to the Pi, the
 * time its kernel transfer took (the largest file, the one that meets the 30 s per-file limit
 * first): one more slot per kernel served in under 12 s, three quarters of the slots (at most once
 * per cooldown, never below `min`) when one took over 20 s. Until the first cut (the ramp) a kernel
 * served in `ms` adds floor(24 s / ms) − 1 slots (1..`rampMaxGain`): one round of kernels multiplies
 * the capacity by 24 s / ms. Growth past the initial capacity only while some Pi waits for a slot. It needs no knowledge of
 * the link rate. Mirrors steerCapacity in packages/boot-server/src/admission.ts.
 * The floor matters on a lossy link: there loss stalls, not sharing, make kernels slow, and
 * cutting concurrency would only idle the link (a first version with floor 2 and a 15 s target
 * starved the lossy profile at 2 Pis).
 */
export type GateMode =
  | { kind: 'off' }
  | { kind: 'fixed'; capacity: number }
  | { kind: 'adaptive'; initial: number; min: number; max: number; growBelowMs: number; rampTargetMs: number; rampMaxGain: number; rampRearmMs: number; cutAboveMs: number; cooldownMs: number };

export function parseGate(text: string): GateMode {
  if (text === 'off') return { kind: 'off' };
  if (text === 'adaptive') return { kind: 'adaptive', initial: 16, min: 8, max: 1024, growBelowMs: 12_000, rampTargetMs: 24_000, rampMaxGain: 15, rampRearmMs: 600_000, cutAboveMs: 20_000, cooldownMs: 10_000 };
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
  private adaptiveCapacity: number;
  private lastDecrease = Number.NEGATIVE_INFINITY;
  private counters = { admitted: 0, deferred: 0, booted: 0, expired: 0, maxActive: 0, maxCapacity: 0 };

  constructor(
    private readonly mode: GateMode,
    private readonly now: () => number = () => performance.now(),
    private readonly options = { staleActiveMs: 45_000, staleWaiterMs: 30_000, discoverGapMs: 4500 },
  ) {
    this.adaptiveCapacity = mode.kind === 'adaptive' ? mode.initial : 0;
  }

  capacity(): number {
    switch (this.mode.kind) {
      case 'off':
        return Number.POSITIVE_INFINITY;
      case 'fixed':
        return this.mode.capacity;
      case 'adaptive':
        return this.adaptiveCapacity;
    }
  }

  private steer(kernelMs: number): void {
    if (this.mode.kind !== 'adaptive') return;
    const t = this.now();
    if (kernelMs > this.mode.cutAboveMs) {
      if (t - this.lastDecrease < this.mode.cooldownMs) return;
      this.lastDecrease = t;
      this.adaptiveCapacity = Math.max(this.mode.min, Math.floor(this.adaptiveCapacity * 0.75));
    } else if (kernelMs < this.mode.growBelowMs) {
      // Nobody waiting: back up to the initial capacity at most (the daemon's steerCapacity).
      if (this.waiting.size === 0) {
        if (this.adaptiveCapacity < this.mode.initial) this.adaptiveCapacity++;
        return;
      }
      const ramping = t - this.lastDecrease >= this.mode.rampRearmMs;
      const projected = kernelMs > 0 ? Math.floor(this.mode.rampTargetMs / kernelMs) - 1 : this.mode.rampMaxGain;
      const gain = ramping ? Math.max(1, Math.min(this.mode.rampMaxGain, projected)) : 1;
      this.adaptiveCapacity = Math.min(this.mode.max, this.adaptiveCapacity + gain);
    }
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
