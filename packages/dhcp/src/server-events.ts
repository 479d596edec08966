/**
 * What the proxyDHCP server reports: its events (a Pi seen, an offer or ack sent, a request
 * ignored, a packet dropped, a lease change in full mode) and its counters. Types only, apart
 * from the socket code, so the class file keeps to moving bytes.
 */
import type { PiModel } from '@iot-tofu/rpi';
import type { ClientKind, GuidKind, PiEvidence } from './classify.js';
import type { IgnoreReason, ProxyPort } from './policy.js';
import type { LeaseEvent, FullModeStats } from './full-mode.js';
import type { FullIgnoreReason } from './full-policy.js';

export interface PiSeenEvent {
  mac: string;
  model?: PiModel;
  serial?: string;
  xid: number;
  guidKind: GuidKind;
  evidence: PiEvidence;
  /** Whether this request gets a reply (false: unregistered, answer none, deferred …). */
  answered: boolean;
  port: ProxyPort;
  from: string;
}

export interface OfferSentEvent {
  mac: string;
  kind: ClientKind;
  serial?: string;
  xid: number;
  port: ProxyPort;
  messageType: 'offer' | 'ack';
  to: string;
  /** The Pi 3B ROM repeat of an earlier offer. */
  repeat: boolean;
}

export interface IgnoredEvent {
  mac?: string;
  kind?: ClientKind;
  reason: IgnoreReason | FullIgnoreReason;
  xid?: number;
  port: ProxyPort;
}

export type DropReason = 'malformed' | 'policy-error' | 'encode-error' | 'send-failed' | 'persist-failed';

export interface DroppedEvent {
  reason: DropReason;
  /** The requester (or, for send-failed, the reply's destination) as address:port. */
  peer: string;
  port: ProxyPort;
  detail?: string;
}

export interface ProxyDhcpEvents {
  'pi-seen': [PiSeenEvent];
  'offer-sent': [OfferSentEvent];
  ignored: [IgnoredEvent];
  dropped: [DroppedEvent];
  /** Full mode: an address offered, bound, released, declined, found in use (conflict) or NAKed. */
  lease: [LeaseEvent];
}

export interface ProxyDhcpStats {
  /** Datagrams received on any socket. */
  received: number;
  /** Datagrams that decoded as DHCP messages. */
  requests: number;
  /** OFFERs sent on 67 (Pi 3B repeats included). */
  offers: number;
  /** ACKs sent (on 4011; in full mode also on 67). */
  acks: number;
  /** NAKs sent (full mode). */
  naks: number;
  /** Requests not answered, by reason ('deferred' = admission gate, 'rate-limited' = flood). */
  ignored: Partial<Record<IgnoreReason | FullIgnoreReason, number>>;
  /** Packets thrown away: malformed input, hook or send failures. */
  dropped: Partial<Record<DropReason, number>>;
  /** Full mode only: lease table and RFC 2131 counters. */
  full?: FullModeStats;
}
