import { createSocket } from 'node:dgram';
import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { IotTofuError } from '@iot-tofu/errors';
import { decodeTftpPacket, encodeTftpPacket, peekAckBlock, TftpErrorCode, TftpOpcode, writeDataHeader } from './packet.js';
import type { TftpRequestPacket } from './packet.js';
import { negotiateOptions, DEFAULT_MAX_BLKSIZE } from './options.js';
import type { NegotiatedOptions } from './options.js';
import { ReadTransferMachine } from './transfer.js';
import type { TransferOutcome, TransferSink } from './transfer.js';
import { TftpFileError } from './file-source.js';
import type { FileBody, OpenedFile, OpenOptions } from './file-source.js';
import { toNetascii } from './netascii.js';
import { sanitizeTftpPath } from './path.js';
import { isSerialFolderName } from '@iot-tofu/rpi';
import { childLogger, sanitizeForLog, silentLogger } from './logger.js';
import type { TftpLogger } from './logger.js';

/** What the server needs from a file source (FileSource, or a test double). */
export interface TftpFileOpener {
  open(name: string, options?: OpenOptions): Promise<OpenedFile>;
}

/** The subset of node:dgram's Socket the server uses; tests inject lossy or reordering wrappers. */
export interface UdpSocket {
  bind(port: number, address: string, callback: () => void): unknown;
  send(msg: Uint8Array | readonly Uint8Array[], port: number, address: string, callback?: (error: Error | null) => void): void;
  on(event: 'message', listener: (msg: Buffer, rinfo: RemoteInfo) => void): unknown;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
  address(): { address: string; port: number };
  close(callback?: () => void): unknown;
}

export type UdpSocketFactory = (role: 'listen' | 'transfer') => UdpSocket;

