// Over 400 lines on purpose: one pure table whose every operation keeps the address, client and
// quarantine maps consistent; its configuration and address arithmetic live in pool-config.ts.
import { isIpv4 } from './codec.js';
import {
  DEFAULT_DECLINE_HOLD_MS,
  DEFAULT_OFFER_HOLD_MS,
  intToIpv4,
  ipv4ToInt,
  validatePoolConfig,
  type LeasePoolConfig,
} from './pool-config.js';

/**
 * Address leases of full-DHCP mode, pure: no I/O, no clock of its own (every call takes `now` in
 * ms), so tables of cases drive it in tests. One record per address and at most one per client;
 * a client is its Ethernet MAC (lower-case, colons).
 *
 * Why the MAC and not option 61: a netbooting Pi asks for an address up to four times per boot
 * (boot ROM, bootcode.bin, initramfs, then the OS's own DHCP client, which sends a client id). If
 * the client id keyed the lease, the OS would get a second address while its NFS root is mounted
 * through the first. RFC 2131 section 4.2 lets a server key on chaddr; the id is kept for display.
 */
export type LeaseState = 'offered' | 'bound' | 'released';

export interface Lease {
  address: string;
  mac: string;
  state: LeaseState;
  /** Epoch ms: end of the offer hold (offered) or of the lease (bound); release time (released). */
  expiresAt: number;
  /** Option 61 as hex, when the client sent one (informational). */
  clientId?: string;
  /** Option 12 (sanitised by the caller). */
  hostname?: string;
  /** Pi serial when the request carried one. */
  serial?: string;
}

export type QuarantineReason = 'declined' | 'conflict';

/** Everything persistent about one address: a journal entry (no lease and no quarantine = free). */
export interface AddressState {
  address: string;
  lease?: Lease;
  quarantine?: Quarantine;
}

export interface Quarantine {
  address: string;
  until: number;
  reason: QuarantineReason;
  /** Who declined it, or who we were about to offer it to when a ping answered. */
  mac?: string;
}

export type OfferFailure = 'pool-exhausted';
export type CommitFailure =
  /** Not on our subnet, or the network/broadcast/server/router address. */
  | 'wrong-address'
  /** Outside the dynamic range and not this client's static address. */
  | 'out-of-range'
  /** Another client holds it (active lease or offer), or it is reserved for another client. */
  | 'taken'
  | 'quarantined'
  /** We never offered or leased it to this client and adopting was not allowed. */
  | 'unknown-client';

export interface OfferResult {
  address: string;
  /** True when the client has not used this address with us before (the conflict check runs). */
  fresh: boolean;
  lease: Lease;
}

export class LeasePool {
  private readonly byAddress = new Map<number, Lease>();
  private readonly byMac = new Map<string, Lease>();
  private readonly quarantined = new Map<number, Quarantine>();
  /** Addresses whose persistent state (lease or quarantine) changed since takeChanges(). */
  private readonly dirty = new Set<number>();
  private readonly mask: number;
  private readonly network: number;
  private readonly broadcast: number;
  private readonly start: number;
  private readonly end: number;
  private readonly excluded: Set<number>;
  readonly offerHoldMs: number;
  readonly declineHoldMs: number;
  readonly conflictHoldMs: number;
  /** Next never-used candidate: the scan resumes here (addresses below it are known used). */
  private cursor: number;

  constructor(readonly config: LeasePoolConfig) {
    validatePoolConfig(config);
    this.mask = ipv4ToInt(config.netmask);
    this.network = (ipv4ToInt(config.serverIp) & this.mask) >>> 0;
    this.broadcast = (this.network | ~this.mask) >>> 0;
    this.start = ipv4ToInt(config.rangeStart);
    this.end = ipv4ToInt(config.rangeEnd);
    this.cursor = this.start;
    this.excluded = new Set([this.network, this.broadcast, ipv4ToInt(config.serverIp)]);
    if (config.router) this.excluded.add(ipv4ToInt(config.router));
    this.offerHoldMs = config.offerHoldMs ?? DEFAULT_OFFER_HOLD_MS;
    this.declineHoldMs = config.declineHoldMs ?? DEFAULT_DECLINE_HOLD_MS;
    this.conflictHoldMs = config.conflictHoldMs ?? DEFAULT_DECLINE_HOLD_MS;
  }

