// The slots of the admission gate (who holds one, who only got an offer, who left one unused): the
// half of the gate that hostile DISCOVERs meet (issue 19 item 7). The line and the capacity are in admission.ts.
import type { AdmissionGate } from './admission.js';

/** A Pi let in by the gate, until its boot ends. */
interface Slot {
  mac: string;
  priority: number;
  since: number;
  /** Last TFTP request of this Pi; undefined = none since the offer (the slot is tentative). */
  fetchedAt?: number;
  /** Let in through the newcomer lane (see AdmissionControl). */
  lane: boolean;
}

export interface SlotTiming {
  /**
   * An offer not followed by a TFTP request within this long frees its slot. A Pi asks for its
   * first file within milliseconds of the offer; forged DISCOVERs never do, and before this they
   * held a slot for the 10 s of `tftpAfterOfferTimeout` (issue 19 item 7).
   */
  offerGraceMs: number;
  /**
   * A tentative slot older than this is suspect: the newcomer lane may take it over. Well above the
   * offer-to-first-RRQ time of a Pi (milliseconds), well below a DISCOVER period (4 s).
   */
  fetchWindowMs: number;
  /**
   * Slots kept for the newest waiter while offers go unused (an unused offer within `suspectMs`, or
   * a suspect slot right now): a Pi that turns up after a forged burst is not queued behind the
   * forgers that arrived first. 0 = plain oldest-first.
   */
  newcomerSlots: number;
  suspectMs: number;
  /** A booting Pi silent on TFTP this long has stopped (a Pi gives up a file after 30 s). */
  stallMs: number;
  /** A key whose offer went unused waits behind every other Pi for this long. */
  strikeMs: number;
  /** Bound on remembered slots and strikes (spoofed DISCOVERs must not grow memory). */
  maxEntries: number;
}

export const DEFAULT_SLOT_TIMING: Readonly<SlotTiming> = Object.freeze({
  offerGraceMs: 2_000,
  fetchWindowMs: 1_000,
  newcomerSlots: 2,
  suspectMs: 60_000,
  stallMs: 60_000,
  strikeMs: 10 * 60_000,
  maxEntries: 10_000,
});

/** What the daemon knows about a DISCOVER's sender when it asks the gate. */
export interface PiAtGate {
  /** Serial, else MAC: one per Pi. */
  key: string;
  mac: string;
  /** Registered, and its MAC is the one the fleet knows for that serial: forging it means copying a real Pi. */
  known: boolean;
  now: number;
}

/**
 * The gate's slot accounting, so that clients which never fetch cannot hold it (issue 19 item 7):
 * - a slot is tentative from the offer until the Pi's first TFTP request, and freed `offerGraceMs`
 *   after an offer nobody used; that key then has a strike and goes behind everyone else;
 * - known registered Pis go before unknown ones, and take the tentative slot of a lower-priority
 *   key when the gate is full (it costs at most one extra boot if that key was a real Pi after all);
 * - one slot per key, and one tentative slot per MAC;
 * - while offers go unused, `newcomerSlots` slots are kept for the newest waiter (the newcomer
 *   lane), which may also take over a tentative slot older than `fetchWindowMs`. Forgers that
 *   keep re-sending are old waiters, so an unregistered Pi that turns up later is not queued behind
 *   all of them; forgers that keep inventing new keys churn only the lane's slots, the rest stay
 *   oldest-first. A real storm (every offer used) never opens the lane: pacing as before.
 * Time comes in with every call; pure otherwise.
 */
export class AdmissionControl {
  readonly gate: AdmissionGate;
  private readonly slots = new Map<string, Slot>();
  /** Keys whose last offer went unused, with when. */
  private readonly strikes = new Map<string, number>();
  /** Keys whose tentative slot the lane took over, with when: if they fetch after all, the slot comes back. */
  private readonly displaced = new Map<string, { mac: string; priority: number; at: number }>();
  private lastStrikeAt = Number.NEGATIVE_INFINITY;
  private readonly timing: SlotTiming;

  constructor(gate: AdmissionGate, timing: Partial<SlotTiming> = {}) {
    this.gate = gate;
    this.timing = { ...DEFAULT_SLOT_TIMING, ...timing };
  }

  /** 0 a known registered Pi, 1 any other, 2 a key whose last offer went unused. */
  priorityOf(pi: PiAtGate): number {
    const struck = this.strikes.get(pi.key);
    if (struck !== undefined && pi.now - struck <= this.timing.strikeMs) return 2;
    return pi.known ? 0 : 1;
  }

