/**
 * The TFTP daemon's request path: listening socket, admission (dedupe, rate, unconfirmed and
 * per-client limits), queue, lanes (main thread or transfer threads) and events. Over 400 lines
 * on purpose: every step reads and updates the same per-request state (byClient, running, queue,
 * perIp, unconfirmed), which one class keeps consistent. What stands alone lives elsewhere: the
 * pure limit decisions (client-limits.ts), options and defaults (server-options.ts), opening the
 * requested file (request-file.ts), round-trip memory (rtt-memory.ts), transfers (transfer-io.ts).
 */
import type { RemoteInfo } from 'node:dgram';
import { EventEmitter } from 'node:events';
import { isSerialFolderName } from '@iot-tofu/rpi';
import { decodeTftpPacket, encodeTftpPacket, peekAckBlock, TftpErrorCode, TftpOpcode } from './packet.js';
import type { TftpPacket, TftpRequestPacket } from './packet.js';
import { negotiateOptions } from './options.js';
import { resolveServerOptions, TftpServerError } from './server-options.js';
import type { ResolvedServerOptions, TftpServerOptions } from './server-options.js';
import { openRequestedFile } from './request-file.js';
import type { TftpFileOpener } from './request-file.js';
import { RttMemory } from './rtt-memory.js';

import { sanitizeTftpPath } from './path.js';
import { childLogger, sanitizeForLog, silentLogger } from './logger.js';
import type { TftpLogger } from './logger.js';
import { bindSocket, closeQuietly, closeSocket, createUdp4Socket, realClock } from './udp.js';
import { RequestBudget } from './request-budget.js';
import { acceptsRequest, mayStart, nextToStart } from './client-limits.js';
import type { ClientLimits } from './client-limits.js';
import type { TftpClock, UdpSocket, UdpSocketFactory } from './udp.js';
import { Transfer } from './transfer-io.js';
import type { ServerTransfer, TransferHost, TransferInit, TransferSettings } from './transfer-io.js';
import { ThreadedTransfer, TransferThread } from './worker-proxy.js';
import type { ThreadSettings } from './worker-proxy.js';
import type { RttEstimate } from './transfer-machine.js';
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

/** How long close() waits for transfer threads to confirm their transfers stopped. */
const CLOSE_GRACE_MS = 2000;

/**
 * The TFTP daemon: one listening socket, a fresh socket (TID) per transfer bound to the same
 * address, a queue past `maxConcurrent`, per-client limits and typed events. Prints nothing.
 */
export class TftpServer extends EventEmitter<TftpServerEvents> implements TransferHost {
  private readonly options: ResolvedServerOptions;
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
  private readonly rtts: RttMemory;
  private counters = { threaded: 0, started: 0, completed: 0, aborted: 0, failed: 0, bytesSent: 0, retransmits: 0, dropped: 0 };

  constructor(options: TftpServerOptions) {
    super();
    this.source = options.source;
    this.logger = options.logger ?? silentLogger;
    this.clock = options.clock ?? realClock;
    this.socketFactory = options.socketFactory ?? createUdp4Socket;
    this.rtts = new RttMemory(this.clock);
    this.options = resolveServerOptions(options);
    const { perSecond, burst } = this.options.requestRate;
    this.budget = new RequestBudget(
      this.options.requestRate,
      () => this.clock.now(),
      (ip) => this.logger.warn({ client: ip, perSecond, burst }, 'tftp: request rate limit reached, dropping requests from this client'),
    );
    const { maxConcurrent, perClientMax, perClientUnconfirmed } = this.options;
    this.limits = { maxConcurrent, perClientMax, perClientUnconfirmed };
  }

  /** Which sockets its transfers run on (single-port mode: the listening socket, node:dgram). */
  get transferSockets(): 'native' | 'node:dgram' {
    return this.options.nativeSockets && !this.options.singlePort ? 'native' : 'node:dgram';
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
    if (socket) await closeSocket(socket);
  }