  /** Records held (leases of any state): the size of a snapshot. */
  get records(): number {
    return this.byAddress.size;
  }

  get size(): number {
    return this.end - this.start + 1;
  }

  /** The client's record (any state, expired or not). */
  leaseOf(mac: string): Lease | undefined {
    return this.byMac.get(mac);
  }

  holderOf(address: string): Lease | undefined {
    return isIpv4(address) ? this.byAddress.get(ipv4ToInt(address)) : undefined;
  }

  /** An offer not yet expired, or a bound lease not yet expired. */
  isActive(lease: Lease, now: number): boolean {
    return lease.state !== 'released' && lease.expiresAt > now;
  }

  /** True when the address is on our subnet and not the network, broadcast, server or router address. */
  isAssignable(address: string): boolean {
    if (!isIpv4(address)) return false;
    const n = ipv4ToInt(address);
    return (n & this.mask) >>> 0 === this.network && !this.excluded.has(n);
  }

  /** On the pool's subnet at all (relay agents, ciaddr checks). */
  onSubnet(address: string): boolean {
    return isIpv4(address) && (ipv4ToInt(address) & this.mask) >>> 0 === this.network;
  }

  inRange(address: string): boolean {
    if (!isIpv4(address)) return false;
    const n = ipv4ToInt(address);
    return n >= this.start && n <= this.end;
  }

  quarantineOf(address: string, now: number): Quarantine | undefined {
    const q = isIpv4(address) ? this.quarantined.get(ipv4ToInt(address)) : undefined;
    if (q && q.until <= now) {
      this.quarantined.delete(ipv4ToInt(address));
      return undefined;
    }
    return q;
  }

  /**
   * Picks the address to OFFER and holds it for the client (RFC 2131 4.3.1): the static address,
   * else the client's previous address, else the one it asks for (option 50) if free, else a
   * never-used one, else the longest-expired lease of someone else. A bound lease stays bound.
   */
  offer(
    client: { mac: string; requested?: string; staticAddress?: string; clientId?: string; hostname?: string; serial?: string },
    now: number,
  ): OfferResult | OfferFailure {
    const previous = this.byMac.get(client.mac);
    let address: number | undefined;
    if (client.staticAddress !== undefined && this.usableFor(client.mac, client.staticAddress, now, true))
      address = ipv4ToInt(client.staticAddress);
    if (address === undefined && previous && this.usableFor(client.mac, previous.address, now, false))
      address = ipv4ToInt(previous.address);
    if (address === undefined && client.requested !== undefined && this.usableFor(client.mac, client.requested, now, false))
      address = ipv4ToInt(client.requested);
    address ??= this.neverUsed(now) ?? this.longestExpired(now);
    if (address === undefined) return 'pool-exhausted';

    const text = intToIpv4(address);
    const fresh = !(previous && previous.address === text);
    const keepBound = !fresh && previous!.state === 'bound' && previous!.expiresAt > now;
    const lease: Lease = {
      address: text,
      mac: client.mac,
      state: keepBound ? 'bound' : 'offered',
      expiresAt: keepBound ? previous!.expiresAt : now + this.offerHoldMs,
    };
    copyInfo(lease, client, previous);
    this.put(lease);
    return { address: text, fresh, lease };
  }

  /**
   * Binds `address` to the client for a full lease time (REQUEST → ACK). Without `adopt` the client
   * must hold an offer or lease for it with us; with `adopt` (INIT-REBOOT/RENEWING after we lost
   * our records: we are the segment's only server) a free address in the range is taken too.
   */
  commit(
    client: { mac: string; staticAddress?: string; clientId?: string; hostname?: string; serial?: string },
    address: string,
    now: number,
    options: { adopt: boolean; leaseTimeSec?: number },
  ): Lease | CommitFailure {
    if (!this.isAssignable(address)) return 'wrong-address';
    const isStatic = client.staticAddress === address;
    if (!isStatic && !this.inRange(address)) return 'out-of-range';
    if (!isStatic && this.config.isReserved?.(address)) return 'taken';
    const holder = this.byAddress.get(ipv4ToInt(address));
    if (holder && holder.mac !== client.mac && this.isActive(holder, now)) return 'taken';
    if (this.quarantineOf(address, now)) return 'quarantined';
    if (!(holder && holder.mac === client.mac) && !options.adopt) return 'unknown-client';
    const previous = this.byMac.get(client.mac);
    const lease: Lease = {
      address,
      mac: client.mac,
      state: 'bound',
      expiresAt: now + (options.leaseTimeSec ?? this.config.leaseTimeSec) * 1000,
    };
    copyInfo(lease, client, previous);
    this.put(lease);
    return lease;
  }