/** Time source and timers; tests pass a fake clock. */
export interface TftpClock {
  now(): number;
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

const realClock: TftpClock = {
  now: () => performance.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

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
  /** Waiting transfers beyond which new requests are dropped (default 4096). */
  readonly maxQueued?: number;
  /** RRQs accepted per client IP and second, and the burst allowance (default 50/s, burst 100). */
  readonly requestRate?: { readonly perSecond: number; readonly burst: number };
  /** First retransmission interval (default 1000 ms; a client's `timeout` option overrides it). */
  readonly timeoutMs?: number;
  /** Back-off ceiling (default 5000 ms). */
  readonly maxTimeoutMs?: number;
  /** Retransmissions without progress before a transfer is abandoned (default 5). */
  readonly maxRetries?: number;
  /** Whole-transfer limit (default 10 min). */
  readonly maxTransferMs?: number;
  /**
   * Single-port mode (PROTOCOL.md 7): every transfer is answered from the listening socket and
   * told apart by the client's (ip, port), for NAT and containers that forward only port 69.
   * Default off: a fresh socket (TID) per transfer, as RFC 1350 asks.
   */
  readonly singlePort?: boolean;
  readonly logger?: TftpLogger;
  readonly clock?: TftpClock;
  readonly socketFactory?: UdpSocketFactory;
}

export interface TftpClient {
  readonly address: string;
  readonly port: number;
}

export interface TransferStartedEvent {
  readonly id: number;
  readonly client: TftpClient;
  /** The normalised request path (`9ffefdef/start4.elf`, no leading slash). */
  readonly file: string;
  readonly serial?: string;
  readonly origin: OpenedFile['origin'];
  readonly mode: 'octet' | 'netascii';
  readonly size: number;
  readonly blksize: number;
  readonly windowsize: number;
  /** Present when the client asked for tsize (a Pi's probe does). */
  readonly tsize?: number;
}

export interface FileServedEvent extends TransferStartedEvent {
  readonly bytes: number;
  readonly durationMs: number;
  readonly retries: number;
}

/** A client ended the transfer with an ERROR: normal Pi behaviour ("Early terminate" probes). */
export interface TransferAbortedEvent extends TransferStartedEvent {
  readonly reason: 'client-abort';
  readonly code: number;
  readonly message: string;
  readonly bytes: number;
  readonly durationMs: number;
}

export type TransferFailureReason =
  | 'not-found'
  | 'access-denied'
  | 'io-error'
  | 'timeout'
  | 'write-refused'
  | 'illegal-mode'
  | 'shutdown';

export interface TransferFailedEvent {
  readonly id: number;
  readonly client: TftpClient;
  /** The normalised path once the file was opened; before that the client's name, made log-safe. */
  readonly file: string;
  readonly serial?: string;
  readonly reason: TransferFailureReason;
  readonly message: string;
  readonly bytes: number;
  readonly durationMs: number;
  readonly retries: number;
}

export type DropReason =
  | 'malformed'
  | 'unexpected-opcode'
  | 'duplicate-request'
  | 'rate-limited'
  | 'queue-full'
  | 'foreign-tid'
  | 'duplicate-ack'
  | 'out-of-window-ack';

export interface PacketDroppedEvent {
  readonly reason: DropReason;
  readonly client: TftpClient;
}

export interface TftpServerEvents {
  'transfer-started': [TransferStartedEvent];
  'file-served': [FileServedEvent];
  'transfer-aborted': [TransferAbortedEvent];
  'transfer-failed': [TransferFailedEvent];
  'packet-dropped': [PacketDroppedEvent];
}

export interface TftpServerStats {
  readonly active: number;
  readonly queued: number;
  readonly started: number;
  readonly completed: number;
  readonly aborted: number;
  readonly failed: number;
  readonly bytesSent: number;
  readonly retransmits: number;
  readonly dropped: number;
}

export class TftpServerError extends IotTofuError {}

interface Bucket {
  tokens: number;
  last: number;
  /** Set once the limit was logged, cleared when the client is back under it (one line per episode). */
  limited: boolean;
}

const NETASCII_MAX_BYTES = 16 * 1024 * 1024;

/**
 * The TFTP daemon: one listening socket, a fresh socket (TID) per transfer bound to the same
 * address, a queue past `maxConcurrent`, per-client limits and typed events. Prints nothing.
 */
export class TftpServer extends EventEmitter<TftpServerEvents> {
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
  private readonly byClient = new Map<string, Transfer | 'opening'>();
  private readonly running = new Set<Transfer>();
  private readonly queue: Transfer[] = [];
  private readonly perIp = new Map<string, number>();
  private readonly buckets = new Map<string, Bucket>();
  private counters = { started: 0, completed: 0, aborted: 0, failed: 0, bytesSent: 0, retransmits: 0, dropped: 0 };

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
      maxQueued: options.maxQueued ?? 4096,
      requestRate: { perSecond: options.requestRate?.perSecond ?? 50, burst: options.requestRate?.burst ?? 100 },
      timeoutMs: options.timeoutMs ?? 1000,
      maxTimeoutMs: options.maxTimeoutMs ?? 5000,
      maxRetries: options.maxRetries ?? 5,
      maxTransferMs: options.maxTransferMs ?? 600_000,
      singlePort: options.singlePort ?? false,
    };
    for (const key of ['maxConcurrent', 'perClientMax', 'timeoutMs'] as const) {
      if (!(this.options[key] >= 1)) throw new TftpServerError('TFTP_BAD_OPTION', `TftpServer option ${key} must be at least 1`);
    }
  }

  get stats(): TftpServerStats {
    return { active: this.running.size, queued: this.queue.length, ...this.counters };
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
    socket.on('error', (error) => this.logger.error({ err: error }, 'tftp: listening socket error'));
    socket.on('message', (msg, rinfo) => this.onRequest(msg, rinfo));
    this.socket = socket;
    const bound = socket.address();
    this.listening = { address: bound.address, port: bound.port };
    this.logger.info(this.listening, 'tftp: listening');
    return this.listening;
  }

  /** Stops listening and ends every transfer (reported as failed with reason `shutdown`). Idempotent. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    const socket = this.socket;
    this.socket = undefined;
    for (const transfer of this.queue.splice(0)) transfer.fail('shutdown', 'server shutting down');
    await Promise.all([...this.running].map((t) => t.fail('shutdown', 'server shutting down')));
    if (socket) await new Promise<void>((resolve) => socket.close(() => resolve()));
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
    if (this.byClient.has(key)) {
      this.drop('duplicate-request', client);
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
    void this.prepare(packet, client, key);
  }

  private takeToken(ip: string): boolean {
    const { perSecond, burst } = this.options.requestRate;
    const now = this.clock.now();
    let bucket = this.buckets.get(ip);
    if (!bucket) {
      if (this.buckets.size > 4096) this.pruneBuckets(now);
      bucket = { tokens: burst, last: now, limited: false };
      this.buckets.set(ip, bucket);
    }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.last) / 1000) * perSecond);
    bucket.last = now;
    if (bucket.tokens < 1) {
      if (!bucket.limited) this.logger.warn({ client: ip, perSecond, burst }, 'tftp: request rate limit reached, dropping requests from this client');
      bucket.limited = true;
      return false;
    }
    bucket.limited = false;
    bucket.tokens -= 1;
    return true;
  }

  private pruneBuckets(now: number): void {
    for (const [ip, bucket] of this.buckets) if (now - bucket.last > 60_000) this.buckets.delete(ip);
  }

  private async prepare(request: TftpRequestPacket, client: TftpClient, key: string): Promise<void> {
    const id = this.nextId++;
    const file = sanitizeForLog(request.filename);
    const serial = serialOf(request.filename);
    const log = childLogger(this.logger, { transfer: id, client: key, file, ...(serial ? { serial } : {}) });
    const started = this.clock.now();
    const failEarly = (reason: TransferFailureReason, code: number, message: string) => {
      this.byClient.delete(key);
      this.replyError(client, code, message, true);
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
        body = { size: converted.length, read: (offset, length) => converted.subarray(offset, offset + length), release: () => undefined };
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
    const transfer = new Transfer(this, {
      id,
      client,
      key,
      opened,
      body,
      mode,
      negotiated,
      log,
    });
    this.byClient.set(key, transfer);
    this.admit(transfer);
  }

  private admit(transfer: Transfer): void {
    if (this.running.size < this.options.maxConcurrent && (this.perIp.get(transfer.client.address) ?? 0) < this.options.perClientMax) {
      this.run(transfer);
    } else {
      if (this.queue.length === 0) {
        this.logger.info({ active: this.running.size, maxConcurrent: this.options.maxConcurrent, perClientMax: this.options.perClientMax }, 'tftp: transfer limit reached, queuing new transfers');
      }
      this.queue.push(transfer);
      transfer.log.debug({ queued: this.queue.length }, 'tftp: transfer queued');
    }
  }

  private run(transfer: Transfer): void {
    this.running.add(transfer);
    this.perIp.set(transfer.client.address, (this.perIp.get(transfer.client.address) ?? 0) + 1);
    this.counters.started++;
    void transfer.start();
  }

  /** Called by a transfer when it ends, whatever the outcome. */
  released(transfer: Transfer): void {
    this.byClient.delete(transfer.key);
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

  /** Starts the oldest waiting transfers whose clients are under their limit. */
  private pump(): void {
    for (let i = 0; i < this.queue.length && this.running.size < this.options.maxConcurrent; ) {
      const next = this.queue[i]!;
      if ((this.perIp.get(next.client.address) ?? 0) < this.options.perClientMax) {
        this.queue.splice(i, 1);
        this.run(next);
      } else i++;
    }
  }

  private replyError(client: TftpClient, code: number, message: string, freshSocket = false): void {
    const packet = encodeTftpPacket({ type: 'error', code, message });
    if (!freshSocket || this.closing || this.options.singlePort) {
      this.socket?.send(packet, client.port, client.address, () => undefined);
      return;
    }
    // Like dnsmasq and tftpd-hpa, answer a request from a new TID so clients that lock onto the
    // first reply's port see a normal transfer end.
    const socket = this.socketFactory('transfer');
    socket.once('error', () => socket.close());
    bindSocket(socket, 0, this.options.address).then(
      () => socket.send(packet, client.port, client.address, () => socket.close()),
      () => socket.close(),
    );
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
  /** @internal the listening socket, shared by transfers in single-port mode */
  get sharedSocket(): UdpSocket | undefined {
    return this.options.singlePort ? this.socket : undefined;
  }
  /** @internal settings shared with transfers */
  get config(): TransferSettings {
    return (this.settings ??= { ...this.options, clock: this.clock, socketFactory: this.socketFactory });
  }
  private settings: TransferSettings | undefined;
}

/**
 * Every address we send to is a peer's IP literal from rinfo, so resolve it synchronously: the
 * default dns.lookup path costs a process.nextTick per datagram on the hot path.
 */
function literalLookup(address: string, _family: unknown, callback: (error: null, address: string, family: number) => void): void {
  callback(null, address, 4);
}

function createUdp4Socket(): UdpSocket {
  return createSocket({ type: 'udp4', lookup: literalLookup as never });
}

/** DATA headers for every 16-bit block number, built on first use and shared by all transfers. */
const HEADER_BYTES = Buffer.alloc(65536 * 4);
const HEADERS: (Buffer | undefined)[] = new Array<Buffer | undefined>(65536);
function dataHeader(block: number): Buffer {
  let header = HEADERS[block];
  if (!header) {
    header = HEADER_BYTES.subarray(block * 4, block * 4 + 4);
    writeDataHeader(header, block);
    HEADERS[block] = header;
  }
  return header;
}

/** The Pi serial folder a request path starts with (`9ffefdef/start4.elf`), if any. */
function serialOf(filename: string): string | undefined {
  const sanitized = sanitizeTftpPath(filename);
  if (!sanitized.ok || sanitized.segments.length < 2) return undefined;
  const first = sanitized.segments[0]!;
  return isSerialFolderName(first) ? first : undefined;
}

function bindSocket(socket: UdpSocket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    socket.once('error', onError);
    try {
      socket.bind(port, address, () => {
        socket.off('error', onError);
        resolve();
      });
    } catch (error) {
      socket.off('error', onError);
      reject(error as Error);
    }
  });
}

