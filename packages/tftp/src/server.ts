import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { IotTofuError } from '@iot-tofu/errors';
import { isSerialFolderName } from '@iot-tofu/rpi';
import { decodeTftpPacket, encodeTftpPacket, peekAckBlock, TftpErrorCode, TftpOpcode } from './packet.js';
import type { TftpRequestPacket } from './packet.js';
import { negotiateOptions, DEFAULT_MAX_BLKSIZE } from './options.js';
import { memoryBody, TftpFileError } from './file-source.js';
import type { FileBody, OpenedFile, OpenOptions } from './file-source.js';
import { toNetascii } from './netascii.js';
import { sanitizeTftpPath } from './path.js';
import { childLogger, sanitizeForLog, silentLogger } from './logger.js';
import type { TftpLogger } from './logger.js';
import { bindSocket, createUdp4Socket, realClock } from './udp.js';
import { RequestBudget } from './request-budget.js';
import { acceptsRequest, mayStart, nextToStart } from './client-limits.js';
import type { ClientLimits } from './client-limits.js';
import type { TftpClock, UdpSocket, UdpSocketFactory } from './udp.js';
import { Transfer } from './read-transfer.js';
import type { ServerTransfer, TransferHost, TransferInit, TransferSettings } from './read-transfer.js';
import { ThreadedTransfer, TransferThread } from './transfer-threads.js';
import type { ThreadSettings } from './transfer-threads.js';
import type { RttEstimate } from './transfer.js';
import type {
  DropReason,
  FileServedEvent,
  TftpClient,
  TftpServerEvents,
  TftpServerStats,
  TransferAbortedEvent,
  TransferFailedEvent,
  TransferFailureReason,
  TransferStartedEvent,
} from './events.js';


/** What the server needs from a file source (FileSource, or a test double). */
export interface TftpFileOpener {
  open(name: string, options?: OpenOptions): Promise<OpenedFile>;
}

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
   * Retransmissions of a transfer's first packet (OACK or DATA 1) before it is given up, the
   * back-off capped at `timeoutMs` (default 4: about 5 s). A spoofed RRQ thus reflects at most 5
   * packets and holds its slot and sockets about 5 s; after the first ACK `maxRetries` applies.
   */
  readonly firstAckRetries?: number;
  /**
   * Once a client has acknowledged, `maxRetries` ends its transfer only after this long without
   * progress or an old ACK in answer to a retransmission (default 6 × `timeoutMs`). atftp and
   * tftp-hpa ignore duplicate DATA and re-send their ACK only on their own 5 s timeout; giving up
   * after five fast adaptive retransmissions failed 6 of 8 atftp downloads under 15 % loss.
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
  readonly logger?: TftpLogger;
  readonly clock?: TftpClock;
  readonly socketFactory?: UdpSocketFactory;
}

export class TftpServerError extends IotTofuError {}

const NETASCII_MAX_BYTES = 16 * 1024 * 1024;
/** How long close() waits for transfer threads to confirm their transfers stopped. */
const CLOSE_GRACE_MS = 2000;
const DEFAULT_MIN_TIMEOUT_MS = 30;
/** Round-trip estimates kept per client IP (oldest forgotten first) and how long one stays valid. */
const RTT_MEMORY_ENTRIES = 4096;
const RTT_MEMORY_MS = 5 * 60_000;

/**
 * The TFTP daemon: one listening socket, a fresh socket (TID) per transfer bound to the same
 * address, a queue past `maxConcurrent`, per-client limits and typed events. Prints nothing.
 */
