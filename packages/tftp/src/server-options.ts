/** TftpServer's options, their defaults and their checks. */
import { IotTofuError } from '@iot-tofu/errors';
import { DEFAULT_MAX_BLKSIZE } from './options.js';
import { nativeSocketStatus, transferSocketAddon } from './native-socket.js';
import type { TftpFileOpener } from './request-file.js';
import type { TftpLogger } from './logger.js';
import type { TftpClock, UdpSocketFactory } from './udp.js';

export interface TftpServerOptions {
  /** Address to bind; transfer sockets bind here too so every reply comes from it. Default 0.0.0.0. */
  readonly address?: string;
  /** Listen port (default 69; 0 picks a free one, see start()). */
  readonly port?: number;
  readonly source: TftpFileOpener;
  /** Largest blksize granted (default 1468 = Ethernet MTU without fragmentation). */
  readonly maxBlksize?: number;
  /** Largest RFC 7440 windowsize granted, only to clients that ask (default 64; 0 = off). */
  readonly maxWindowsize?: number;
  /** Transfers running at once; more wait in a queue (default 256). */
  readonly maxConcurrent?: number;
  /** Transfers one client IP may run at once; more wait (default 16). */
  readonly perClientMax?: number;
  /**
   * Requests one client IP may have in flight before its first ACK (opening, queued or running;
   * default 8); more are dropped (`unconfirmed-limit`) until one is acknowledged or ends. Bounds
   * what RRQs with forged or silent sources can hold; a Pi asks for one file at a time.
   */
  readonly perClientUnconfirmed?: number;
  /**
   * Retransmissions of a transfer's first packet (OACK or DATA 1) before it is given up (default 4),
   * the back-off capped at `timeoutMs`, the OACK's interval `oackTimeoutMs`. An OACK sent again for a
   * repeated RRQ spends this budget too. A request never acknowledged (spoofed, or a client whose
   * packets are lost) thus reflects at most 5 packets and holds its slot and sockets for at most 5
   * intervals, however often it repeats: a plain RRQ 5 × `timeoutMs` (5 s), one with options (every
   * Pi's) 5 × `oackTimeoutMs` (30 s); a client-negotiated RFC 2349 timeout is the interval for both,
   * `maxTransferMs` the limit for all. After the first ACK `maxRetries` applies.
   */
  readonly firstAckRetries?: number;
  /**
   * Once a client has acknowledged, `maxRetries` ends its transfer only after this long without
   * progress or an old ACK in answer to a retransmission (default 18 × `timeoutMs`). atftp and
   * tftp-hpa ignore duplicate DATA and re-send their ACK only on their own 5 s timeout; giving up
   * after five fast adaptive retransmissions failed 6 of 8 atftp downloads under 15 % loss. Past
   * `maxRetries` retransmissions come every `oackTimeoutMs` (longer than that client timeout, so
   * atftp gets the silence it waits for): 18 s leaves it three such gaps (tftpd-hpa waits 63 s).
   */
  readonly stallGiveUpMs?: number;
  /**
   * Interval before an unanswered OACK is sent again (default 6 × `timeoutMs`). A client whose
   * ACK 0 was lost re-sends it on its own timeout (atftp: 5 s) and aborts on a second OACK
   * ("unexpected OACK": most of atftp's failures under 15 % loss); a client whose OACK was lost
   * repeats its RRQ (a Pi every ~2 s), which gets the OACK again at once.
   */
  readonly oackTimeoutMs?: number;
  /** Waiting transfers beyond which new requests are dropped (default 4096). */
  readonly maxQueued?: number;
  /**
   * RRQs accepted per client IP and second, and the burst allowance (default 50/s, burst 100). A
   * refused request (not found, access denied) gets its token back: its ERROR is no bigger than
   * the request, and a Pi probes many missing files.
   */
  readonly requestRate?: { readonly perSecond: number; readonly burst: number };
  /**
   * First retransmission interval before any round trip was measured, and the ceiling of the
   * adaptive timeout (default 1000 ms). A client's `timeout` option (RFC 2349) replaces it and
   * turns adaptation off for that transfer.
   */
  readonly timeoutMs?: number;
  /**
   * Adapt each transfer's retransmission timeout to its measured round trips (RFC 6298: SRTT +
   * 4·RTTVAR, Karn's rule), starting from recent transfers to the same client IP. Default true;
   * false = every first retransmission waits `timeoutMs`.
   */
  readonly adaptiveTimeout?: boolean;
  /** Floor of the adaptive timeout (default 30 ms). */
  readonly minTimeoutMs?: number;
  /** Back-off ceiling (default 5000 ms). */
  readonly maxTimeoutMs?: number;
  /** Retransmissions without progress before a transfer is abandoned (default 5). */
  readonly maxRetries?: number;
  /** Whole-transfer limit (default 10 min). */
  readonly maxTransferMs?: number;
  /**
   * Single-port mode (docs/pi-netboot-protocol.md 7): every transfer is answered from the listening socket and
   * told apart by the client's (ip, port), for NAT and containers that forward only port 69.
   * Default off: a fresh socket (TID) per transfer, as RFC 1350 asks.
   */
  readonly singlePort?: boolean;
  /**
   * Worker threads that run transfers besides the main thread (default 0; `defaultTransferThreads()`
   * is one per spare core). Transfers of cached files go to the least busy thread; the listening
   * socket, cache, limits and events stay on the main thread. Needs the real sockets and clock,
   * and is off in single-port mode (one socket cannot be split across threads).
   */
  readonly threads?: number;
  /**
   * Transfer sockets on the native addon (`native/transfer-socket.c`): no node:dgram allocation or
   * send request per datagram. Default: on when this platform has its prebuilt binary and no
   * `socketFactory` is injected (`IOT_TOFU_TFTP_NATIVE=0` turns the default off); true requires
   * the addon, false keeps node:dgram. Single-port mode always uses the listening socket.
   */
  readonly nativeSockets?: boolean;
  readonly logger?: TftpLogger;
  readonly clock?: TftpClock;
  readonly socketFactory?: UdpSocketFactory;
}

