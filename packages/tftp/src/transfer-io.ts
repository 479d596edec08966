/**
 * The I/O half of a read transfer: runs the pure state machine (transfer-machine.ts) on a socket
 * and one timer, reads blocks from the file body, reports events to its host. Over 400 lines on
 * purpose: the socket's message handling, the timer and the end of a transfer (each outcome, its
 * event, releasing socket, body and slot exactly once) share one object's state and must change together.
 */
import type { RemoteInfo } from 'node:dgram';
import { constants } from 'node:os';
import { decodeTftpPacket, encodeTftpPacket, peekAckBlock, TftpErrorCode, TftpOpcode, writeDataHeader } from './packet.js';
import type { NegotiatedOptions } from './options.js';
import { ReadTransferMachine } from './transfer-machine.js';
import type { AdaptiveTimeoutConfig, RttEstimate, TransferOutcome, TransferSink } from './transfer-machine.js';
import type { FileBody } from './file-body.js';
import type { OpenedFile } from './file-source.js';
import { sanitizeForLog } from './logger.js';
import type { TftpLogger } from './logger.js';
import { bindSocket, connectSocket } from './udp.js';
import { NativeSocketEvent, transferSocketAddon } from './native-socket.js';
import type { NativeSocketHandle, TransferSocketAddon } from './native-socket.js';
import type { TftpClock, UdpSocket, UdpSocketFactory } from './udp.js';
import type {
  DropReason,
  FileServedEvent,
  TftpClient,
  TransferAbortedEvent,
  TransferFailedEvent,
  TransferFailureReason,
  TransferStartedEvent,
} from './events.js';

const errnos = constants.errno;

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

/** What the server holds of a transfer, wherever it runs (this thread or a transfer thread). */
export interface ServerTransfer {
  readonly id: number;
  readonly client: TftpClient;
  /** `ip:port` of the request: one transfer per client TID. */
  readonly key: string;
  readonly log: TftpLogger;
  /** True between start() and the end of the transfer. */
  readonly running: boolean;
  /** Bytes the client acknowledged. */
  readonly bytesSent: number;
  readonly retries: number;
  start(): Promise<void> | void;
  /** Ends the transfer from the server side (shutdown, read error); resolves once it has ended. */
  fail(reason: TransferFailureReason, message: string): Promise<void>;
  /** The client repeated its RRQ (same ip:port): a lost OACK is sent again at once. */
  requestRepeated(): void;
}

/** What a transfer needs from the server that runs it (TftpServer implements it). */
export interface TransferHost {
  readonly config: TransferSettings;
  /** The listening socket when transfers share it (single-port mode). */
  readonly sharedSocket: UdpSocket | undefined;
  emitStarted(event: TransferStartedEvent): void;
  emitServed(event: FileServedEvent): void;
  emitAborted(event: TransferAbortedEvent): void;
  emitFailure(event: TransferFailedEvent): void;
  dropped(reason: DropReason, client: TftpClient): void;
  /** Whether an unsolicited packet from this IP may still get an ERROR reply. */
  mayAnswer(ip: string): boolean;
  /** Called once when a transfer ends, whatever the outcome. */
  released(transfer: ServerTransfer): void;
  /** The client acknowledged its first packet (it really is at its address). */
  confirmed?(transfer: ServerTransfer): void;
  /** Round-trip estimate of recent transfers to this client IP, to start from. */
  recentRtt?(ip: string): RttEstimate | undefined;
  /** Remembers a finished transfer's round-trip estimate for the next transfer to this IP. */
  rememberRtt?(ip: string, estimate: RttEstimate): void;
}