export class TftpServer extends EventEmitter<TftpServerEvents> implements TransferHost {
  private readonly options: Required<Omit<TftpServerOptions, 'logger' | 'clock' | 'socketFactory' | 'source' | 'requestRate'>> & {
    requestRate: { perSecond: number; burst: number };
  };
  readonly source: TftpFileOpener;
  private readonly logger: TftpLogger;
  private readonly clock: TftpClock;
  private readonly socketFactory: UdpSocketFactory;
  private socket: UdpSocket | undefined;
  private listening: { address: string; port: number } | undefined;
  private closing = false;
  private nextId = 1;
  /** Every request from (ip, port) that is being opened, queued or running: dedupes RRQ retransmissions. */
  private readonly byClient = new Map<string, ServerTransfer | 'opening'>();
  private readonly running = new Set<ServerTransfer>();
  private readonly queue: ServerTransfer[] = [];
  /** Worker threads that run transfers; the main thread is one more lane. */
  private threads: TransferThread[] = [];
  /** Transfers (queued or running) on the main thread, balanced against each thread's load. */
  private mainLoad = 0;
  private readonly perIp = new Map<string, number>();
  /** Requests (by `ip:port` key) not acknowledged yet, and their count per IP (see perClientUnconfirmed). */
  private readonly unconfirmedKeys = new Set<string>();
  private readonly unconfirmedPerIp = new Map<string, number>();
  private readonly limits: ClientLimits;
  private readonly budget: RequestBudget;
  /** Answers refused requests from a port other than the listening one (see openRefusalSocket). */
  private refusals: UdpSocket | undefined;
  /** Last round-trip estimate per client IP, insertion-ordered (oldest first). */
  private readonly rttByIp = new Map<string, { estimate: RttEstimate; at: number }>();
  private counters = { threaded: 0, started: 0, completed: 0, aborted: 0, failed: 0, bytesSent: 0, retransmits: 0, dropped: 0 };

  constructor(options: TftpServerOptions) {
    super();
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? realClock;
    this.socketFactory = options.socketFactory ?? createUdp4Socket;
    this.options = {
      address: options.address ?? '0.0.0.0',
      port: options.port ?? 69,
      maxBlksize: options.maxBlksize ?? DEFAULT_MAX_BLKSIZE,
      maxWindowsize: options.maxWindowsize ?? 64,
      maxConcurrent: options.maxConcurrent ?? 256,
      perClientMax: options.perClientMax ?? 16,
      perClientUnconfirmed: options.perClientUnconfirmed ?? 8,
      firstAckRetries: options.firstAckRetries ?? 4,
      stallGiveUpMs: options.stallGiveUpMs ?? 6 * (options.timeoutMs ?? 1000),
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
    };
    if (!(Number.isInteger(this.options.threads) && this.options.threads >= 0)) {
      throw new TftpServerError('TFTP_BAD_OPTION', 'TftpServer option threads must be a whole number, 0 or more');
    }
    if (this.options.threads > 0 && (options.socketFactory || options.clock)) {
      throw new TftpServerError('TFTP_BAD_OPTION', 'TftpServer option threads needs the real sockets and clock (no socketFactory or clock)');
    }
    const { perSecond, burst } = this.options.requestRate;
    this.budget = new RequestBudget(this.options.requestRate, () => this.clock.now(), (ip) =>
      this.logger.warn({ client: ip, perSecond, burst }, 'tftp: request rate limit reached, dropping requests from this client'),
    );
    this.limits = { maxConcurrent: this.options.maxConcurrent, perClientMax: this.options.perClientMax, perClientUnconfirmed: this.options.perClientUnconfirmed };
    for (const key of ['maxConcurrent', 'perClientMax', 'perClientUnconfirmed', 'timeoutMs', 'minTimeoutMs'] as const) {
      if (!(this.options[key] >= 1)) throw new TftpServerError('TFTP_BAD_OPTION', `TftpServer option ${key} must be at least 1`);
    }
  }

  get stats(): TftpServerStats {
    return { active: this.running.size, queued: this.queue.length, threads: this.threads.filter((t) => t.usable).length, ...this.counters };
  }

  /** Binds the listening socket; rejects on bind failure (port in use, no permission, bad address). */
  async start(): Promise<{ address: string; port: number }> {
    if (this.listening) return this.listening;
    if (this.closing) throw new TftpServerError('TFTP_CLOSED', 'TftpServer was closed');
    const socket = this.socketFactory('listen');
    await bindSocket(socket, this.options.port, this.options.address).catch((error: unknown) => {
      throw new TftpServerError(
        'TFTP_BIND_FAILED',
        `cannot listen on ${this.options.address}:${this.options.port}: ${(error as Error).message}`,
        { cause: error },
      );
    });
    if (this.closing) {
      socket.close();
      throw new TftpServerError('TFTP_CLOSED', 'TftpServer was closed while starting');
    }
    socket.on('error', (error) => this.logger.error({ err: error }, 'tftp: listening socket error'));
    socket.on('message', (msg, rinfo) => this.onRequest(msg, rinfo));
    this.socket = socket;
    if (!this.options.singlePort) {
      await this.openRefusalSocket();
      await this.startThreads(this.options.threads);
    }
    if (this.closing) throw new TftpServerError('TFTP_CLOSED', 'TftpServer was closed while starting');
    const bound = socket.address();
    this.listening = { address: bound.address, port: bound.port };
    this.logger.info({ ...this.listening, threads: this.threads.length }, 'tftp: listening');
    return this.listening;
  }

