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
  /** The client acknowledged something for the first time: it is really at its address. */
  confirmed?(): void;
}

export type TransferOutcome = { readonly kind: 'complete' } | { readonly kind: 'timeout'; readonly message: string };

export interface ReadTransferConfig {
  readonly size: number;
  readonly blksize: number;
  readonly windowsize: number;
  /** True when the transfer opens with an OACK (data waits for ACK 0). */
  readonly oack: boolean;
  /**
   * First retransmission interval, and the ceiling of the adaptive one. Without `adaptive` (a
   * client-negotiated RFC 2349 timeout) every first retransmission waits exactly this.
   */
  readonly timeoutMs: number;
  /** Back-off doubles the interval up to this. */
  readonly maxTimeoutMs: number;
  /** Measure round trips and derive the timeout from them (RFC 6298); absent = fixed `timeoutMs`. */
  readonly adaptive?: AdaptiveTimeoutConfig;
  /** Retransmissions in a row without progress before giving up. */
  readonly maxRetries: number;
  /**
   * Retransmissions of the first packet (OACK or DATA 1) before giving up, with the back-off
   * capped at `timeoutMs` (default: `maxRetries`, back-off up to `maxTimeoutMs`). Until its first ACK a client has not
   * shown it lives at the request's source address (it may be spoofed): such a transfer is
   * bounded in time and in what it reflects.
   */
  readonly firstAckRetries?: number;
  /**
   * After the first ACK, `maxRetries` ends a transfer only once this long has passed since its
   * last progress and since the client last answered a retransmission with an old ACK (default:
   * no such floor). atftp and tftp-hpa ignore duplicate DATA (atftp after one extra ACK) and re-send
   * their ACK only on their own 5 s timeout: five adaptive retransmissions in under a second gave
   * up on clients that were still there.
   */
  readonly stallGiveUpMs?: number;
  /**
   * Interval before the OACK is sent again (default `timeoutMs`). atftp aborts on a second OACK
   * once it has sent ACK 0 ("unexpected OACK") and re-sends a lost ACK 0 itself after its own 5 s
   * timeout; a lost OACK is recovered sooner by the client's repeated RRQ (see `onRequestRepeated`).
   */
  readonly oackTimeoutMs?: number;
  /**
   * Past `maxRetries`, while `stallGiveUpMs` keeps a confirmed transfer, retransmissions are at
   * least this far apart (default: the back-off alone). atftp answers one repeated DATA with an
   * extra ACK, ignores the rest, and re-sends its ACK only after 5 s without any packet from us:
   * every retransmission restarts that wait, so a back-off capped at 5 s never let it answer.
   */
  readonly stallGapMs?: number;
  /** Whole-transfer limit (also ends transfers kept alive by a trickle of ACKs). */
  readonly maxDurationMs: number;
}

export interface AdaptiveTimeoutConfig {
  /** Floor of the retransmission timeout (a LAN round trip is far below it; timers are ~1 ms coarse). */
  readonly minTimeoutMs: number;
  /** Estimate to start from (recent transfers to the same client); else `timeoutMs` until the first sample. */
  readonly initial?: RttEstimate;
}

/** Smoothed round trip and its mean deviation (RFC 6298 SRTT, RTTVAR), in ms. */
export interface RttEstimate {
  readonly srttMs: number;
  readonly rttvarMs: number;
}

/** RFC 6298 smoothing: a first sample sets SRTT = R, RTTVAR = R/2; later ones move by 1/8 and 1/4. */
export function updateRtt(previous: RttEstimate | undefined, sampleMs: number): RttEstimate {
  if (!previous) return { srttMs: sampleMs, rttvarMs: sampleMs / 2 };
  return {
    rttvarMs: 0.75 * previous.rttvarMs + 0.25 * Math.abs(previous.srttMs - sampleMs),
    srttMs: 0.875 * previous.srttMs + 0.125 * sampleMs,
  };
}

/** RTO = SRTT + 4·RTTVAR clamped to [floor, ceiling]. */
export function retransmissionTimeout(estimate: RttEstimate, minMs: number, maxMs: number): number {
  return Math.min(maxMs, Math.max(minMs, Math.ceil(estimate.srttMs + 4 * estimate.rttvarMs)));
}

/**
 * A repeated request this soon after the OACK went out is a copy the network duplicated (it comes
 * right behind the first); a client repeats its RRQ only after its own timeout (a Pi ~2 s, iPXE
 * from 250 ms, atftp 5 s). A second OACK there would cross atftp's ACK 0, and atftp aborts on it.
 */