interface TransferSettings {
  readonly address: string;
  readonly singlePort: boolean;
  readonly timeoutMs: number;
  readonly maxTimeoutMs: number;
  readonly maxRetries: number;
  readonly maxTransferMs: number;
  readonly clock: TftpClock;
  readonly socketFactory: UdpSocketFactory;
}

interface TransferInit {
  readonly id: number;
  readonly client: TftpClient;
  readonly key: string;
  readonly opened: OpenedFile;
  readonly body: FileBody;
  readonly mode: 'octet' | 'netascii';
  readonly negotiated: NegotiatedOptions;
  readonly log: TftpLogger;
}

/** One running read transfer: its own socket, the state machine, the timer. */
class Transfer implements TransferSink {
  readonly id: number;
  readonly client: TftpClient;
  readonly key: string;
  readonly log: TftpLogger;
  private readonly server: TftpServer;
  private readonly init: TransferInit;
  private readonly machine: ReadTransferMachine;
  private readonly oackBytes: Uint8Array | undefined;
  private socket: UdpSocket | undefined;
  private timer: unknown;
  private deadline = 0;
  private startedAt = 0;
  private ended = false;

  constructor(server: TftpServer, init: TransferInit) {
    this.server = server;
    this.init = init;
    this.id = init.id;
    this.client = init.client;
    this.key = init.key;
    this.log = init.log;
    const config = server.config;
    const timeoutMs = init.negotiated.timeoutSec !== undefined ? init.negotiated.timeoutSec * 1000 : config.timeoutMs;
    this.oackBytes = init.negotiated.oack ? encodeTftpPacket({ type: 'oack', options: init.negotiated.oack }) : undefined;
    this.machine = new ReadTransferMachine(
      {
        size: init.body.size,
        blksize: init.negotiated.blksize,
        windowsize: init.negotiated.windowsize,
        oack: this.oackBytes !== undefined,
        timeoutMs,
        maxTimeoutMs: Math.max(timeoutMs, config.maxTimeoutMs),
        maxRetries: config.maxRetries,
        maxDurationMs: config.maxTransferMs,
      },
      this,
    );
  }

