import type { RemoteInfo } from 'node:dgram';
import type { ClientInfo } from './classify.js';
import { encodeDhcpMessage, type DhcpMessage } from './codec.js';
import type { ConflictCheck } from './conflict-check.js';
import { decideFullReply, type FullDecision, type FullDhcpPolicy, type FullIgnoreReason } from './full-policy.js';
import type { LeasePool } from './lease-pool.js';
import { CoalescingWriter, type LeaseStore } from './lease-store.js';
import type { DhcpLogger } from './logger.js';
import { replyDestination, type ProxyPolicy } from './policy.js';

/** Full-DHCP mode of the server (`--dhcp-mode full`): addresses and boot options from one reply. */
export interface FullModeOptions {
  policy: FullDhcpPolicy;
  pool: LeasePool;
  /** Where leases live across restarts; none = in memory only (tests, benchmarks). */
  store?: LeaseStore;
  /** Is a fresh address already in use? (pingConflictCheck()); false = no check. */
  conflictCheck?: ConflictCheck | false;
  /** Conflict checks running at once; a DISCOVER beyond this waits for its retry. Default 64. */
  maxConcurrentChecks?: number;
  /**
   * Probe the segment for another DHCP server before binding and refuse to start when one answers;
   * default on with a 4 s wait. false only where the caller knows the segment (tests of the server alone).
   */
  probe?: { timeoutMs?: number } | false;
}

export type LeaseEventState = 'offered' | 'bound' | 'released' | 'declined' | 'conflict' | 'nak';

export interface LeaseEvent {
  mac: string;
  serial?: string;
  address: string;
  state: LeaseEventState;
  /** Epoch ms the lease (or offer hold) ends; bound/offered only. */
  expiresAt?: number;
  /** NAK reason (taken, out-of-range, …). */
  reason?: string;
  xid: number;
}

export interface FullModeStats {
  naks: number;
  informs: number;
  releases: number;
  declines: number;
  /** Fresh addresses our ping found in use (quarantined, another one offered). */
  conflicts: number;
  /** Conflict checks that could not tell (ping missing, failed): the address was offered anyway. */
  conflictCheckErrors: number;
  /** Lease file writes that failed: the ACK was not sent. */
  persistFailures: number;
  leases: { bound: number; offered: number; free: number; quarantined: number };
}

/** What the engine needs from the server shell: sending, counting, events. */
export interface FullModeHost {
  logger: DhcpLogger;
  now(): number;
  ports: { server: number; client: number; broadcastAddress: string };
  /** Sends from the serverIp socket on 67; `event` set for OFFER/ACK (offer-sent), undefined for NAK. */
  send(
    bytes: Uint8Array,
    address: string,
    port: number,
    messageType: 'offer' | 'ack' | 'nak',
    event: { mac: string; kind?: string; serial?: string; xid: number; repeat: boolean },
  ): void;
  repeat(afterMs: number, resend: () => void): void;
  ignore(event: { mac?: string; kind?: string; reason: FullIgnoreReason; xid: number }): void;
  drop(event: { reason: 'policy-error' | 'encode-error' | 'persist-failed'; peer: string; detail: string }): void;
  lease(event: LeaseEvent): void;
  /** A Raspberry Pi's request (as proxy mode reports it: timelines, discovered Pis). */
  piSeen(client: ClientInfo, answered: boolean, from: string): void;
}

/** Conflicts in a row for one DISCOVER before giving up on it (its retry starts over). */
const MAX_CONFLICTS_PER_DISCOVER = 3;

/** The stateful half of full mode: pool + lease file + conflict checks around the pure decision. */
export class FullModeEngine {
  private readonly writer: CoalescingWriter | undefined;
  private readonly checking = new Set<string>();
  private readonly counters = { naks: 0, informs: 0, releases: 0, declines: 0, conflicts: 0, conflictCheckErrors: 0, persistFailures: 0 };

  constructor(
    private readonly options: FullModeOptions,
    private readonly host: FullModeHost,
  ) {
    const { store, pool } = options;
    this.writer = store
      ? new CoalescingWriter(async () => {
          // One journal append per batch of ACKs; a snapshot once the journal outgrows the table.
          const changes = pool.takeChanges();
          try {
            if (store.shouldCompact(pool.records)) await store.save({ leases: pool.leases(), quarantines: pool.quarantines(host.now()) });
            else await store.append(changes);
          } catch (error) {
            pool.returnChanges(changes);
            throw error;
          }
        })
      : undefined;
  }

  /** Loads the lease file into the pool (LeaseFileError when it is unreadable). */
  async load(): Promise<void> {
    if (!this.options.store) return;
    const contents = await this.options.store.load();
    const skipped = this.options.pool.restore(contents.leases, contents.quarantines, this.host.now());
    if (skipped.length > 0) {
      this.host.logger.warn(
        { skipped: skipped.length, file: this.options.store.path },
        `${skipped.length} lease(s) in ${this.options.store.path} do not fit the configured range/subnet (or repeat an address/MAC): not restored`,
      );
    }
  }

  noteCheckError(): void {
    this.counters.conflictCheckErrors += 1;
  }

  get stats(): FullModeStats {
    return { ...this.counters, leases: this.options.pool.counts(this.host.now()) };
  }