export interface TransferSettings {
  readonly address: string;
  readonly singlePort: boolean;
  readonly timeoutMs: number;
  readonly maxTimeoutMs: number;
  /** Floor of the adaptive timeout; undefined = fixed `timeoutMs` (no round-trip measurement). */
  readonly minTimeoutMs: number | undefined;
  readonly maxRetries: number;
  /** Retransmissions of a transfer's first packet before its client has acknowledged anything (default maxRetries). */
  readonly firstAckRetries?: number;
  /** After the first ACK, no give-up before this long without progress (see ReadTransferConfig). */
  readonly stallGiveUpMs?: number;
  /** Interval before an unanswered OACK is sent again (see ReadTransferConfig). */
  readonly oackTimeoutMs?: number;
  readonly maxTransferMs: number;
  /** Transfer sockets on the native addon (native-socket.ts) instead of node:dgram. */
  readonly nativeSockets: boolean;
  readonly clock: TftpClock;
  readonly socketFactory: UdpSocketFactory;
}

export interface TransferInit {
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
export class Transfer implements TransferSink, ServerTransfer {
  readonly id: number;
  readonly client: TftpClient;
  readonly key: string;
  readonly log: TftpLogger;
  private readonly server: TransferHost;
  private readonly init: TransferInit;
  private readonly machine: ReadTransferMachine;
  private readonly oackBytes: Uint8Array | undefined;
  private socket: UdpSocket | undefined;
  /** The native socket when the transfer runs on the addon (then `socket` is unset). */
  private native: { readonly addon: TransferSocketAddon; readonly handle: NativeSocketHandle } | undefined;
  /** Twin of a connected transfer socket on the same port: receives what strangers send to our TID. */
  private strangers: UdpSocket | undefined;
  /** The socket is connected to the client: sends carry no address, the kernel filters receives. */
  private connected = false;
  private timer: unknown;
  private deadline = 0;
  /** When the pending timer fires (it may fire before `deadline`, then it re-arms). */
  private timerDueAt = 0;
  private startedAt = 0;
  private ended = false;

  constructor(server: TransferHost, init: TransferInit) {
    this.server = server;
    this.init = init;
    this.id = init.id;
    this.client = init.client;
    this.key = init.key;
    this.log = init.log;
    const config = server.config;
    const negotiated = init.negotiated.timeoutSec !== undefined;
    const timeoutMs = negotiated ? init.negotiated.timeoutSec! * 1000 : config.timeoutMs;
    // A client that negotiated a timeout (RFC 2349) gets exactly that: no adaptation.
    let adaptive: AdaptiveTimeoutConfig | undefined;
    if (!negotiated && config.minTimeoutMs !== undefined) {
      const initial = server.recentRtt?.(init.client.address);
      adaptive = { minTimeoutMs: Math.min(config.minTimeoutMs, timeoutMs), ...(initial ? { initial } : {}) };
    }
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
        ...(config.firstAckRetries !== undefined ? { firstAckRetries: config.firstAckRetries } : {}),
        ...(config.stallGiveUpMs !== undefined ? { stallGiveUpMs: config.stallGiveUpMs } : {}),
        // A negotiated timeout (RFC 2349) is the client's word for every packet, the OACK included.
        ...(config.oackTimeoutMs !== undefined && !negotiated ? { oackTimeoutMs: config.oackTimeoutMs } : {}),
        // A stalled transfer's quiet gap outlasts a client's own timeout, as the OACK interval does.
        ...(config.oackTimeoutMs !== undefined && !negotiated ? { stallGapMs: config.oackTimeoutMs } : {}),
        maxDurationMs: config.maxTransferMs,
        ...(adaptive ? { adaptive } : {}),
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
    if (!shared && this.server.config.nativeSockets && (await this.openNative())) {
      if (this.ended) return;
    } else if (shared) {
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
      socket.on('error', (error) => {
        // A connected socket reports the client's ICMP port-unreachable (it went away); the
        // retransmission timer ends the transfer, so that is no warning.
        if ((error as NodeJS.ErrnoException).code === 'ECONNREFUSED') this.log.debug({ err: error }, 'tftp: client port unreachable');
        else this.log.warn({ err: error }, 'tftp: transfer socket error');
      });
      socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
      await this.connectToClient(socket);
      if (this.ended) return;
    }
    this.running = true;
    this.startedAt = clock.now();
    this.server.emitStarted(this.startedEvent);
    const { blksize, windowsize } = this.init.negotiated;
    this.log.debug({ blksize, windowsize, size: this.init.body.size }, 'tftp: transfer started');
    this.machine.start(this.startedAt);
  }