  get bytesSent(): number {
    return this.machine.bytesAcked;
  }

  get retries(): number {
    return this.machine.retransmits;
  }

  private get startedEvent(): TransferStartedEvent {
    const { opened, negotiated, mode, body } = this.init;
    return {
      id: this.id,
      client: this.client,
      file: opened.path,
      ...(opened.serial ? { serial: opened.serial } : {}),
      origin: opened.origin,
      mode,
      size: body.size,
      blksize: negotiated.blksize,
      windowsize: negotiated.windowsize,
      ...(negotiated.tsize !== undefined ? { tsize: negotiated.tsize } : {}),
    };
  }

  /** True between start() and the end of the transfer. */
  running = false;
  /** False in single-port mode, where the socket is the server's listening socket. */
  private ownsSocket = true;

  async start(): Promise<void> {
    const { clock, socketFactory, address } = this.server.config;
    const shared = this.server.sharedSocket;
    if (shared) {
      this.socket = shared;
      this.ownsSocket = false;
    } else {
      const socket = socketFactory('transfer');
      this.socket = socket;
      try {
        await bindSocket(socket, 0, address);
      } catch (error) {
        this.log.error({ err: error }, 'tftp: cannot open a transfer socket');
        this.socket = undefined;
        try {
          socket.close();
        } catch {
          // never bound: nothing to release
        }
        this.fail('io-error', `cannot open a transfer socket: ${(error as Error).message}`);
        return;
      }
      if (this.ended) return;
      socket.on('error', (error) => this.log.warn({ err: error }, 'tftp: transfer socket error'));
      socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    }
    this.running = true;
    this.startedAt = clock.now();
    this.server.emitStarted(this.startedEvent);
    this.log.debug({ blksize: this.init.negotiated.blksize, windowsize: this.init.negotiated.windowsize, size: this.init.body.size }, 'tftp: transfer started');
    this.machine.start(this.startedAt);
  }

  onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (rinfo.port !== this.client.port || rinfo.address !== this.client.address) {
      // RFC 1350: a stranger on our TID gets ERROR 5 (within its request budget); the transfer carries on.
      if (this.server.mayAnswer(rinfo.address)) {
        this.socket?.send(encodeTftpPacket({ type: 'error', code: TftpErrorCode.UNKNOWN_TID, message: 'Unknown transfer ID' }), rinfo.port, rinfo.address);
      }
      this.server.dropped('foreign-tid', { address: rinfo.address, port: rinfo.port });
      return;
    }
    const block = peekAckBlock(msg);
    if (block >= 0) {
      const result = this.machine.onAck(block, this.server.config.clock.now());
      if (result === 'duplicate') this.server.dropped('duplicate-ack', this.client);
      else if (result === 'out-of-window') this.server.dropped('out-of-window-ack', this.client);
      return;
    }
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === TftpOpcode.ERROR) {
      let code = 0;
      let message = '';
      try {
        const packet = decodeTftpPacket(msg);
        if (packet.type === 'error') ({ code, message } = packet);
      } catch {
        // an ERROR we cannot read still ends the transfer
      }
      this.abortedByClient(code, sanitizeForLog(message));
      return;
    }
    this.server.dropped(msg.length >= 2 && msg[0] === 0 && msg[1]! <= TftpOpcode.OACK ? 'unexpected-opcode' : 'malformed', this.client);
  }

  // TransferSink

  sendOack(): void {
    if (this.oackBytes) this.socket?.send(this.oackBytes, this.client.port, this.client.address);
  }

  sendBlocks(first: number, last: number): void {
    const { blksize } = this.init.negotiated;
    const body = this.init.body;
    for (let block = first; block <= last; block++) {
      const bytes = body.read((block - 1) * blksize, blksize);
      if (bytes instanceof Uint8Array) {
        this.sendData(block, bytes);
      } else {
        // Streamed from disk: keep the order by sending the rest once this read lands.
        bytes.then(
          (data) => {
            if (this.ended) return;
            this.sendData(block, data);
            if (block < last) this.sendBlocks(block + 1, last);
          },
          (error: unknown) => {
            this.log.warn({ err: error }, 'tftp: read failed mid-transfer');
            this.fail('io-error', 'read error');
          },
        );
        return;
      }
    }
  }

  private sendData(block: number, data: Uint8Array): void {
    // Gather-send a shared, immutable header and a view of the cached bytes: no copy and no
    // pool allocation per block. No send callback either (it costs a nextTick per datagram);
    // send errors reach the socket's 'error' listener and the retransmission timer covers loss.
    this.socket?.send([dataHeader(block & 0xffff), data], this.client.port, this.client.address);
  }

  armTimer(ms: number): void {
    const clock = this.server.config.clock;
    const wasArmed = this.deadline !== 0 && this.timer !== undefined;
    this.deadline = clock.now() + ms;
    // One timer per transfer, re-armed lazily: a new deadline per ACK costs no timer churn.
    if (!wasArmed) this.timer = clock.setTimeout(this.onTimer, ms);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.ended) return;
    const clock = this.server.config.clock;
    const now = clock.now();
    if (now < this.deadline) {
      this.timer = clock.setTimeout(this.onTimer, this.deadline - now);
      return;
    }
    this.deadline = 0;
    this.machine.onTimeout(now);
  };

  finish(outcome: TransferOutcome): void {
    const durationMs = this.server.config.clock.now() - this.startedAt;
    if (outcome.kind === 'complete') {
      this.server.emitServed({ ...this.startedEvent, bytes: this.init.body.size, durationMs, retries: this.machine.retransmits });
      this.log.debug({ bytes: this.init.body.size, durationMs, retries: this.machine.retransmits }, 'tftp: file served');
    } else {
      this.server.emitFailure(this.failedEvent('timeout', outcome.message, durationMs));
      this.log.info({ message: outcome.message }, 'tftp: transfer timed out');
    }
    this.teardown();
  }

  private failedEvent(reason: TransferFailureReason, message: string, durationMs: number): TransferFailedEvent {
    const { opened } = this.init;
    return {
      id: this.id,
      client: this.client,
      file: opened.path,
      ...(opened.serial ? { serial: opened.serial } : {}),
      reason,
      message,
      bytes: this.machine.bytesAcked,
      durationMs,
      retries: this.machine.retransmits,
    };
  }

  private abortedByClient(code: number, message: string): void {
    if (this.ended) return;
    this.machine.stop();
    const durationMs = this.server.config.clock.now() - this.startedAt;
    this.server.emitAborted({ ...this.startedEvent, reason: 'client-abort', code, message, bytes: this.machine.bytesAcked, durationMs });
    this.log.debug({ code, message }, 'tftp: client ended the transfer');
    this.teardown();
  }

  /** Ends the transfer from the server side (shutdown, read error). */
  async fail(reason: TransferFailureReason, message: string): Promise<void> {
    if (this.ended) return;
    this.machine.stop();
    const durationMs = this.startedAt ? this.server.config.clock.now() - this.startedAt : 0;
    if (reason !== 'shutdown' && this.socket) {
      // The client gets a generic text; the details stay in the event and the log.
      this.socket.send(encodeTftpPacket({ type: 'error', code: TftpErrorCode.NOT_DEFINED, message: 'Transfer failed' }), this.client.port, this.client.address);
    }
    this.server.emitFailure(this.failedEvent(reason, message, durationMs));
    await this.teardown();
  }

  private teardown(): Promise<void> {
    if (this.ended) return Promise.resolve();
    this.ended = true;
    this.running = false;
    if (this.timer !== undefined) this.server.config.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.init.body.release();
    this.server.released(this);
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || !this.ownsSocket) return Promise.resolve();
    return new Promise<void>((resolve) => {
      try {
        socket.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}