  /**
   * Like dnsmasq and tftpd-hpa, a refused request is answered from a port other than 69, so
   * clients that lock onto the first reply's port see a normal transfer end. One socket bound at
   * start serves every refusal: a socket per refusal cost a bind round trip through the event
   * loop on each of a Pi's many not-found probes.
   */
  private async openRefusalSocket(): Promise<void> {
    const socket = this.socketFactory('transfer');
    try {
      await bindSocket(socket, 0, this.options.address);
    } catch (error) {
      // Refusals then come from the listening port, as in single-port mode: still a valid answer.
      closeQuietly(socket);
      this.logger.warn({ err: error }, 'tftp: no refusal socket, refused requests are answered from the listening port');
      return;
    }
    // Whatever clients send to it (an ERROR 5 for a late refusal) needs no answer.
    socket.on('error', (error) => this.logger.debug({ err: error }, 'tftp: refusal socket error'));
    socket.on('message', () => undefined);
    if (this.closing) closeQuietly(socket);
    else this.refusals = socket;
  }

  /** Stops listening and ends every transfer (reported as failed with reason `shutdown`). Idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const socket = this.socket;
    this.socket = undefined;
    if (this.refusals) closeQuietly(this.refusals);
    this.refusals = undefined;
    for (const transfer of this.queue.splice(0)) transfer.fail('shutdown', 'server shutting down');
    // A transfer thread that does not confirm in time is terminated; its transfers end here.
    const stopped = Promise.all([...this.running].map((t) => t.fail('shutdown', 'server shutting down')));
    let grace: NodeJS.Timeout | undefined;
    await Promise.race([stopped, new Promise<void>((resolve) => (grace = setTimeout(resolve, CLOSE_GRACE_MS).unref()))]);
    clearTimeout(grace);
    await Promise.all(this.threads.map((thread) => thread.close()));
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
  }

  /** A thread that cannot start is left out (logged): transfers then run on the others and the main thread. */
  private async startThreads(count: number): Promise<void> {
    if (count === 0) return;
    const { address, timeoutMs, maxTimeoutMs, minTimeoutMs, maxRetries, firstAckRetries, stallGiveUpMs, oackTimeoutMs, maxTransferMs } = this.config;
    const settings: ThreadSettings = {
      address,
      timeoutMs,
      maxTimeoutMs,
      minTimeoutMs,
      maxRetries,
      maxTransferMs,
      requestRate: this.options.requestRate,
      ...(firstAckRetries !== undefined ? { firstAckRetries } : {}),
      ...(stallGiveUpMs !== undefined ? { stallGiveUpMs } : {}),
      ...(oackTimeoutMs !== undefined ? { oackTimeoutMs } : {}),
    };
    const threads = Array.from({ length: count }, (_v, i) => new TransferThread(i + 1, settings, this, this.logger));
    const started = await Promise.allSettled(threads.map((thread) => thread.ready()));
    started.forEach((result, i) => {
      if (result.status === 'rejected') {
        this.logger.error({ err: result.reason, thread: i + 1 }, 'tftp: a transfer thread did not start; running without it');
        void threads[i]!.close();
      }
    });
    const ready = threads.filter((_thread, i) => started[i]!.status === 'fulfilled');
    // close() ran while the workers were loading: it could not see them, so stop them here.
    if (this.closing) await Promise.all(ready.map((thread) => thread.close()));
    else this.threads = ready;
  }

  /** On the least busy lane: a transfer thread when the file is in shared memory, else here. */
  private createTransfer(init: TransferInit): ServerTransfer {
    const shared = init.body.shared;
    let lane: TransferThread | undefined;
    if (shared) {
      let least = this.mainLoad;
      for (const thread of this.threads) {
        if (thread.usable && thread.load < least) {
          lane = thread;
          least = thread.load;
        }
      }
    }
    if (lane && shared) {
      this.counters.threaded++;
      return new ThreadedTransfer(this, lane, init, shared);
    }
    this.mainLoad++;
    return new Transfer(this, init);
  }