  handle(request: DhcpMessage, rinfo: RemoteInfo, boot: ProxyPolicy, attempt = 0): void {
    const from = `${rinfo.address}:${rinfo.port}`;
    let decision: FullDecision;
    try {
      decision = decideFullReply(request, { policy: this.options.policy, boot, pool: this.options.pool, now: this.host.now() });
    } catch (error) {
      // Only caller hooks (isRegistered, admit, staticAddressFor …) can throw here.
      this.host.drop({ reason: 'policy-error', peer: from, detail: (error as Error).message });
      return;
    }
    const client = decision.client;
    if (client?.kind === 'pi' && client.piEvidence && attempt === 0)
      this.host.piSeen(client, decision.action === 'reply' && decision.type !== 'nak', from);
    if (decision.action === 'ignore') {
      this.host.ignore({
        ...(decision.mac ? { mac: decision.mac } : {}),
        ...(decision.client ? { kind: decision.client.kind } : {}),
        reason: decision.reason,
        xid: request.xid,
      });
      return;
    }
    if (decision.action === 'noted') {
      if (decision.outcome === 'released') this.counters.releases += 1;
      else this.counters.declines += 1;
      void this.persist(from).then((ok) => {
        if (ok)
          this.host.lease({
            mac: decision.mac,
            ...serialOf(decision),
            address: decision.address,
            state: decision.outcome,
            xid: request.xid,
          });
      });
      return;
    }
    // A retransmitted DISCOVER while its address is being checked: the offer waits for the check
    // (its address is no longer "fresh" to the pool, so without this it would skip the check).
    if (decision.type === 'offer' && this.checking.has(decision.mac)) {
      this.host.ignore({ mac: decision.mac, reason: 'probe-pending', xid: request.xid });
      return;
    }
    const check = this.options.conflictCheck;
    if (decision.probe && check) {
      if (this.checking.size >= (this.options.maxConcurrentChecks ?? 64)) {
        // Free the hold: the client's retry (Pi 4/5 every 4 s) gets its check then.
        this.options.pool.withdrawOffer(decision.mac);
        this.host.ignore({ mac: decision.mac, reason: 'conflict-check-busy', xid: request.xid });
        return;
      }
      const address = decision.probe;
      this.checking.add(decision.mac);
      check(address)
        .catch(() => {
          this.counters.conflictCheckErrors += 1;
          return false;
        })
        .then((inUse) => {
          this.checking.delete(decision.mac);
          if (!inUse) return this.finish(request, rinfo, decision, from);
          this.counters.conflicts += 1;
          this.options.pool.markConflict(address, this.host.now(), decision.mac);
          this.host.logger.warn(
            { address, mac: decision.mac },
            `${address} answered our ping before we offered it to ${decision.mac}: out of use for a while`,
          );
          this.host.lease({ mac: decision.mac, address, state: 'conflict', xid: request.xid });
          if (attempt + 1 < MAX_CONFLICTS_PER_DISCOVER) this.handle(request, rinfo, boot, attempt + 1);
          else this.host.ignore({ mac: decision.mac, reason: 'pool-exhausted', xid: request.xid });
        })
        .catch((error: unknown) => this.host.drop({ reason: 'policy-error', peer: from, detail: (error as Error).message }));
      return;
    }
    void this.finish(request, rinfo, decision, from);
  }

  private async finish(
    request: DhcpMessage,
    rinfo: RemoteInfo,
    decision: Extract<FullDecision, { action: 'reply' }>,
    from: string,
  ): Promise<void> {
    let bytes: Uint8Array;
    try {
      bytes = encodeDhcpMessage(decision.reply, { maxSize: decision.maxSize });
    } catch (error) {
      this.host.drop({ reason: 'encode-error', peer: from, detail: (error as Error).message });
      return;
    }
    // RFC 2131: the binding is on stable storage before the client hears of it.
    if (decision.persist && !(await this.persist(from))) return;
    const destination = decision.broadcast
      ? { address: this.host.ports.broadcastAddress, port: this.host.ports.client }
      : replyDestination(request, 'dhcp', { address: rinfo.address, port: rinfo.port }, this.host.ports);
    const event = {
      mac: decision.mac,
      ...(decision.client ? { kind: decision.client.kind } : {}),
      ...serialOf(decision),
      xid: request.xid,
      repeat: false,
    };
    if (decision.type === 'nak') this.counters.naks += 1;
    if (decision.type === 'ack' && decision.address === undefined) this.counters.informs += 1;
    this.host.send(bytes, destination.address, destination.port, decision.type, event);
    if (decision.address !== undefined && decision.type !== 'nak') {
      const lease = decision.lease;
      this.host.lease({
        mac: decision.mac,
        ...serialOf(decision),
        address: decision.address,
        state: lease?.state === 'bound' ? 'bound' : 'offered',
        ...(lease ? { expiresAt: lease.expiresAt } : {}),
        xid: request.xid,
      });
    } else if (decision.type === 'nak') {
      const address = request.options.get(50);
      this.host.lease({
        mac: decision.mac,
        address: address?.length === 4 ? address.join('.') : request.ciaddr,
        state: 'nak',
        ...(decision.nakReason ? { reason: decision.nakReason } : {}),
        xid: request.xid,
      });
    }
    if (decision.repeatAfterMs !== undefined) {
      this.host.repeat(decision.repeatAfterMs, () =>
        this.host.send(bytes, destination.address, destination.port, decision.type, { ...event, repeat: true }),
      );
    }
  }

  private async persist(from: string): Promise<boolean> {
    if (!this.writer) return true;
    try {
      await this.writer.flush();
      return true;
    } catch (error) {
      this.counters.persistFailures += 1;
      this.host.logger.error({ err: error }, 'cannot write the DHCP lease file: reply withheld');
      this.host.drop({ reason: 'persist-failed', peer: from, detail: (error as Error).message });
      return false;
    }
  }

  /** Waits for the lease file write in flight (close()). */
  async flush(): Promise<void> {
    if (this.writer) await this.writer.flush().catch(() => undefined);
  }
}

function serialOf(decision: { client?: { serial?: string } }): { serial?: string } {
  return decision.client?.serial ? { serial: decision.client.serial } : {};
}