export const DUPLICATE_REQUEST_MS = 200;

/** What an incoming ACK did; the shell counts the ignored ones. */
export type AckResult = 'progress' | 'duplicate' | 'out-of-window' | 'ignored';

export class ReadTransferMachine {
  readonly totalBlocks: number;
  /** Highest block the client acknowledged (−1 while an OACK waits for ACK 0). */
  private lastAcked: number;
  /** Highest block sent so far (0 = only the OACK). */
  private lastSent = 0;
  private retriesInARow = 0;
  /** Interval the timer is armed with: the base timeout, doubled per consecutive timeout. */
  private currentTimeoutMs: number;
  /** Timeout derived from the round trips (or `timeoutMs`), before back-off. */
  private baseTimeoutMs: number;
  private estimate: RttEstimate | undefined;
  /** The one packet being timed (Karn: sent once only): its block (0 = the OACK) and send time; −1 = none. */
  private timedBlock = -1;
  private timedAt = 0;
  /** Samples taken (for tests and diagnostics). */
  rttSamples = 0;
  private startedAt = 0;
  private finished = false;
  /** Retransmissions over the whole transfer (for events and metrics). */
  retransmits = 0;
  /** The client has acknowledged something (see `firstAckRetries`). */
  private acked = false;
  /** When the transfer last moved, or an old ACK came while retransmitting (the client is there). */
  private lastSignOfLifeAt = 0;
  /** When the OACK was last sent. */
  private oackSentAt = 0;

  constructor(
    private readonly config: ReadTransferConfig,
    private readonly sink: TransferSink,
  ) {
    // The last block is short; when the size is a multiple of blksize it is an empty block.
    this.totalBlocks = Math.floor(config.size / config.blksize) + 1;
    this.lastAcked = config.oack ? -1 : 0;
    this.estimate = config.adaptive?.initial;
    this.baseTimeoutMs = this.estimate ? this.rtoFrom(this.estimate) : config.timeoutMs;
    this.currentTimeoutMs = this.baseTimeoutMs;
  }

  /** The current round-trip estimate (undefined before the first sample, or when not adaptive). */
  get rtt(): RttEstimate | undefined {
    return this.config.adaptive ? this.estimate : undefined;
  }

  /** Interval the timer was last armed with. */
  get timeoutMs(): number {
    return this.currentTimeoutMs;
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
    this.lastSignOfLifeAt = now;
    if (this.config.oack) {
      this.timedBlock = 0;
      this.timedAt = now;
      // The OACK waits the full configured timeout, never a remembered (short) one: clients such
      // as atftp abort on a second OACK that crosses their ACK 0, and ACK 0 comes after the
      // client's own option handling, slower than a steady-state ACK.
      this.currentTimeoutMs = Math.max(this.currentTimeoutMs, this.config.oackTimeoutMs ?? this.config.timeoutMs);
      this.oackSentAt = now;
      this.sink.sendOack();
    } else this.sendWindowAfter(0, now);
    this.sink.armTimer(this.currentTimeoutMs);
  }

  onAck(wireBlock: number, now: number): AckResult {
    if (this.finished) return 'ignored';
    const delta = (wireBlock - (this.lastAcked & 0xffff)) & 0xffff;
    // delta 0: the ACK we already had (Sorcerer's Apprentice: never resend on it).
    if (delta === 0 || this.lastAcked + delta > this.lastSent) {
      if (this.retriesInARow > 0) this.lastSignOfLifeAt = now;
      return delta === 0 ? 'duplicate' : 'out-of-window';
    }
    const block = this.lastAcked + delta;
    this.lastAcked = block;
    this.retriesInARow = 0;
    this.lastSignOfLifeAt = now;
    if (!this.acked) {
      this.acked = true;
      this.sink.confirmed?.();
    }
    if (this.timedBlock >= 0 && block >= this.timedBlock) {
      this.timedBlock = -1;
      if (this.config.adaptive) {
        this.estimate = updateRtt(this.estimate, now - this.timedAt);
        this.baseTimeoutMs = this.rtoFrom(this.estimate);
        this.rttSamples++;
      }
      // A clean sample ends any back-off. After an ACK of a retransmitted packet (no sample, Karn)
      // the backed-off interval stays for the next packet: if the round trip really grew, resetting
      // now would time out every packet again (a retransmission storm).
      this.currentTimeoutMs = this.baseTimeoutMs;
    } else if (!this.config.adaptive) this.currentTimeoutMs = this.baseTimeoutMs;
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
    this.sendWindowAfter(block, now);
    this.sink.armTimer(this.currentTimeoutMs);
    return 'progress';
  }