export class TftpServerError extends IotTofuError {}

const DEFAULT_MIN_TIMEOUT_MS = 30;

/** Every option with its default filled in (the injected collaborators stay optional). */
export type ResolvedServerOptions = Required<Omit<TftpServerOptions, 'logger' | 'clock' | 'socketFactory' | 'source' | 'requestRate'>> & {
  requestRate: { perSecond: number; burst: number };
};

/** Fills in the defaults; throws TftpServerError (`TFTP_BAD_OPTION`) for values the server cannot run with. */
export function resolveServerOptions(options: TftpServerOptions): ResolvedServerOptions {
  const resolved: ResolvedServerOptions = {
    address: options.address ?? '0.0.0.0',
    port: options.port ?? 69,
    maxBlksize: options.maxBlksize ?? DEFAULT_MAX_BLKSIZE,
    maxWindowsize: options.maxWindowsize ?? 64,
    maxConcurrent: options.maxConcurrent ?? 256,
    perClientMax: options.perClientMax ?? 16,
    perClientUnconfirmed: options.perClientUnconfirmed ?? 8,
    firstAckRetries: options.firstAckRetries ?? 4,
    stallGiveUpMs: options.stallGiveUpMs ?? 18 * (options.timeoutMs ?? 1000),
    oackTimeoutMs: options.oackTimeoutMs ?? 6 * (options.timeoutMs ?? 1000),
    maxQueued: options.maxQueued ?? 4096,
    requestRate: { perSecond: options.requestRate?.perSecond ?? 50, burst: options.requestRate?.burst ?? 100 },
    timeoutMs: options.timeoutMs ?? 1000,
    adaptiveTimeout: options.adaptiveTimeout ?? true,
    minTimeoutMs: options.minTimeoutMs ?? DEFAULT_MIN_TIMEOUT_MS,
    maxTimeoutMs: options.maxTimeoutMs ?? 5000,
    maxRetries: options.maxRetries ?? 5,
    maxTransferMs: options.maxTransferMs ?? 600_000,
    singlePort: options.singlePort ?? false,
    threads: options.threads ?? 0,
    nativeSockets: options.nativeSockets ?? (!options.socketFactory && transferSocketAddon() !== undefined),
  };
  if (options.nativeSockets === true) {
    const status = nativeSocketStatus();
    if (!status.loaded) throw new TftpServerError('TFTP_BAD_OPTION', `TftpServer option nativeSockets: ${status.reason}`);
    if (options.socketFactory)
      throw new TftpServerError('TFTP_BAD_OPTION', 'TftpServer option nativeSockets cannot run on an injected socketFactory');
  }
  if (!(Number.isInteger(resolved.threads) && resolved.threads >= 0)) {
    throw new TftpServerError('TFTP_BAD_OPTION', 'TftpServer option threads must be a whole number, 0 or more');
  }
  if (resolved.threads > 0 && (options.socketFactory || options.clock)) {
    throw new TftpServerError('TFTP_BAD_OPTION', 'TftpServer option threads needs the real sockets and clock (no socketFactory or clock)');
  }
  for (const key of ['maxConcurrent', 'perClientMax', 'perClientUnconfirmed', 'timeoutMs', 'minTimeoutMs'] as const) {
    if (!(resolved[key] >= 1)) throw new TftpServerError('TFTP_BAD_OPTION', `TftpServer option ${key} must be at least 1`);
  }
  return resolved;
}