  /**
   * Connects the transfer socket to the client (measured: ~20% less CPU per block than sending
   * with an address) after binding a twin socket to the same address:port; Linux hands the twin
   * every datagram that does not match the connected 4-tuple, so strangers still get ERROR 5.
   * When the twin cannot share the port (a socket factory without SO_REUSEADDR) or connect fails,
   * the transfer runs unconnected on its one socket, as before.
   */
  private async connectToClient(socket: UdpSocket): Promise<void> {
    if (typeof socket.connect !== 'function') return;
    const { socketFactory, address } = this.server.config;
    const twin = socketFactory('strangers');
    try {
      await bindSocket(twin, socket.address().port, address);
    } catch (error) {
      this.log.debug({ err: error }, 'tftp: no stranger socket on the transfer port, running unconnected');
      closeQuietly(twin);
      return;
    }
    if (this.ended) {
      closeQuietly(twin);
      return;
    }
    twin.on('error', (error) => this.log.warn({ err: error }, 'tftp: stranger socket error'));
    twin.on('message', (_msg, rinfo) => this.answerStranger(twin, rinfo));
    this.strangers = twin;
    try {
      await connectSocket(socket, this.client.port, this.client.address);
      this.connected = true;
    } catch (error) {
      // Unconnected, the transfer socket sees strangers itself; the twin only costs a descriptor.
      this.log.debug({ err: error }, 'tftp: cannot connect the transfer socket, running unconnected');
    }
  }

  /**
   * Opens the transfer on the native socket (native-socket.ts): bound, its stranger twin bound to
   * the same port, then connected to the client. False when any step fails: the transfer then
   * opens on node:dgram as before, so the addon can only ever make a transfer cheaper.
   */
  private async openNative(): Promise<boolean> {
    const addon = transferSocketAddon();
    if (!addon) return false;
    const { socketFactory, address } = this.server.config;
    let handle: NativeSocketHandle;
    let port: number;
    try {
      [handle, port] = addon.open(address, this.onNativeEvent);
    } catch (error) {
      this.log.debug({ err: error }, 'tftp: no native transfer socket, using node:dgram');
      return false;
    }
    const twin = socketFactory('strangers');
    try {
      await bindSocket(twin, port, address);
    } catch (error) {
      this.log.debug({ err: error }, 'tftp: no stranger socket on the native transfer port, using node:dgram');
      addon.close(handle);
      closeQuietly(twin);
      return false;
    }
    const connectError = this.ended ? 0 : addon.connect(handle, this.client.address, this.client.port);
    if (this.ended || connectError !== 0) {
      if (connectError !== 0) this.log.debug({ errno: connectError }, 'tftp: cannot connect the native transfer socket, using node:dgram');
      addon.close(handle);
      closeQuietly(twin);
      return this.ended;
    }
    twin.on('error', (error) => this.log.warn({ err: error }, 'tftp: stranger socket error'));
    twin.on('message', (_msg, rinfo) => this.answerStranger(twin, rinfo));
    this.strangers = twin;
    this.native = { addon, handle };
    this.connected = true;
    return true;
  }

  private readonly onNativeEvent = (kind: number, value: number | Buffer): void => {
    // Nothing counts before the socket is connected to the client (the kernel filters from then on).
    if (this.ended || !this.native) return;
    if (kind === NativeSocketEvent.ACK) this.onAck(value as number);
    else if (kind === NativeSocketEvent.PACKET) this.onClientPacket(value as Buffer);
    else if (value === errnos.ECONNREFUSED) this.log.debug({ errno: value }, 'tftp: client port unreachable');
    else this.log.warn({ errno: value }, 'tftp: transfer socket error');
  };

  /** A full socket buffer or the client's ICMP unreachable is left to the retransmission timer. */
  private nativeSendFailed(errno: number): void {
    if (errno === errnos.EAGAIN || errno === errnos.ENOBUFS || errno === errnos.ECONNREFUSED) return;
    this.log.warn({ errno }, 'tftp: transfer socket send failed');
  }

