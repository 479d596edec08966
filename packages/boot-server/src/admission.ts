/** What the admission gate knows when a Pi's DISCOVER arrives. */
export interface AdmissionState {
  /** Most Pis booting at once (offer to kernel); 0 = no gate. */
  budget: number;
  /** Pis between admission and kernel right now. */
  activeBoots: number;
  /** A Pi already between offer and kernel is never turned away (its retries must succeed). */
  bootInProgress: boolean;
}

/**
 * Boot-storm pacing: a Pi that has not started booting gets no offer while `budget` Pis are already
 * booting; its bootloader re-sends the DISCOVER a few seconds later and tries again. Silence is the
 * standard way to make a PXE client wait. Pure, so the table test pins it.
 */
export function admitNewPi(state: AdmissionState): boolean {
  if (state.budget <= 0) return true;
  if (state.bootInProgress) return true;
  return state.activeBoots < state.budget;
}

/** The `admissionBudget` config value: a fixed number of Pis (0 = off) or `"auto"` (adaptive). */
export type AdmissionBudget = number | 'auto';

/** The Pi bootloader gives up on a file that takes longer than this (docs/pi-netboot-protocol.md 3.4). */
export const PI_FILE_LIMIT_MS = 30_000;

/** How the adaptive gate steers its capacity on observed kernel transfer times. */
export interface AdaptiveTuning {
  /** Capacity at start (and after a switch from a fixed budget). */
  initial: number;
  /** Never fewer slots: on a lossy link slow kernels come from loss stalls, not sharing. */
  min: number;
  max: number;
  /** One more slot per kernel served faster than this (more during the ramp, see `rampTargetMs`). */
  growBelowMs: number;
  /**
   * Ramp (slow start, until a cut; back `rampRearmMs` after it): a kernel served in `ms` adds floor(rampTargetMs / ms) − 1
   * slots instead of one (at least 1, at most `rampMaxGain`). One round of kernels multiplies the
   * capacity by rampTargetMs / ms: had the link been shared that many times more ways, the kernels
   * would have taken about rampTargetMs.
   */
  rampTargetMs: number;
  /** Most slots one kernel adds during the ramp; 1 = no ramp (additive only). */
  rampMaxGain: number;
  /**
   * The ramp is back this long after the last cut: a storm days later is a new one and must not
   * crawl up by one slot per kernel because an old storm once cut.
   */
  rampRearmMs: number;
  /** Cut to `cutFactor` of the slots when a kernel took longer than this (or its transfer timed out). */
  cutAboveMs: number;
  cutFactor: number;
  /** At most one cut per this long: the kernels in flight at a cut were admitted under the old capacity. */
  cooldownMs: number;
}

/**
 * Thresholds relative to the Pi's 30 s per-file limit (40 % grow, 67 % cut), no link rate needed.
 * The boot-storm bench (bench/storm) measured these on lan100, lan1000 and lossy (floor 8; a floor of 2 starved
 * the lossy link). The ceiling bounds how many lock-step transfers two cores are asked to drive.
 * The ramp projects onto 80 % of the limit, above the cut: the projection overestimates (a
 * kernel's fixed per-transfer cost does not grow with sharing; on lan1000, 1.8 s at 16 Pis became
 * 17.7 s at 174, not the 20 s projected), and aimed at 20 s it left ~10 of 200 Pis a whole boot
 * behind. A ramp that does overshoot meets the cut. Its gain of 15 (×16 per round) is reached by
 * kernels under 1.5 s (bench/results/boot-storm-gate-*.md).
 */
export const DEFAULT_ADAPTIVE_TUNING: Readonly<AdaptiveTuning> = Object.freeze({
  initial: 16,
  min: 8,
  max: 256,
  growBelowMs: PI_FILE_LIMIT_MS * 0.4,
  rampTargetMs: PI_FILE_LIMIT_MS * 0.8,
  rampMaxGain: 15,
  rampRearmMs: 10 * 60_000,
  cutAboveMs: (PI_FILE_LIMIT_MS * 2) / 3,
  cutFactor: 0.75,
  cooldownMs: 10_000,
});

export type AdmissionMode = { kind: 'off' } | { kind: 'fixed'; budget: number } | { kind: 'adaptive'; tuning: AdaptiveTuning };