  onTimeout(now: number): void {
    if (this.finished) return;
    const unconfirmed = this.unconfirmed;
    const cap = this.retryCap();
    const waiting = !unconfirmed && this.config.stallGiveUpMs !== undefined && now - this.lastSignOfLifeAt < this.config.stallGiveUpMs;
    const stalled = this.retriesInARow >= cap;
    if (stalled && !waiting) {
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
    // Karn's rule: an ACK after a retransmission cannot tell which copy it answers.
    this.timedBlock = -1;
    // Before the first ACK the back-off stops at `timeoutMs`: a spoofed request must not hold a slot for long.
    const ceiling = unconfirmed ? Math.max(this.currentTimeoutMs, this.config.timeoutMs) : this.config.maxTimeoutMs;
    this.currentTimeoutMs = Math.min(this.currentTimeoutMs * 2, ceiling);
    if (this.lastAcked < 0) {
      this.oackSentAt = now;
      this.sink.sendOack();
    } else this.sink.sendBlocks(this.lastAcked + 1, this.lastSent);
    // Past the cap, leave the client its own timeout of silence; the back-off itself is kept for
    // the packets after the stall.
    this.sink.armTimer(stalled ? Math.max(this.currentTimeoutMs, this.config.stallGapMs ?? 0) : this.currentTimeoutMs);
  }

  /**
   * The client sent its request again while the OACK waits for ACK 0: the OACK was lost (a Pi
   * repeats its RRQ every ~2 s), so send it now rather than at the next timeout, and time the next
   * one from this copy (a client whose ACK 0 is lost re-sends it itself before that). A repeat
   * within `DUPLICATE_REQUEST_MS` of the last OACK is the network's duplicate: ignored. True if sent.
   * The OACK it sends is a retransmission like a timed one: it spends the same retry budget, and once
   * that or `maxDurationMs` is used up the repeat is ignored and the pending timer (not moved) ends
   * the transfer. Else a client or spoofer repeating faster than the timer would hold the slot for ever.
   */
  onRequestRepeated(now: number): boolean {
    if (this.finished || !this.config.oack || this.lastAcked >= 0) return false;
    if (now - this.oackSentAt < DUPLICATE_REQUEST_MS) return false;
    if (this.retriesInARow >= this.retryCap() || now - this.startedAt > this.config.maxDurationMs) return false;
    this.retriesInARow++;
    this.retransmits++;
    this.timedBlock = -1; // Karn: an ACK 0 now may answer either copy
    this.oackSentAt = now;
    this.sink.sendOack();
    this.sink.armTimer(this.currentTimeoutMs);
    return true;
  }

  /** Stops without an outcome event (client abort, shutdown). */
  stop(): void {
    this.finished = true;
  }

  /** Before the first ACK, with `firstAckRetries` set: the tighter budget and back-off apply. */
  private get unconfirmed(): boolean {
    return !this.acked && this.config.firstAckRetries !== undefined;
  }

  /** Retransmissions in a row before giving up (past it a confirmed transfer may still wait, see `stallGiveUpMs`). */
  private retryCap(): number {
    return this.unconfirmed ? Math.min(this.config.firstAckRetries!, this.config.maxRetries) : this.config.maxRetries;
  }

  private sendWindowAfter(block: number, now: number): void {
    const last = Math.min(block + this.config.windowsize, this.totalBlocks);
    // A window restarted after a partial ACK resends the timed block: no sample from it (Karn).
    if (this.timedBlock > block && this.timedBlock <= this.lastSent) this.timedBlock = -1;
    if (this.timedBlock < 0 && last > this.lastSent) {
      this.timedBlock = last;
      this.timedAt = now;
    }
    this.lastSent = Math.max(this.lastSent, last);
    this.sink.sendBlocks(block + 1, last);
  }

  private rtoFrom(estimate: RttEstimate): number {
    const adaptive = this.config.adaptive;
    return adaptive ? retransmissionTimeout(estimate, adaptive.minTimeoutMs, this.config.timeoutMs) : this.config.timeoutMs;
  }

  private end(outcome: TransferOutcome): void {
    this.finished = true;
    this.sink.finish(outcome);
  }
}
