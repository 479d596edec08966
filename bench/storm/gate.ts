/**
 * Admission control for a boot storm, at the proxy offer: a Pi that gets no offer resends its
 * DISCOVER ~4 s later, so staying silent is a free, standard way to make it wait. Admitted Pis
 * ("active") keep getting offers until their kernel has been served; new Pis are let in, oldest
 * waiter first, while fewer than `capacity` are active.
 *
 * capacity: `fixed:K`, or `adaptive` = how many boots the link delivered can finish within
 * targetBootMs each (Little's law: active × bytesPerBoot / throughput ≤ targetBootMs), using the
 * TFTP bytes delivered over the last windowMs. Half the Pi's 30 s per-file limit is the target.
 */
export type GateMode = { kind: 'off' } | { kind: 'fixed'; capacity: number } | { kind: 'adaptive'; targetBootMs: number; min: number };

export function parseGate(text: string): GateMode {
  if (text === 'off') return { kind: 'off' };
  if (text === 'adaptive') return { kind: 'adaptive', targetBootMs: 15_000, min: 4 };
  const fixed = /^fixed:(\d+)$/.exec(text);
  if (fixed) return { kind: 'fixed', capacity: Math.max(1, Number(fixed[1])) };
  throw new Error(`--gate ${text}: expected off, adaptive or fixed:<n>`);
}

interface Active {
  admittedAt: number;
  lastSeen: number;
  bytes: number;
}

const KERNEL = /(^|\/)(kernel[^/]*\.img|kernel_2712\.img)$/;

export class AdmissionGate {
  private readonly active = new Map<string, Active>();
  private readonly waiting = new Map<string, { firstSeen: number; lastSeen: number }>();
  private readonly delivered: { at: number; bytes: number }[] = [];
  private bootBytes = { total: 0, boots: 0 };
  private counters = { admitted: 0, deferred: 0, booted: 0, expired: 0, maxActive: 0, maxCapacity: 0 };

  constructor(
    private readonly mode: GateMode,
    private readonly now: () => number = () => performance.now(),
    private readonly options = { windowMs: 10_000, staleActiveMs: 45_000, staleWaiterMs: 20_000, defaultBytesPerBoot: 12e6 },
  ) {}

  capacity(): number {
    switch (this.mode.kind) {
      case 'off':
        return Number.POSITIVE_INFINITY;
      case 'fixed':
        return this.mode.capacity;
      case 'adaptive': {
        const t = this.now();
        while (this.delivered.length > 0 && this.delivered[0]!.at < t - this.options.windowMs) this.delivered.shift();
        const bytes = this.delivered.reduce((sum, d) => sum + d.bytes, 0);
        const throughput = bytes / (this.options.windowMs / 1000);
        const perBoot = this.bootBytes.boots > 0 ? this.bootBytes.total / this.bootBytes.boots : this.options.defaultBytesPerBoot;
        return Math.max(this.mode.min, Math.floor((throughput * (this.mode.targetBootMs / 1000)) / perBoot));
      }
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
    // Oldest waiters first: a Pi that has waited longest takes the next free slot.
    const ahead = [...this.waiting.values()].filter((w) => w.firstSeen < waiter.firstSeen).length;
    if (free <= 0 || ahead >= free) {
      this.counters.deferred++;
      return false;
    }
    this.waiting.delete(key);
    this.active.set(key, { admittedAt: t, lastSeen: t, bytes: 0 });
    this.counters.admitted++;
    this.counters.maxActive = Math.max(this.counters.maxActive, this.active.size);
    return true;
  }

  transferStarted(_id: number, serial: string | undefined): void {
    const entry = serial ? this.active.get(serial) : undefined;
    if (entry) entry.lastSeen = this.now();
  }

  /** Every TFTP transfer end: delivered bytes feed the throughput; a served kernel ends that Pi's boot. */
  transferEnded(_id: number, serial: string | undefined, file: string, bytes: number, complete: boolean): void {
    const t = this.now();
    if (bytes > 0) this.delivered.push({ at: t, bytes });
    const entry = serial ? this.active.get(serial) : undefined;
    if (!entry || !serial) return;
    entry.lastSeen = t;
    entry.bytes += bytes;
    if (complete && KERNEL.test(file)) {
      this.active.delete(serial);
      this.bootBytes.total += entry.bytes;
      this.bootBytes.boots++;
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
    return { ...this.counters, active: this.active.size, waiting: this.waiting.size };
  }
}