  /** A thread that cannot start is left out (logged): transfers then run on the others and the main thread. */
  private async startThreads(count: number): Promise<void> {
    if (count === 0) return;
    const { address, timeoutMs, maxTimeoutMs, minTimeoutMs, maxRetries, maxTransferMs, nativeSockets } = this.config;
    const { firstAckRetries, stallGiveUpMs, oackTimeoutMs } = this.config;
    const settings: ThreadSettings = {
      address,
      timeoutMs,
      maxTimeoutMs,
      minTimeoutMs,
      maxRetries,
      maxTransferMs,
      nativeSockets,
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
    let packet: TftpPacket;
    try {
      packet = decodeTftpPacket(msg);
    } catch {
      this.drop('malformed', client);
      const opcode = msg.length >= 2 ? msg.readUInt16BE(0) : -1;
      // A request we cannot parse, or an opcode TFTP does not have, gets ERROR 4 (checklist 16, 33);
      // a broken DATA/ACK/ERROR on the listening port is only noise. Answers spend the sender's
      // request tokens, so garbage cannot be turned into a stream of replies.
      const isRequest = opcode === TftpOpcode.RRQ || opcode === TftpOpcode.WRQ;
      const answer = isRequest ? 'Malformed request' : opcode === 0 || opcode > TftpOpcode.OACK ? 'Illegal TFTP operation' : undefined;
      if (answer && this.takeToken(client.address)) this.replyError(client, TftpErrorCode.ILLEGAL_OPERATION, answer);
      return;
    }
    if (packet.type === 'wrq') {
      if (!this.takeToken(client.address)) {
        this.drop('rate-limited', client);
        return;
      }
      this.replyError(client, TftpErrorCode.ACCESS_VIOLATION, 'Read-only server');
      const file = sanitizeForLog(packet.filename);
      const message = 'write requests are refused';
      this.emitFailure({ id: this.nextId++, client, file, reason: 'write-refused', message, bytes: 0, durationMs: 0, retries: 0 });
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
      const durationMs = this.clock.now() - started;
      this.emitFailure({ id, client, file, ...(serial ? { serial } : {}), reason, message, bytes: 0, durationMs, retries: 0 });
      log.debug({ reason }, 'tftp: request refused');
    };
    if (request.mode !== 'octet' && request.mode !== 'netascii') {
      failEarly('illegal-mode', TftpErrorCode.ILLEGAL_OPERATION, `Unsupported mode ${sanitizeForLog(request.mode, 20)}`);
      return;
    }
    const requested = await openRequestedFile(this.source, request, client, this.options.maxBlksize, log);
    if (!requested.ok) {
      failEarly(requested.reason, requested.code, requested.message);
      return;
    }
    const { opened, body } = requested;
    const mode = request.mode;
    if (this.closing) {
      body.release();
      this.byClient.delete(key);
      this.releaseUnconfirmed(key, client.address);
      return;
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
        const { maxConcurrent, perClientMax } = this.options;
        this.logger.info({ active: this.running.size, maxConcurrent, perClientMax }, 'tftp: transfer limit reached, queuing new transfers');
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
      const i = nextToStart(
        this.queue.map((t) => t.client.address),
        runningOf,
        this.running.size,
        this.limits,
      );
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
    return this.rtts.recent(ip);
  }
  /** @internal */
  rememberRtt(ip: string, estimate: RttEstimate): void {
    this.rtts.remember(ip, estimate);
  }
  /** @internal the listening socket, shared by transfers in single-port mode */
  get sharedSocket(): UdpSocket | undefined {
    return this.options.singlePort ? this.socket : undefined;
  }
  /** @internal settings shared with transfers */
  get config(): TransferSettings {
    this.settings ??= {
      ...this.options,
      minTimeoutMs: this.options.adaptiveTimeout ? this.options.minTimeoutMs : undefined,
      clock: this.clock,
      socketFactory: this.socketFactory,
    };
    return this.settings;
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
