import { describe, expect, it } from 'vitest';
import { ReadTransferMachine } from '@iot-tofu/tftp';
import type { ReadTransferConfig, TransferOutcome } from '@iot-tofu/tftp';

/**
 * Issue 19 item 9, the rules behind the loss figures, on a fake clock (the real peers are in
 * loss.test.ts). atftp 0.8.0 as seen in captures: it answers a repeated DATA with one extra ACK,
 * ignores further repeats, and re-sends its ACK only after 5 s in which no packet at all came
 * from the server (every packet restarts its wait); a second OACK makes it abort.
 */

const ATFTP_TIMEOUT_MS = 5000;
/** The server's defaults at timeoutMs 1000 (server-options.ts), with a LAN round trip of 30 ms. */
const DEFAULTS = { timeoutMs: 30, maxTimeoutMs: 5000, maxRetries: 5, maxDurationMs: 600_000, stallGiveUpMs: 18_000, stallGapMs: 6000 };

/**
 * One transfer of `blocks` blocks against an atftp-like client whose ACKs are lost as `lost(n)`
 * says (n counts every ACK the client sends). Every DATA reaches the client. Returns the outcome
 * and when it came.
 */
function simulate(
  config: Partial<typeof DEFAULTS>,
  blocks: number,
  lost: (n: number) => boolean,
): { outcome: TransferOutcome | undefined; at: number } {
  let now = 0;
  let timerAt = Infinity;
  let outcome: TransferOutcome | undefined;
  let endedAt = -1;
  let lastHeard = 0; // when the client last received anything
  let have = 0; // highest block the client holds
  let extraAckUsed = false;
  let acksSent = 0;
  const pending: number[] = []; // DATA blocks in flight to the client, delivered at once
  const machine = new ReadTransferMachine(
    { size: blocks * 512 - 1, blksize: 512, windowsize: 1, oack: false, firstAckRetries: 4, ...DEFAULTS, ...config },
    {
      sendOack: () => undefined,
      sendBlocks: (first, last) => {
        for (let b = first; b <= last; b++) pending.push(b);
      },
      armTimer: (ms) => {
        timerAt = now + ms;
      },
      finish: (o) => {
        outcome = o;
        endedAt = now;
      },
    },
  );
  const clientAck = (block: number) => {
    if (!lost(acksSent++)) machine.onAck(block, now);
  };
  machine.start(0);
  for (let step = 0; step < 10_000 && !outcome; step++) {
    while (pending.length > 0 && !outcome) {
      const block = pending.shift()!;
      lastHeard = now;
      if (block === have + 1) {
        have = block;
        extraAckUsed = false;
        clientAck(block);
      } else if (!extraAckUsed) {
        extraAckUsed = true;
        clientAck(have);
      }
    }
    if (outcome) break;
    const clientTimeoutAt = lastHeard + ATFTP_TIMEOUT_MS;
    if (clientTimeoutAt < timerAt) {
      now = clientTimeoutAt;
      lastHeard = now; // its select() starts over
      extraAckUsed = false; // atftp resets extra_ack on its timeout
      clientAck(have);
    } else {
      now = timerAt;
      timerAt = Infinity;
      machine.onTimeout(now);
    }
  }
  return { outcome, at: endedAt };
}

describe('TFTP loss rules against an atftp-like client (fake clock)', () => {
  // The failure in every capture: the ACK of block 3 and its one extra ACK are both lost.
  const ackAndExtraLost = (n: number) => n === 2 || n === 3;

  it('without the quiet gap the server gives up before atftp speaks again (the old defaults: 6 s floor, no gap)', () => {
    const { outcome } = simulate({ stallGiveUpMs: 6000, stallGapMs: 0 }, 8, ackAndExtraLost);
    expect(outcome).toMatchObject({ kind: 'timeout' });
  });

  it('past maxRetries the server falls quiet for longer than atftp waits: its re-sent ACK arrives, the download completes', () => {
    expect(simulate({}, 8, ackAndExtraLost).outcome).toEqual({ kind: 'complete' });
  });

  it('atftp gets several quiet gaps before the server gives up: its re-sent ACKs lost twice more still complete', () => {
    // ACK 3, extra ACK, ACK after the first quiet gap, extra ACK after the next repeat: all lost.
    expect(simulate({}, 8, (n) => n >= 2 && n <= 5).outcome).toEqual({ kind: 'complete' });
  });

  it('a client that is gone is still given up, after stallGiveUpMs without a sign of life plus at most one gap', () => {
    const { outcome, at } = simulate({}, 8, (n) => n >= 2);
    expect(outcome).toMatchObject({ kind: 'timeout' });
    expect(at).toBeGreaterThanOrEqual(18_000);
    expect(at).toBeLessThanOrEqual(18_000 + 6000 + 2000);
  });

  it('the gap is only for the stall: after the ACK comes, the next packet is timed by the back-off again', () => {
    const armed: number[] = [];
    const m = new ReadTransferMachine(
      { size: 4096, blksize: 512, windowsize: 1, oack: false, ...DEFAULTS },
      { sendOack: () => undefined, sendBlocks: () => undefined, armTimer: (ms) => void armed.push(ms), finish: () => undefined },
    );
    m.start(0);
    m.onAck(1, 10);
    let t = 10;
    for (let i = 0; i < 6; i++) {
      t += 1000;
      m.onTimeout(t);
    }
    expect(armed.at(-1)).toBe(6000); // the sixth retransmission (past maxRetries 5): quiet gap
    m.onAck(2, t + 4000);
    expect(armed.at(-1)).toBeLessThanOrEqual(5000); // the back-off, never the gap
  });
});