  /** The proxy's question for a DISCOVER: offer now (true) or stay silent (false)? */
  admit(pi: PiAtGate): boolean {
    const { key, mac, now } = pi;
    if (this.gate.kind === 'off') return true;
    this.expire(now);
    if (this.slots.has(key)) return true; // a repeated DISCOVER of a Pi already let in
    const priority = this.priorityOf(pi);
    for (const [other, slot] of this.slots) if (other !== key && slot.mac === mac && slot.fetchedAt === undefined) return false;
    const capacity = this.gate.capacity();
    if (this.slots.size >= capacity) this.preemptFor(priority);
    // Oldest first, leaving the lane's free slots to the newest waiter.
    const laneFree = this.laneOpen(now) ? Math.max(0, this.timing.newcomerSlots - this.laneHeld()) : 0;
    const reserved = Math.min(laneFree, Math.max(0, capacity - this.slots.size));
    const activeBoots = this.slots.size + reserved;
    if (this.gate.admit({ key, now, activeBoots, bootInProgress: false, priority })) return this.take(key, mac, priority, now, false);
    if (laneFree === 0 || priority > 1 || !this.gate.isNewestWaiter(key, now)) return false;
    if (this.slots.size >= capacity && !this.displaceSuspect(priority, now)) return false;
    this.gate.leave(key);
    return this.take(key, mac, priority, now, true);
  }

  /** A TFTP request of this Pi (by serial): its slot is in use; a strike is forgiven. */
  fetched(key: string, now: number): void {
    const slot = this.slots.get(key);
    if (slot) slot.fetchedAt = now;
    const displaced = this.displaced.get(key);
    // A slow real Pi whose tentative slot the lane took: it boots anyway, so it is counted again.
    if (!slot && displaced && now - displaced.at <= this.timing.offerGraceMs) {
      this.slots.set(key, { mac: displaced.mac, priority: displaced.priority, since: now, fetchedAt: now, lane: false });
    }
    this.displaced.delete(key);
    this.strikes.delete(key);
  }

  /** Its boot ended (kernel served, or failed for good): the slot is free. */
  release(key: string): void {
    this.slots.delete(key);
  }

  /** Pis holding a slot right now. */
  active(now: number): number {
    this.expire(now);
    return this.slots.size;
  }

  private take(key: string, mac: string, priority: number, now: number, lane: boolean): boolean {
    if (this.slots.size < this.timing.maxEntries) this.slots.set(key, { mac, priority, since: now, lane });
    return true;
  }

  private laneHeld(): number {
    let held = 0;
    for (const slot of this.slots.values()) if (slot.lane) held++;
    return held;
  }

  /** Offers are going unused: one did within `suspectMs`, or a tentative slot is past the fetch window now. */
  private laneOpen(now: number): boolean {
    if (this.timing.newcomerSlots <= 0) return false;
    if (now - this.lastStrikeAt <= this.timing.suspectMs) return true;
    for (const slot of this.slots.values()) if (slot.fetchedAt === undefined && now - slot.since > this.timing.fetchWindowMs) return true;
    return false;
  }

  /** The lane takes over the oldest tentative slot past the fetch window, of this priority or worse; its key gets a strike. */
  private displaceSuspect(priority: number, now: number): boolean {
    let victim: string | undefined;
    for (const [key, slot] of this.slots) {
      if (slot.fetchedAt !== undefined || slot.priority < priority || now - slot.since <= this.timing.fetchWindowMs) continue;
      if (victim === undefined || slot.since < (this.slots.get(victim)?.since ?? 0)) victim = key;
    }
    if (victim === undefined) return false;
    const slot = this.slots.get(victim);
    this.slots.delete(victim);
    if (slot && this.displaced.size < this.timing.maxEntries) {
      this.displaced.set(victim, { mac: slot.mac, priority: slot.priority, at: now });
    }
    this.strike(victim, now);
    return true;
  }

  private strike(key: string, now: number): void {
    this.strikes.delete(key);
    this.strikes.set(key, now);
    this.lastStrikeAt = now;
  }

  private preemptFor(priority: number): void {
    let victim: string | undefined;
    let worst = priority;
    for (const [key, slot] of this.slots) {
      if (slot.fetchedAt === undefined && slot.priority > worst) {
        victim = key;
        worst = slot.priority;
      }
    }
    if (victim !== undefined) this.slots.delete(victim);
  }

  private expire(now: number): void {
    for (const [key, slot] of this.slots) {
      if (slot.fetchedAt === undefined && now - slot.since > this.timing.offerGraceMs) {
        this.slots.delete(key);
        this.strike(key, now);
      } else if (slot.fetchedAt !== undefined && now - slot.fetchedAt > this.timing.stallMs) this.slots.delete(key);
    }
    for (const [key, at] of this.strikes) {
      if (now - at <= this.timing.strikeMs && this.strikes.size <= this.timing.maxEntries) break; // insertion order: oldest first
      this.strikes.delete(key);
    }
    for (const [key, entry] of this.displaced) {
      if (now - entry.at <= this.timing.offerGraceMs) break; // insertion order: oldest first
      this.displaced.delete(key);
    }
  }
}