  private drop(reason: DropReason, client: TftpClient): void {
    this.counters.dropped++;
    this.logger.debug({ reason, client: `${client.address}:${client.port}` }, 'tftp: packet dropped');
    this.emit('packet-dropped', { reason, client });
  }

  private onRequest(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.options.singlePort && !(msg.length >= 2 && msg[0] === 0 && msg[1] === TftpOpcode.RRQ)) {
      const owner = this.byClient.get(`${rinfo.address}:${rinfo.port}`);
      if (owner instanceof Transfer && owner.running) {
        owner.onMessage(msg, rinfo);
        return;
      }
      if (peekAckBlock(msg) >= 0) {
        // An ACK from nobody we are serving: the single-port equivalent of a foreign TID.
        const stranger = { address: rinfo.address, port: rinfo.port };
        if (this.takeToken(stranger.address)) this.replyError(stranger, TftpErrorCode.UNKNOWN_TID, 'Unknown transfer ID');
        this.drop('foreign-tid', stranger);
        return;
      }
    }
    const client = { address: rinfo.address, port: rinfo.port };
    let packet;
    try {
      packet = decodeTftpPacket(msg);
    } catch {
      this.drop('malformed', client);
      const opcode = msg.length >= 2 ? msg.readUInt16BE(0) : -1;
      // A request we cannot parse, or an opcode TFTP does not have, gets ERROR 4 (checklist 16, 33);
      // a broken DATA/ACK/ERROR on the listening port is only noise. Answers spend the sender's
      // request tokens, so garbage cannot be turned into a stream of replies.
      const answer = opcode === TftpOpcode.RRQ || opcode === TftpOpcode.WRQ ? 'Malformed request' : opcode === 0 || opcode > TftpOpcode.OACK ? 'Illegal TFTP operation' : undefined;
      if (answer && this.takeToken(client.address)) this.replyError(client, TftpErrorCode.ILLEGAL_OPERATION, answer);
      return;
    }
    if (packet.type === 'wrq') {
      if (!this.takeToken(client.address)) {
        this.drop('rate-limited', client);
        return;
      }
      this.replyError(client, TftpErrorCode.ACCESS_VIOLATION, 'Read-only server');
      this.emitFailure({ id: this.nextId++, client, file: sanitizeForLog(packet.filename), reason: 'write-refused', message: 'write requests are refused', bytes: 0, durationMs: 0, retries: 0 });
      return;
    }
    if (packet.type !== 'rrq') {
      // DATA/ACK/ERROR/OACK on the listening port belong to no transfer.
      this.drop('unexpected-opcode', client);
      return;
    }
    const key = `${client.address}:${client.port}`;
    const existing = this.byClient.get(key);
    if (existing) {
      this.drop('duplicate-request', client);
      // Its OACK was lost (docs/pi-netboot-protocol.md 3.3): send it again, within the client's request budget.
      if (existing !== 'opening' && this.takeToken(client.address)) existing.requestRepeated();
      return;
    }
    if (!acceptsRequest(this.unconfirmedPerIp.get(client.address) ?? 0, this.limits)) {
      this.drop('unconfirmed-limit', client);
      return;
    }
    if (!this.takeToken(client.address)) {
      this.drop('rate-limited', client);
      return;
    }
    if (this.queue.length >= this.options.maxQueued) {
      this.drop('queue-full', client);
      return;
    }
    this.byClient.set(key, 'opening');
    this.holdUnconfirmed(key, client.address);
    void this.prepare(packet, client, key);
  }

  private holdUnconfirmed(key: string, ip: string): void {
    this.unconfirmedKeys.add(key);
    this.unconfirmedPerIp.set(ip, (this.unconfirmedPerIp.get(ip) ?? 0) + 1);
  }

  /** The request under `key` got its first ACK or ended: it no longer counts against its IP. */
  private releaseUnconfirmed(key: string, ip: string): void {
    if (!this.unconfirmedKeys.delete(key)) return;
    const left = (this.unconfirmedPerIp.get(ip) ?? 1) - 1;
    if (left > 0) this.unconfirmedPerIp.set(ip, left);
    else this.unconfirmedPerIp.delete(ip);
  }

  private takeToken(ip: string): boolean {
    return this.budget.take(ip);
  }

  private async prepare(request: TftpRequestPacket, client: TftpClient, key: string): Promise<void> {
    const id = this.nextId++;
    const file = sanitizeForLog(request.filename);
    const serial = serialOf(request.filename);
    const log = childLogger(this.logger, { transfer: id, client: key, file, ...(serial ? { serial } : {}) });
    const started = this.clock.now();
    const failEarly = (reason: TransferFailureReason, code: number, message: string) => {
      this.byClient.delete(key);
      this.releaseUnconfirmed(key, client.address);
      // An ERROR is no bigger than the request: a refusal gives its token back (a Pi probes many missing files).
      this.budget.refund(client.address);
      this.replyError(client, code, message, 'refusal-port');
      this.emitFailure({ id, client, file, ...(serial ? { serial } : {}), reason, message, bytes: 0, durationMs: this.clock.now() - started, retries: 0 });
      log.debug({ reason }, 'tftp: request refused');
    };
    if (request.mode !== 'octet' && request.mode !== 'netascii') {
      failEarly('illegal-mode', TftpErrorCode.ILLEGAL_OPERATION, `Unsupported mode ${sanitizeForLog(request.mode, 20)}`);
      return;
    }
    let opened: OpenedFile;
    const requestedBlksize = Number(request.options.blksize);
    try {
      opened = await this.source.open(request.filename, {
        client,
        blksize: Number.isInteger(requestedBlksize) && requestedBlksize >= 8 ? Math.min(requestedBlksize, this.options.maxBlksize) : 512,
      });
    } catch (error) {
      if (error instanceof TftpFileError) {
        const code = error.reason === 'not-found' ? TftpErrorCode.FILE_NOT_FOUND : error.reason === 'access-denied' ? TftpErrorCode.ACCESS_VIOLATION : TftpErrorCode.NOT_DEFINED;
        failEarly(error.reason, code, error.message);
      } else {
        log.error({ err: error }, 'tftp: file source failed');
        failEarly('io-error', TftpErrorCode.NOT_DEFINED, 'Read error');
      }
      return;
    }
    if (this.closing) {
      opened.body.release();
      this.byClient.delete(key);
      this.releaseUnconfirmed(key, client.address);
      return;
    }
    let body: FileBody = opened.body;
    const mode = request.mode;
    if (mode === 'netascii') {
      if (body.size > NETASCII_MAX_BYTES) {
        body.release();
        failEarly('io-error', TftpErrorCode.NOT_DEFINED, 'File too large for netascii');
        return;
      }
      try {
        const raw = await body.read(0, body.size);
        const converted = toNetascii(raw);
        body.release();
        body = memoryBody(converted);
      } catch (error) {
        body.release();
        failEarly('io-error', TftpErrorCode.NOT_DEFINED, 'Read error');
        log.warn({ err: error }, 'tftp: netascii read failed');
        return;
      }
    }
    const negotiated = negotiateOptions(
      { options: request.options, mode, fileSize: body.size },
      { maxBlksize: this.options.maxBlksize, maxWindowsize: this.options.maxWindowsize },
    );
    const transfer = this.createTransfer({ id, client, key, opened, body, mode, negotiated, log });
    this.byClient.set(key, transfer);
    this.admit(transfer);
  }

  private admit(transfer: ServerTransfer): void {
    if (mayStart(this.running.size, this.perIp.get(transfer.client.address) ?? 0, this.limits)) {
      this.run(transfer);
    } else {
      if (this.queue.length === 0) {
        this.logger.info({ active: this.running.size, maxConcurrent: this.options.maxConcurrent, perClientMax: this.options.perClientMax }, 'tftp: transfer limit reached, queuing new transfers');
      }
      this.queue.push(transfer);
      transfer.log.debug({ queued: this.queue.length }, 'tftp: transfer queued');
    }
  }

  private run(transfer: ServerTransfer): void {
    this.running.add(transfer);
    this.perIp.set(transfer.client.address, (this.perIp.get(transfer.client.address) ?? 0) + 1);
    this.counters.started++;
    void transfer.start();
  }

  /** Called by a transfer when it ends, whatever the outcome. */
  released(transfer: ServerTransfer): void {
    this.byClient.delete(transfer.key);
    this.releaseUnconfirmed(transfer.key, transfer.client.address);
    if (transfer instanceof Transfer) this.mainLoad--;
    if (this.running.delete(transfer)) {
      const left = (this.perIp.get(transfer.client.address) ?? 1) - 1;
      if (left > 0) this.perIp.set(transfer.client.address, left);
      else this.perIp.delete(transfer.client.address);
    } else {
      const queued = this.queue.indexOf(transfer);
      if (queued >= 0) this.queue.splice(queued, 1);
    }
    this.counters.bytesSent += transfer.bytesSent;
    this.counters.retransmits += transfer.retries;
    if (!this.closing) this.pump();
  }

  /** @internal a transfer's client acknowledged its first packet */
  confirmed(transfer: ServerTransfer): void {
    this.releaseUnconfirmed(transfer.key, transfer.client.address);
  }

  /** Starts waiting transfers while slots are free: the least served address first (see nextToStart). */
  private pump(): void {
    const runningOf = (ip: string) => this.perIp.get(ip) ?? 0;
    for (;;) {
      const i = nextToStart(this.queue.map((t) => t.client.address), runningOf, this.running.size, this.limits);
      if (i < 0) return;
      const [next] = this.queue.splice(i, 1);
      this.run(next!);
    }
  }

  /** Sends an ERROR from the listening port, or from the refusal port (see openRefusalSocket). */
  private replyError(client: TftpClient, code: number, message: string, via: 'listening-port' | 'refusal-port' = 'listening-port'): void {
    const packet = encodeTftpPacket({ type: 'error', code, message });
    const from = via === 'refusal-port' && this.refusals ? this.refusals : this.socket;
    from?.send(packet, client.port, client.address, () => undefined);
  }

  /** @internal event plumbing for Transfer */
  emitFailure(event: TransferFailedEvent): void {
    this.counters.failed++;
    this.emit('transfer-failed', event);
  }
  /** @internal */
  emitServed(event: FileServedEvent): void {
    this.counters.completed++;
    this.emit('file-served', event);
  }
  /** @internal */
  emitAborted(event: TransferAbortedEvent): void {
    this.counters.aborted++;
    this.emit('transfer-aborted', event);
  }
  /** @internal */
  emitStarted(event: TransferStartedEvent): void {
    this.emit('transfer-started', event);
  }
  /** @internal */
  dropped(reason: DropReason, client: TftpClient): void {
    this.drop(reason, client);
  }
  /** @internal whether an unsolicited packet from this IP may still get an ERROR reply */
  mayAnswer(ip: string): boolean {
    return this.takeToken(ip);
  }
  /** @internal a recent round-trip estimate for this client IP */
  recentRtt(ip: string): RttEstimate | undefined {
    const entry = this.rttByIp.get(ip);
    if (!entry) return undefined;
    if (this.clock.now() - entry.at <= RTT_MEMORY_MS) return entry.estimate;
    this.rttByIp.delete(ip);
    return undefined;
  }
  /** @internal */
  rememberRtt(ip: string, estimate: RttEstimate): void {
    this.rttByIp.delete(ip);
    this.rttByIp.set(ip, { estimate, at: this.clock.now() });
    if (this.rttByIp.size > RTT_MEMORY_ENTRIES) this.rttByIp.delete(this.rttByIp.keys().next().value!);
  }
  /** @internal the listening socket, shared by transfers in single-port mode */
  get sharedSocket(): UdpSocket | undefined {
    return this.options.singlePort ? this.socket : undefined;
  }
  /** @internal settings shared with transfers */
  get config(): TransferSettings {
    return (this.settings ??= {
      ...this.options,
      minTimeoutMs: this.options.adaptiveTimeout ? this.options.minTimeoutMs : undefined,
      clock: this.clock,
      socketFactory: this.socketFactory,
    });
  }
  private settings: TransferSettings | undefined;
}

/** The Pi serial folder a request path starts with (`9ffefdef/start4.elf`), if any. */
function serialOf(filename: string): string | undefined {
  const sanitized = sanitizeTftpPath(filename);
  if (!sanitized.ok || sanitized.segments.length < 2) return undefined;
  const first = sanitized.segments[0]!;
  return isSerialFolderName(first) ? first : undefined;
}

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed or never bound
  }
}