describe('a repeated RRQ while the OACK waits for ACK 0', () => {
  /** The server's defaults (server-options.ts) for an RRQ with options. */
  const SERVER_DEFAULTS: ReadTransferConfig = {
    size: 4096,
    blksize: 512,
    windowsize: 1,
    oack: true,
    timeoutMs: 1000,
    maxTimeoutMs: 5000,
    maxRetries: 5,
    firstAckRetries: 4,
    maxDurationMs: 600_000,
    oackTimeoutMs: 6000,
  };

  const machine = () => {
    const log: string[] = [];
    const m = new ReadTransferMachine(
      {
        size: 4096,
        blksize: 512,
        windowsize: 1,
        oack: true,
        timeoutMs: 1000,
        maxTimeoutMs: 5000,
        maxRetries: 5,
        maxDurationMs: 60_000,
        oackTimeoutMs: 6000,
      },
      {
        sendOack: () => void log.push('oack'),
        sendBlocks: () => undefined,
        armTimer: (ms) => void log.push(`timer ${ms}`),
        finish: () => undefined,
      },
    );
    return { m, log };
  };

  it('a copy right behind the first (the network duplicated the RRQ) sends no second OACK', () => {
    const { m, log } = machine();
    m.start(0);
    expect(m.onRequestRepeated(1)).toBe(false);
    expect(log).toEqual(['oack', 'timer 6000']);
  });

  it("the client's own repeat (its OACK was lost) gets the OACK at once, and the next timed OACK waits a whole interval from it", () => {
    const { m, log } = machine();
    m.start(0);
    expect(m.onRequestRepeated(5000)).toBe(true);
    expect(log).toEqual(['oack', 'timer 6000', 'oack', 'timer 6000']);
  });

  /**
   * A client that repeats its RRQ every `everyMs` for ever and never ACKs, with the timer fired
   * whenever it falls due (the lazy timer in transfer-io.ts does just that). Returns when it ended
   * and how many OACKs went out.
   */
  const repeatForever = (config: Partial<ReadTransferConfig>, everyMs: number) => {
    let now = 0;
    let timerAt = Infinity;
    let endedAt: number | undefined;
    let oacks = 0;
    const m = new ReadTransferMachine(
      { ...SERVER_DEFAULTS, ...config },
      {
        sendOack: () => void oacks++,
        sendBlocks: () => undefined,
        armTimer: (ms) => {
          timerAt = now + ms;
        },
        finish: () => {
          endedAt = now;
        },
      },
    );
    m.start(0);
    let nextRepeat = everyMs;
    while (endedAt === undefined && now < 1_000_000) {
      if (timerAt <= nextRepeat) {
        now = timerAt;
        timerAt = Infinity;
        m.onTimeout(now);
      } else {
        now = nextRepeat;
        nextRepeat += everyMs;
        m.onRequestRepeated(now);
      }
    }
    return { endedAt, oacks, retransmits: m.retransmits };
  };

  it.each([2000, 300, 5900])(
    'a client repeating every %i ms and never ACKing ends within (firstAckRetries + 1) × oackTimeoutMs, after at most 1 + firstAckRetries OACKs',
    (everyMs) => {
      const { endedAt, oacks, retransmits } = repeatForever({}, everyMs);
      expect(endedAt).toBeDefined();
      expect(endedAt!).toBeLessThanOrEqual((4 + 1) * 6000);
      expect(oacks).toBeLessThanOrEqual(1 + 4);
      expect(retransmits).toBe(oacks - 1);
    },
  );

  it('with no first-ACK budget, the repeats still stop at maxDurationMs', () => {
    const { endedAt } = repeatForever({ firstAckRetries: undefined, maxRetries: 1_000_000, maxDurationMs: 20_000 }, 2000);
    expect(endedAt).toBeDefined();
    expect(endedAt!).toBeLessThanOrEqual(20_000 + 6000);
  });
});
