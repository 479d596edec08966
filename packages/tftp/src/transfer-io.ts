/**
 * The I/O half of a read transfer: runs the pure state machine (transfer-machine.ts) on a link
 * (transfer-link.ts: the native socket, node:dgram or the shared listening socket) and one timer,
 * reads blocks from the file body, reports events to its host. The end of a transfer (each
 * outcome, its event, releasing link, body and slot exactly once) lives in one place: teardown().
 */
import type { RemoteInfo } from 'node:dgram';
import { decodeTftpPacket, encodeTftpPacket, TftpErrorCode, TftpOpcode } from './packet.js';
import type { NegotiatedOptions } from './options.js';
import { ReadTransferMachine } from './transfer-machine.js';
import type { AdaptiveTimeoutConfig, RttEstimate, TransferOutcome, TransferSink } from './transfer-machine.js';
import type { FileBody } from './file-body.js';
import type { OpenedFile } from './file-source.js';
import { sanitizeForLog } from './logger.js';
import type { TftpLogger } from './logger.js';
import { openLink, SharedLink } from './transfer-link.js';
import type { LinkEvents, TransferLink } from './transfer-link.js';
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
  /** Where the datagrams go: set once start() has opened it, unset again at the end. */
  private link: TransferLink | undefined;
  /** The link being opened (start() awaits it; teardown closes what it brings, even late). */
  private opening: Promise<TransferLink> | undefined;
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

  async start(): Promise<void> {
    const { clock, socketFactory, address, nativeSockets } = this.server.config;
    const shared = this.server.sharedSocket;
    if (shared) this.link = new SharedLink(shared, this.client, this.linkEvents);
    else {
      this.opening = openLink({ address, client: this.client, socketFactory, nativeSockets, log: this.log }, this.linkEvents);
      try {
        const link = await this.opening;
        if (this.ended) return; // teardown closes it
        this.link = link;
      } catch (error) {
        this.log.error({ err: error }, 'tftp: cannot open a transfer socket');
        this.fail('io-error', `cannot open a transfer socket: ${(error as Error).message}`);
        return;
      }
    }
    this.running = true;
    this.startedAt = clock.now();
    this.server.emitStarted(this.startedEvent);
    const { blksize, windowsize } = this.init.negotiated;
    this.log.debug({ blksize, windowsize, size: this.init.body.size }, 'tftp: transfer started');
    this.machine.start(this.startedAt);
  }

  private readonly linkEvents: LinkEvents = {
    ack: (block) => this.onAck(block),
    packet: (msg) => this.onClientPacket(msg),
    stranger: (rinfo, port) => {
      // RFC 1350: a stranger on our TID gets ERROR 5 (within its request budget); the transfer carries on.
      if (this.server.mayAnswer(rinfo.address)) {
        port.send(
          encodeTftpPacket({ type: 'error', code: TftpErrorCode.UNKNOWN_TID, message: 'Unknown transfer ID' }),
          rinfo.port,
          rinfo.address,
        );
      }
      this.server.dropped('foreign-tid', { address: rinfo.address, port: rinfo.port });
    },
  };

  /** A datagram on the shared listening socket (single-port mode) that the server routed here. */
  onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.link instanceof SharedLink) this.link.deliver(msg, rinfo);
  }

  private onAck(block: number): void {
    const result = this.machine.onAck(block, this.server.config.clock.now());
    if (result === 'duplicate') this.server.dropped('duplicate-ack', this.client);
    else if (result === 'out-of-window') this.server.dropped('out-of-window-ack', this.client);
  }

  /** A datagram from the client that is not a plain ACK. */
  private onClientPacket(msg: Buffer): void {
    if (msg.length >= 4 && msg[0] === 0 && msg[1] === TftpOpcode.ERROR) {
      // The code survives an ERROR too long or malformed to decode (the native socket reads 2 KiB).
      let code = msg.readUInt16BE(2);
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
    if (this.oackBytes) this.link?.send(this.oackBytes);
  }

  sendBlocks(first: number, last: number): void {
    const { blksize } = this.init.negotiated;
    const body = this.init.body;
    for (let block = first; block <= last; block++) {
      const bytes = body.read((block - 1) * blksize, blksize);
      if (bytes instanceof Uint8Array) {
        this.link?.sendData(block & 0xffff, bytes);
      } else {
        // Streamed from disk: keep the order by sending the rest once this read lands.
        bytes.then(
          (data) => {
            if (this.ended) return;
            this.link?.sendData(block & 0xffff, data);
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
    if (reason !== 'shutdown') {
      // The client gets a generic text; the details stay in the event and the log.
      this.link?.send(encodeTftpPacket({ type: 'error', code: TftpErrorCode.NOT_DEFINED, message: 'Transfer failed' }));
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
    const closing = this.link
      ? this.link.close()
      : this.opening?.then(
          (link) => link.close(),
          () => undefined,
        );
    this.link = undefined;
    return closing ?? Promise.resolve();
  }
}