  /** DHCPRELEASE: the client keeps its claim on the address for next time, but the lease ends now. */
  release(mac: string, address: string, now: number): boolean {
    const lease = this.byMac.get(mac);
    if (!lease || lease.address !== address || lease.state === 'released') return false;
    lease.state = 'released';
    lease.expiresAt = now;
    this.dirty.add(ipv4ToInt(address));
    return true;
  }

  /** The client took another server's offer (REQUEST naming a foreign server id): free our offer. */
  withdrawOffer(mac: string): boolean {
    const lease = this.byMac.get(mac);
    if (lease?.state !== 'offered') return false;
    this.remove(lease);
    return true;
  }

  /** DHCPDECLINE: someone else uses the address; out of use for declineHoldMs, the client re-DISCOVERs. */
  decline(mac: string, address: string, now: number): boolean {
    const lease = this.byMac.get(mac);
    if (!lease || lease.address !== address) return false;
    this.remove(lease);
    this.quarantine({ address, until: now + this.declineHoldMs, reason: 'declined', mac });
    return true;
  }

  /** Our ping got an answer before the OFFER: drop the hold and keep the address out of use. */
  markConflict(address: string, now: number, mac?: string): void {
    const holder = this.byAddress.get(ipv4ToInt(address));
    // Only the hold we just made: an offer, or the Pi 3B ROM's offer-as-lease of this very client.
    if (holder && (holder.state === 'offered' || holder.mac === mac)) this.remove(holder);
    this.quarantine({ address, until: now + this.conflictHoldMs, reason: 'conflict', ...(mac ? { mac } : {}) });
  }

  /** Every record (for the lease file and `--list`), ordered by address. Offers are transient: left out unless asked. */
  leases(options: { offers?: boolean } = {}): Lease[] {
    return [...this.byAddress.entries()]
      .sort((a, b) => a[0] - b[0])
      .map(([, lease]) => lease)
      .filter((lease) => options.offers || lease.state !== 'offered')
      .map((lease) => ({ ...lease }));
  }

  quarantines(now: number): Quarantine[] {
    return [...this.quarantined.values()].filter((q) => q.until > now).map((q) => ({ ...q }));
  }

  /**
   * Loads records from the lease file: ones that no longer fit the config (subnet or range changed,
   * a second record for one client or one address) are skipped and returned, never trusted.
   */
  restore(leases: readonly Lease[], quarantines: readonly Quarantine[], now: number): Lease[] {
    const skipped: Lease[] = [];
    for (const lease of leases) {
      const n = isIpv4(lease.address) ? ipv4ToInt(lease.address) : -1;
      const fits = this.isAssignable(lease.address) && (this.inRange(lease.address) || lease.state === 'bound');
      if (!fits || this.byAddress.has(n) || this.byMac.has(lease.mac)) {
        skipped.push(lease);
        continue;
      }
      this.put({ ...lease, state: lease.state === 'offered' ? 'released' : lease.state });
    }
    for (const q of quarantines) if (q.until > now && this.isAssignable(q.address)) this.quarantine(q);
    this.dirty.clear(); // what was just read is on disk already
    return skipped;
  }

  /** Counts for metrics: active leases, offers held, free addresses left in the range. */
  counts(now: number): { bound: number; offered: number; free: number; quarantined: number } {
    let bound = 0;
    let offered = 0;
    let usedInRange = 0;
    for (const [n, lease] of this.byAddress) {
      const active = this.isActive(lease, now);
      if (active && lease.state === 'bound') bound += 1;
      if (active && lease.state === 'offered') offered += 1;
      if (active && n >= this.start && n <= this.end) usedInRange += 1;
    }
    let quarantined = 0;
    for (const q of this.quarantined.values()) if (q.until > now) quarantined += 1;
    let excludedInRange = 0;
    for (const n of this.excluded) if (n >= this.start && n <= this.end) excludedInRange += 1;
    return { bound, offered, quarantined, free: Math.max(0, this.size - usedInRange - quarantined - excludedInRange) };
  }