  private answerStranger(from: UdpSocket, rinfo: RemoteInfo): void {
    // RFC 1350: a stranger on our TID gets ERROR 5 (within its request budget); the transfer carries on.
    if (this.server.mayAnswer(rinfo.address)) {
      const unknownTid = encodeTftpPacket({ type: 'error', code: TftpErrorCode.UNKNOWN_TID, message: 'Unknown transfer ID' });
      from.send(unknownTid, rinfo.port, rinfo.address);
    }
    this.server.dropped('foreign-tid', { address: rinfo.address, port: rinfo.port });
  }

  onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (!this.connected && (rinfo.port !== this.client.port || rinfo.address !== this.client.address)) {
      if (this.socket) this.answerStranger(this.socket, rinfo);
      return;
    }
    const block = peekAckBlock(msg);
    if (block >= 0) this.onAck(block);
    else this.onClientPacket(msg);
  }

  private onAck(block: number): void {
    const result = this.machine.onAck(block, this.server.config.clock.now());
    if (result === 'duplicate') this.server.dropped('duplicate-ack', this.client);
    else if (result === 'out-of-window') this.server.dropped('out-of-window-ack', this.client);
  }

  /** A datagram from the client that is not a plain ACK. */
  private onClientPacket(msg: Buffer): void {
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
    if (this.oackBytes) this.send(this.oackBytes);
  }

  private send(packet: Uint8Array | readonly Uint8Array[]): void {
    if (this.native) {
      const error = this.native.addon.send(this.native.handle, packet as Uint8Array);
      if (error !== 0) this.nativeSendFailed(error);
    } else if (this.connected) this.socket?.send(packet);
    else this.socket?.send(packet, this.client.port, this.client.address);
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
    if (this.native) {
      const error = this.native.addon.sendData(this.native.handle, block & 0xffff, data);
      if (error !== 0) this.nativeSendFailed(error);
    } else this.send([dataHeader(block & 0xffff), data]);
  }

  requestRepeated(): void {
    if (this.running) this.machine.onRequestRepeated(this.server.config.clock.now());
  }

  confirmed(): void {
    this.server.confirmed?.(this);
  }

  armTimer(ms: number): void {
    const clock = this.server.config.clock;
    const now = clock.now();
    this.deadline = now + ms;
    // One timer per transfer, re-armed lazily: a later deadline per ACK costs no timer churn;
    // only a deadline before the pending timer (the adaptive timeout shrank) replaces it.
    if (this.timer !== undefined && this.deadline >= this.timerDueAt) return;
    if (this.timer !== undefined) clock.clearTimeout(this.timer);
    this.schedule(now, ms);
  }

  private schedule(now: number, ms: number): void {
    this.timerDueAt = now + ms;
    this.timer = this.server.config.clock.setTimeout(this.onTimer, ms);
  }

  private readonly onTimer = (): void => {
    this.timer = undefined;
    if (this.ended) return;
    const now = this.server.config.clock.now();
    if (now < this.deadline) {
      this.schedule(now, this.deadline - now);
      return;
    }
    this.deadline = 0;
    this.machine.onTimeout(now);
  };

  finish(outcome: TransferOutcome): void {
    const durationMs = this.server.config.clock.now() - this.startedAt;
    if (outcome.kind === 'complete') {
      const rtt = this.machine.rtt;
      if (rtt && this.machine.rttSamples > 0) this.server.rememberRtt?.(this.client.address, rtt);
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
    if (reason !== 'shutdown' && (this.socket || this.native)) {
      // The client gets a generic text; the details stay in the event and the log.
      this.send(encodeTftpPacket({ type: 'error', code: TftpErrorCode.NOT_DEFINED, message: 'Transfer failed' }));
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
    if (this.native) this.native.addon.close(this.native.handle);
    this.native = undefined;
    this.connected = false;
    if (this.strangers) closeQuietly(this.strangers);
    this.strangers = undefined;
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

function closeQuietly(socket: UdpSocket): void {
  try {
    socket.close();
  } catch {
    // already closed or never bound
  }
}