export function admissionMode(budget: AdmissionBudget, tuning: AdaptiveTuning = DEFAULT_ADAPTIVE_TUNING): AdmissionMode {
  if (budget === 'auto') return { kind: 'adaptive', tuning };
  return budget <= 0 ? { kind: 'off' } : { kind: 'fixed', budget };
}

/** What a finished (or failed) kernel transfer tells the adaptive gate. */
export type KernelSample = { kind: 'served'; ms: number } | { kind: 'timed-out' };

export interface SteerState {
  capacity: number;
  /** When the capacity was last cut (ms on the gate's clock); -Infinity = never, the ramp is on. */
  lastCutAt: number;
}

/** The steering state of a fresh adaptive gate: initial capacity, ramp on. */
export function initialSteerState(tuning: AdaptiveTuning): SteerState {
  return { capacity: tuning.initial, lastCutAt: Number.NEGATIVE_INFINITY };
}

/**
 * One steering step (pure). A slow or timed-out kernel cuts (at most once per cooldown, and ends
 * the ramp until `rampRearmMs` has passed); a kernel served under the grow threshold adds one slot, or during the ramp
 * as many as its speed projects (see `rampTargetMs`). Growth past `initial` needs `gateLimited`
 * (some Pi is waiting for a slot): kernels served fast because few Pis boot say little about a
 * storm, and a capacity grown on them would let the next storm in unpaced. Always within [min, max].
 */
export function steerCapacity(
  state: SteerState,
  sample: KernelSample,
  now: number,
  tuning: AdaptiveTuning,
  gateLimited = true,
): SteerState {
  const slow = sample.kind === 'timed-out' || sample.ms > tuning.cutAboveMs;
  if (slow) {
    if (now - state.lastCutAt < tuning.cooldownMs) return state;
    return { capacity: Math.max(tuning.min, Math.floor(state.capacity * tuning.cutFactor)), lastCutAt: now };
  }
  if (sample.ms >= tuning.growBelowMs) return state;
  // With nobody waiting, a fast kernel restores the capacity up to its initial value, no further:
  // months of one-at-a-time boots must not grow it to `max` and let the next storm in unpaced.
  if (!gateLimited) return state.capacity < tuning.initial ? { ...state, capacity: state.capacity + 1 } : state;
  const ramping = now - state.lastCutAt >= tuning.rampRearmMs;
  const projected = sample.ms > 0 ? Math.floor(tuning.rampTargetMs / sample.ms) - 1 : tuning.rampMaxGain;
  const gain = ramping ? Math.max(1, Math.min(tuning.rampMaxGain, projected)) : 1;
  return { ...state, capacity: Math.min(tuning.max, state.capacity + gain) };
}

/** A Pi waiting for a slot. */
interface Waiter {
  firstSeen: number;
  lastSeen: number;
  priority: number;
  /** Arrival order (ties in firstSeen are common in a burst). */
  order: number;
}

export interface AdmissionRequest {
  /** Serial, else MAC: one per Pi. */
  key: string;
  now: number;
  /** Pis between admission and kernel right now (the boot tracker counts them). */
  activeBoots: number;
  bootInProgress: boolean;
  /** Lower goes first (see AdmissionControl): 0 a registered Pi as we know it, 1 other, 2 one whose last offer went unused. */
  priority?: number;
}

export interface AdmissionSnapshot {
  mode: AdmissionMode['kind'];
  /** Pis allowed to boot at once; Infinity when the gate is off. */
  capacity: number;
  /** Pis that asked within the last `forgetWaiterMs` and were not let in yet. */
  waiting: number;
}

export interface GateTiming {
  /** A waiter whose last DISCOVER is older than this is in its back-off (after a 45 s DHCP timeout) and holds no place in line. */
  discoverGapMs: number;
  /** A waiter silent for this long has gone away (or booted from someone else). */
  forgetWaiterMs: number;
  /** Bound on remembered waiters (spoofed DISCOVERs must not grow memory). */
  maxWaiters: number;
}

export const DEFAULT_GATE_TIMING: Readonly<GateTiming> = Object.freeze({ discoverGapMs: 4500, forgetWaiterMs: 30_000, maxWaiters: 10_000 });

/**
 * The daemon's boot-storm gate at the proxy offer. Capacity is fixed, off, or adaptive (steered by
 * kernel transfer times, see steerCapacity). Free slots go to the oldest waiter first: a Pi sends
 * DISCOVERs for 45 s before its DHCP times out, so first come first served keeps each Pi's wait
 * short of that whenever slots free up at all. Time comes in with every call (fake clocks in tests).
 */
