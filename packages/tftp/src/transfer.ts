/**
 * The read-transfer state machine (RFC 1350 + 2347 + 7440), free of I/O: it is told about ACKs
 * and timer expiries and answers by calling its sink (send OACK, send blocks, arm the timer,
 * finish). Blocks are numbered absolutely from 1; only the wire carries them modulo 65536, so
 * rollover (65535 → 0 → 1) falls out of comparing ACKs modulo 65536 against the window.
 */
export interface TransferSink {
  sendOack(): void;
  /** Send DATA for absolute blocks first..last (inclusive, 1-based). */
  sendBlocks(first: number, last: number): void;
  /** (Re)arm the retransmission timer; replaces any earlier deadline. */
  armTimer(ms: number): void;
  finish(outcome: TransferOutcome): void;
}

export type TransferOutcome =
  | { readonly kind: 'complete' }
  | { readonly kind: 'timeout'; readonly message: string };

export interface ReadTransferConfig {
  readonly size: number;
  readonly blksize: number;
  readonly windowsize: number;
  /** True when the transfer opens with an OACK (data waits for ACK 0). */
  readonly oack: boolean;
  /** First retransmission interval. */
  readonly timeoutMs: number;
  /** Back-off doubles the interval up to this. */
  readonly maxTimeoutMs: number;
  /** Retransmissions in a row without progress before giving up. */
  readonly maxRetries: number;
  /** Whole-transfer limit (also ends transfers kept alive by a trickle of ACKs). */
  readonly maxDurationMs: number;
}

/** What an incoming ACK did; the shell counts the ignored ones. */
export type AckResult = 'progress' | 'duplicate' | 'out-of-window' | 'ignored';

export class ReadTransferMachine {
  readonly totalBlocks: number;
  /** Highest block the client acknowledged (−1 while an OACK waits for ACK 0). */
  private lastAcked: number;
  /** Highest block sent so far (0 = only the OACK). */
  private lastSent = 0;
  private retriesInARow = 0;
  private currentTimeoutMs: number;
  private startedAt = 0;
  private finished = false;
  /** Retransmissions over the whole transfer (for events and metrics). */
  retransmits = 0;

  constructor(
    private readonly config: ReadTransferConfig,
    private readonly sink: TransferSink,
  ) {
    // The last block is short; when the size is a multiple of blksize it is an empty block.
    this.totalBlocks = Math.floor(config.size / config.blksize) + 1;
    this.lastAcked = config.oack ? -1 : 0;
    this.currentTimeoutMs = config.timeoutMs;
  }

  get done(): boolean {
    return this.finished;
  }

  /** Bytes the client has acknowledged. */
  get bytesAcked(): number {
    return Math.max(0, Math.min(this.config.size, this.lastAcked * this.config.blksize));
  }

  start(now: number): void {
    this.startedAt = now;
    if (this.config.oack) this.sink.sendOack();
    else this.sendWindowAfter(0);
    this.sink.armTimer(this.currentTimeoutMs);
  }

  onAck(wireBlock: number, now: number): AckResult {
    if (this.finished) return 'ignored';
    const delta = (wireBlock - (this.lastAcked & 0xffff)) & 0xffff;
    // delta 0: the ACK we already had (Sorcerer's Apprentice: never resend on it).
    if (delta === 0) return 'duplicate';
    const block = this.lastAcked + delta;
    if (block > this.lastSent) return 'out-of-window';
    this.lastAcked = block;
    this.retriesInARow = 0;
    this.currentTimeoutMs = this.config.timeoutMs;
    if (block === this.totalBlocks) {
      this.end({ kind: 'complete' });
      return 'progress';
    }
    if (now - this.startedAt > this.config.maxDurationMs) {
      this.end({ kind: 'timeout', message: `transfer exceeded ${this.config.maxDurationMs} ms` });
      return 'progress';
    }
    // A full-window ACK moves on; an ACK inside the window (RFC 7440: the client lost a block)
    // restarts the window right after it.
    this.sendWindowAfter(block);
    this.sink.armTimer(this.currentTimeoutMs);
    return 'progress';
  }

  onTimeout(now: number): void {
    if (this.finished) return;
    if (this.retriesInARow >= this.config.maxRetries) {
      const waitingFor = this.lastAcked < 0 ? 'ACK 0 after OACK' : `ACK of block ${this.lastSent}`;
      this.end({ kind: 'timeout', message: `no ${waitingFor} after ${this.retriesInARow} retransmissions` });
      return;
    }
    if (now - this.startedAt > this.config.maxDurationMs) {
      this.end({ kind: 'timeout', message: `transfer exceeded ${this.config.maxDurationMs} ms` });
      return;
    }
    this.retriesInARow++;
    this.retransmits++;
    this.currentTimeoutMs = Math.min(this.currentTimeoutMs * 2, this.config.maxTimeoutMs);
    if (this.lastAcked < 0) this.sink.sendOack();
    else this.sink.sendBlocks(this.lastAcked + 1, this.lastSent);
    this.sink.armTimer(this.currentTimeoutMs);
  }

  /** Stops without an outcome event (client abort, shutdown). */
  stop(): void {
    this.finished = true;
  }

  private sendWindowAfter(block: number): void {
    const last = Math.min(block + this.config.windowsize, this.totalBlocks);
    this.lastSent = last;
    this.sink.sendBlocks(block + 1, last);
  }

  private end(outcome: TransferOutcome): void {
    this.finished = true;
    this.sink.finish(outcome);
  }
}