  /** Whether the client may be offered `address` now (it is its own, or free). */
  private usableFor(mac: string, address: string, now: number, isStatic: boolean): boolean {
    if (!this.isAssignable(address)) return false;
    if (!isStatic && (!this.inRange(address) || this.config.isReserved?.(address))) return false;
    if (this.quarantineOf(address, now)) return false;
    const holder = this.byAddress.get(ipv4ToInt(address));
    if (!holder || holder.mac === mac) return true;
    // A static assignment takes its address back once the other client's lease has ended.
    return isStatic && !this.isActive(holder, now);
  }

  private neverUsed(now: number): number | undefined {
    for (let n = this.cursor; n <= this.end; n++) {
      if (this.byAddress.has(n) || this.excluded.has(n)) continue;
      const text = intToIpv4(n);
      if (this.quarantineOf(text, now) || this.config.isReserved?.(text)) continue;
      this.cursor = n;
      return n;
    }
    // Records may have been removed below the cursor (decline, conflict, withdrawn offers): one rescan.
    for (let n = this.start; n < this.cursor; n++) {
      if (this.byAddress.has(n) || this.excluded.has(n)) continue;
      const text = intToIpv4(n);
      if (this.quarantineOf(text, now) || this.config.isReserved?.(text)) continue;
      this.cursor = n;
      return n;
    }
    this.cursor = this.end + 1;
    return undefined;
  }

  /** The in-range record of another client that ended longest ago (expired, released, stale offer). */
  private longestExpired(now: number): number | undefined {
    let best: Lease | undefined;
    for (const [n, lease] of this.byAddress) {
      if (n < this.start || n > this.end || this.isActive(lease, now)) continue;
      if (this.quarantineOf(lease.address, now) || this.config.isReserved?.(lease.address)) continue;
      if (!best || lease.expiresAt < best.expiresAt) best = lease;
    }
    if (!best) return undefined;
    this.remove(best);
    return ipv4ToInt(best.address);
  }

  /**
   * The persistent state of every address changed since the last call (its lease unless that is a
   * transient offer, its quarantine), for the lease journal; the set starts empty again.
   */
  takeChanges(): AddressState[] {
    const out: AddressState[] = [];
    for (const n of this.dirty) out.push(this.stateOf(n));
    this.dirty.clear();
    return out;
  }

  /** A journal write failed: these addresses must go out with the next one. */
  returnChanges(changes: readonly AddressState[]): void {
    for (const change of changes) this.dirty.add(ipv4ToInt(change.address));
  }

  private stateOf(n: number): AddressState {
    const state: AddressState = { address: intToIpv4(n) };
    const lease = this.byAddress.get(n);
    if (lease && lease.state !== 'offered') state.lease = { ...lease };
    const q = this.quarantined.get(n);
    if (q) state.quarantine = { ...q };
    return state;
  }

  private put(lease: Lease): void {
    const previous = this.byMac.get(lease.mac);
    if (previous && previous.address !== lease.address) this.remove(previous);
    const n = ipv4ToInt(lease.address);
    this.dirty.add(n);
    const holder = this.byAddress.get(n);
    if (holder && holder.mac !== lease.mac) this.byMac.delete(holder.mac);
    this.byAddress.set(n, lease);
    this.byMac.set(lease.mac, lease);
  }

  private remove(lease: Lease): void {
    const n = ipv4ToInt(lease.address);
    this.dirty.add(n);
    if (this.byAddress.get(n) === lease) this.byAddress.delete(n);
    if (this.byMac.get(lease.mac) === lease) this.byMac.delete(lease.mac);
    if (n >= this.start && n < this.cursor) this.cursor = n;
  }

  private quarantine(q: Quarantine): void {
    this.dirty.add(ipv4ToInt(q.address));
    this.quarantined.set(ipv4ToInt(q.address), { ...q });
  }
}

function copyInfo(lease: Lease, client: { clientId?: string; hostname?: string; serial?: string }, previous: Lease | undefined): void {
  const clientId = client.clientId ?? previous?.clientId;
  const hostname = client.hostname ?? previous?.hostname;
  const serial = client.serial ?? previous?.serial;
  if (clientId !== undefined) lease.clientId = clientId;
  if (hostname !== undefined) lease.hostname = hostname;
  if (serial !== undefined) lease.serial = serial;
}