export class AdmissionGate {
  private mode: AdmissionMode;
  private steer: SteerState;
  private readonly waiters = new Map<string, Waiter>();
  private readonly timing: GateTiming;
  private arrivals = 0;

  constructor(mode: AdmissionMode, timing: Partial<GateTiming> = {}) {
    this.mode = mode;
    this.timing = { ...DEFAULT_GATE_TIMING, ...timing };
    this.steer = mode.kind === 'adaptive' ? initialSteerState(mode.tuning) : { capacity: 0, lastCutAt: Number.NEGATIVE_INFINITY };
  }

  /** SIGHUP: a new mode applies at once; an adaptive gate that stays adaptive keeps what it learnt. */
  setMode(mode: AdmissionMode): void {
    const wasAdaptive = this.mode.kind === 'adaptive';
    this.mode = mode;
    if (mode.kind !== 'adaptive') return;
    const { min, max } = mode.tuning;
    this.steer = wasAdaptive
      ? { ...this.steer, capacity: Math.min(max, Math.max(min, this.steer.capacity)) }
      : initialSteerState(mode.tuning);
  }

  get kind(): AdmissionMode['kind'] {
    return this.mode.kind;
  }

  capacity(): number {
    switch (this.mode.kind) {
      case 'off':
        return Number.POSITIVE_INFINITY;
      case 'fixed':
        return this.mode.budget;
      case 'adaptive':
        return this.steer.capacity;
    }
  }

  /** The proxy's question for a DISCOVER: offer now (true) or stay silent (false)? */
  admit(request: AdmissionRequest): boolean {
    const { key, now } = request;
    if (this.mode.kind === 'off' || request.bootInProgress) {
      this.waiters.delete(key);
      return true;
    }
    this.forget(now);
    const waiter = this.waiters.get(key) ?? { firstSeen: now, lastSeen: now, priority: 0, order: this.arrivals++ };
    waiter.lastSeen = now;
    waiter.priority = request.priority ?? 0;
    if (!this.waiters.has(key)) {
      if (this.waiters.size >= this.timing.maxWaiters) return false;
      this.waiters.set(key, waiter);
    }
    const free = this.capacity() - request.activeBoots;
    if (free <= 0) return false;
    // Waiters of a better priority, then older ones, still sending DISCOVERs take the free slots
    // first; one in its back-off keeps its seniority but does not leave a slot idle meanwhile.
    let ahead = 0;
    for (const other of this.waiters.values()) {
      if (other === waiter || now - other.lastSeen > this.timing.discoverGapMs) continue;
      if (other.priority < waiter.priority || (other.priority === waiter.priority && other.firstSeen < waiter.firstSeen)) ahead++;
    }
    if (ahead >= free) return false;
    this.waiters.delete(key);
    return true;
  }

  /**
   * The newest waiter still sending DISCOVERs, of this priority or better, is `key` (AdmissionControl's
   * newcomer lane). Waiters of a worse priority do not count.
   */
  isNewestWaiter(key: string, now: number): boolean {
    const waiter = this.waiters.get(key);
    if (!waiter) return false;
    for (const other of this.waiters.values()) {
      if (other === waiter || now - other.lastSeen > this.timing.discoverGapMs) continue;
      if (other.priority <= waiter.priority && other.order > waiter.order) return false;
    }
    return true;
  }

  /** A waiter let in by someone else's rule (the newcomer lane) leaves the line. */
  leave(key: string): void {
    this.waiters.delete(key);
  }

  /** A Pi's kernel transfer ended: served in `ms`, or timed out (the Pi gave up on it). */
  observeKernel(sample: KernelSample, now: number): void {
    if (this.mode.kind !== 'adaptive') return;
    this.forget(now);
    this.steer = steerCapacity(this.steer, sample, now, this.mode.tuning, this.waiters.size > 0);
  }

  snapshot(now: number): AdmissionSnapshot {
    this.forget(now);
    return { mode: this.mode.kind, capacity: this.capacity(), waiting: this.waiters.size };
  }

  private forget(now: number): void {
    for (const [key, waiter] of this.waiters) if (now - waiter.lastSeen > this.timing.forgetWaiterMs) this.waiters.delete(key);
  }
}
