import { describe, expect, it } from 'vitest';
import { randomBytes, createHash } from 'node:crypto';
import { ReadTransferMachine, retransmissionTimeout, updateRtt } from '../src/index.js';
import type { AdaptiveTimeoutConfig, ReadTransferConfig, TransferOutcome, TransferSink } from '../src/index.js';

type Call = ['oack'] | ['blocks', number, number] | ['timer', number] | ['finish', TransferOutcome['kind']];

function recording(config: Partial<ReadTransferConfig> & { size: number }) {
  const calls: Call[] = [];
  const sink: TransferSink = {
    sendOack: () => calls.push(['oack']),
    sendBlocks: (first, last) => calls.push(['blocks', first, last]),
    armTimer: (ms) => calls.push(['timer', ms]),
    finish: (outcome) => calls.push(['finish', outcome.kind]),
  };
  const machine = new ReadTransferMachine(
    { blksize: 512, windowsize: 1, oack: false, timeoutMs: 100, maxTimeoutMs: 400, maxRetries: 3, maxDurationMs: 60_000, ...config },
    sink,
  );
  const take = () => calls.splice(0);
  return { machine, take };
}

describe('ReadTransferMachine (pure)', () => {
  it.each([
    [0, 512, 1],
    [1, 512, 1],
    [511, 512, 1],
    [512, 512, 2],
    [1024, 512, 3],
    [1025, 512, 3],
    [65536 * 8 + 1, 8, 65537],
  ])('size %i at blksize %i is %i blocks (final short or empty block)', (size, blksize, blocks) => {
    expect(recording({ size, blksize }).machine.totalBlocks).toBe(blocks);
  });

  it('without an OACK sends DATA 1 at once and completes on the final ACK', () => {
    const { machine, take } = recording({ size: 600 });
    machine.start(0);
    expect(take()).toEqual([
      ['blocks', 1, 1],
      ['timer', 100],
    ]);
    expect(machine.onAck(1, 1)).toBe('progress');
    expect(take()).toEqual([
      ['blocks', 2, 2],
      ['timer', 100],
    ]);
    expect(machine.onAck(2, 2)).toBe('progress');
    expect(take()).toEqual([['finish', 'complete']]);
    expect(machine.bytesAcked).toBe(600);
  });

  it('after an OACK waits for ACK 0 before DATA 1, and resends the OACK on timeout', () => {
    const { machine, take } = recording({ size: 10, oack: true });
    machine.start(0);
    expect(take()).toEqual([['oack'], ['timer', 100]]);
    machine.onTimeout(100);
    expect(take()).toEqual([['oack'], ['timer', 200]]);
    expect(machine.onAck(0, 150)).toBe('progress');
    expect(take()).toEqual([
      ['blocks', 1, 1],
      ['timer', 100],
    ]);
  });

  it("never resends on a duplicate ACK (Sorcerer's Apprentice) and ignores ACKs beyond what was sent", () => {
    const { machine, take } = recording({ size: 5000 });
    machine.start(0);
    machine.onAck(1, 1);
    take();
    expect(machine.onAck(1, 2)).toBe('duplicate');
    expect(machine.onAck(7, 2)).toBe('out-of-window');
    expect(machine.onAck(40000, 2)).toBe('out-of-window');
    expect(take()).toEqual([]);
  });

  it('backs off exponentially up to the ceiling and gives up after maxRetries', () => {
    const { machine, take } = recording({ size: 5000, maxRetries: 3 });
    machine.start(0);
    machine.onAck(1, 1);
    take();
    machine.onTimeout(101);
    machine.onTimeout(301);
    machine.onTimeout(701);
    expect(take()).toEqual([
      ['blocks', 2, 2],
      ['timer', 200],
      ['blocks', 2, 2],
      ['timer', 400],
      ['blocks', 2, 2],
      ['timer', 400],
    ]);
    machine.onTimeout(1101);
    expect(take()).toEqual([['finish', 'timeout']]);
    expect(machine.done).toBe(true);
    expect(machine.retransmits).toBe(3);
    // nothing happens after the end
    machine.onTimeout(2000);
    expect(machine.onAck(2, 2000)).toBe('ignored');
    expect(take()).toEqual([]);
  });

  it('progress resets the back-off', () => {
    const { machine, take } = recording({ size: 5000 });
    machine.start(0);
    machine.onTimeout(100);
    machine.onAck(1, 150);
    expect(take().at(-1)).toEqual(['timer', 100]);
  });

  it('ends a transfer that exceeds the whole-transfer limit', () => {
    const { machine, take } = recording({ size: 5000, maxDurationMs: 1000 });
    machine.start(0);
    machine.onAck(1, 1001);
    expect(take().at(-1)).toEqual(['finish', 'timeout']);
  });

  it('sends windows and restarts a window after a partial ACK (RFC 7440)', () => {
    const { machine, take } = recording({ size: 512 * 10 + 3, windowsize: 4 });
    machine.start(0);
    expect(take()).toEqual([
      ['blocks', 1, 4],
      ['timer', 100],
    ]);
    machine.onAck(4, 1);
    expect(take()).toEqual([
      ['blocks', 5, 8],
      ['timer', 100],
    ]);
    machine.onAck(6, 2); // blocks 7 and 8 were lost
    expect(take()).toEqual([
      ['blocks', 7, 10],
      ['timer', 100],
    ]);
    machine.onTimeout(200);
    expect(take()).toEqual([
      ['blocks', 7, 10],
      ['timer', 200],
    ]);
    machine.onAck(10, 300);
    expect(take()).toEqual([
      ['blocks', 11, 11],
      ['timer', 100],
    ]);
    machine.onAck(11, 301);
    expect(take()).toEqual([['finish', 'complete']]);
  });

  it('rolls block numbers over 65535 → 0 → 1 and compares ACKs modulo 65536', () => {
    const { machine, take } = recording({ size: 65536 * 8 + 1, blksize: 8 });
    machine.start(0);
    for (let block = 1; block <= 65535; block++) machine.onAck(block & 0xffff, 1);
    take();
    expect(machine.onAck(0, 2)).toBe('progress'); // absolute block 65536
    expect(take()).toEqual([
      ['blocks', 65537, 65537],
      ['timer', 100],
    ]);
    expect(machine.onAck(0, 3)).toBe('duplicate');
    expect(machine.onAck(1, 4)).toBe('progress');
    expect(take()).toEqual([['finish', 'complete']]);
  });
});

/**
 * A whole transfer over a simulated network under a fake clock: the network drops, duplicates
 * and reorders packets from a seeded generator, both ends retransmit on their own timers, and
 * the received bytes must equal the file exactly.
 */
function simulate(opts: {
  size: number;
  blksize: number;
  windowsize: number;
  oack: boolean;
  loss: number;
  dup: number;
  jitterMs: number;
  seed: number;
  /** One-way base delay at a given time (default 0.05 ms). */
  delayMs?: (now: number) => number;
  adaptive?: AdaptiveTimeoutConfig;
  timeoutMs?: number;
  maxTimeoutMs?: number;
}) {
  let seed = opts.seed;
  const random = () => {
    seed = (seed * 1664525 + 1013904223) >>> 0;
    return seed / 2 ** 32;
  };
  const file = randomBytes(opts.size);
  let now = 0;
  type Timer = { at: number; seq: number; fn: () => void; live: boolean };
  // Binary min-heap on (at, seq): cancelled timers stay in it and are skipped when they surface.
  const heap: Timer[] = [];
  let seq = 0;
  const before = (a: Timer, b: Timer) => a.at < b.at || (a.at === b.at && a.seq < b.seq);
  const push = (timer: Timer) => {
    heap.push(timer);
    for (let i = heap.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const pop = (): Timer | undefined => {
    const top = heap[0];
    const last = heap.pop();
    if (heap.length > 0 && last) {
      heap[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heap.length && before(heap[l]!, heap[m]!)) m = l;
        if (r < heap.length && before(heap[r]!, heap[m]!)) m = r;
        if (m === i) break;
        [heap[i], heap[m]] = [heap[m]!, heap[i]!];
        i = m;
      }
    }
    return top;
  };
  const at = (delay: number, fn: () => void): Timer => {
    const timer = { at: now + delay, seq: seq++, fn, live: true };
    push(timer);
    return timer;
  };
  type Packet = { kind: 'oack' } | { kind: 'data'; block: number; data: Uint8Array } | { kind: 'ack'; block: number };
  const transmit = (deliver: (p: Packet) => void, packet: Packet) => {
    if (random() < opts.loss) return;
    const copies = random() < opts.dup ? 2 : 1;
    const base = opts.delayMs ? opts.delayMs(now) : 0.05;
    for (let i = 0; i < copies; i++) at(base + random() * opts.jitterMs, () => deliver(packet));
  };

  // Client (RFC 1350 lock-step, RFC 7440 windows): ACKs each window, re-ACKs on its own timeout.
  const received: Uint8Array[] = [];
  let expected = 1;
  let inWindow = 0;
  let clientDone = false;
  let clientTimer: Timer | undefined;
  let lastAck = opts.oack ? -1 : 0;
  const clientAck = (block: number) => {
    lastAck = block;
    transmit(toServer, { kind: 'ack', block: block & 0xffff });
    if (clientTimer) clientTimer.live = false;
    clientTimer = at(250, () => !clientDone && lastAck >= 0 && clientAck(lastAck));
  };
  let gapReportedAt = -1;
  const toClient = (packet: Packet) => {
    if (clientDone) {
      // Dally: the final ACK may have been lost, so answer a repeated last block again.
      if (packet.kind === 'data' && packet.block === ((expected - 1) & 0xffff)) clientAck(expected - 1);
      return;
    }
    if (packet.kind === 'oack') {
      if (expected === 1) clientAck(0);
      return;
    }
    if (packet.kind !== 'data') return;
    if (packet.block === (expected & 0xffff)) {
      received.push(packet.data);
      expected++;
      inWindow++;
      const last = packet.data.length < opts.blksize;
      if (last || inWindow >= opts.windowsize) {
        inWindow = 0;
        clientAck(expected - 1);
      }
      if (last) clientDone = true;
    } else if (((packet.block - (expected & 0xffff)) & 0xffff) < 0x8000) {
      // A gap: say once where we are (RFC 7440), then wait for the server to restart the window.
      if (gapReportedAt !== expected) {
        gapReportedAt = expected;
        inWindow = 0;
        clientAck(expected - 1);
      }
    } else if (opts.windowsize === 1) clientAck(expected - 1);
  };

  let outcome: TransferOutcome | undefined;
  let serverTimer: Timer | undefined;
  const sink: TransferSink = {
    sendOack: () => transmit(toClient, { kind: 'oack' }),
    sendBlocks: (first, last) => {
      for (let b = first; b <= last; b++) {
        transmit(toClient, { kind: 'data', block: b & 0xffff, data: file.subarray((b - 1) * opts.blksize, b * opts.blksize) });
      }
    },
    armTimer: (ms) => {
      if (serverTimer) serverTimer.live = false;
      serverTimer = at(ms, () => machine.onTimeout(now));
    },
    finish: (o) => {
      outcome = o;
      if (serverTimer) serverTimer.live = false;
    },
  };
  const machine = new ReadTransferMachine(
    {
      size: opts.size,
      blksize: opts.blksize,
      windowsize: opts.windowsize,
      oack: opts.oack,
      timeoutMs: opts.timeoutMs ?? 40,
      maxTimeoutMs: opts.maxTimeoutMs ?? 200,
      maxRetries: 12,
      maxDurationMs: 3_600_000,
      ...(opts.adaptive ? { adaptive: opts.adaptive } : {}),
    },
    sink,
  );
  function toServer(packet: Packet) {
    if (packet.kind === 'ack') machine.onAck(packet.block, now);
  }
  machine.start(0);
  for (let steps = 0; steps < 5_000_000 && !outcome; steps++) {
    const timer = pop();
    if (!timer) break;
    if (!timer.live) continue;
    now = timer.at;
    timer.live = false;
    timer.fn();
  }
  const got = Buffer.concat(received);
  return {
    outcome,
    exact: createHash('sha256').update(got).digest('hex') === createHash('sha256').update(file).digest('hex'),
    retransmits: machine.retransmits,
    gotBytes: got.length,
    now,
    rtt: machine.rtt,
    samples: machine.rttSamples,
  };
}

describe('ReadTransferMachine over a lossy, duplicating, reordering network (fake clock)', () => {
  const cases = [
    { name: 'clean lock-step', size: 20_000, blksize: 512, windowsize: 1, oack: false, loss: 0, dup: 0, jitterMs: 0.1 },
    { name: 'lock-step, 10% loss', size: 30_000, blksize: 512, windowsize: 1, oack: true, loss: 0.1, dup: 0, jitterMs: 0.1 },
    {
      name: 'lock-step, 20% duplicates, reordering',
      size: 30_000,
      blksize: 1468,
      windowsize: 1,
      oack: true,
      loss: 0,
      dup: 0.2,
      jitterMs: 5,
    },
    { name: 'lock-step, everything at once', size: 40_000, blksize: 512, windowsize: 1, oack: true, loss: 0.15, dup: 0.15, jitterMs: 5 },
    { name: 'window 8, 5% loss, reordering', size: 100_000, blksize: 1468, windowsize: 8, oack: true, loss: 0.05, dup: 0.05, jitterMs: 3 },
    { name: 'window 16, 20% loss', size: 100_000, blksize: 1024, windowsize: 16, oack: true, loss: 0.2, dup: 0.1, jitterMs: 2 },
    {
      name: 'exact multiple of blksize (empty last block), lossy',
      size: 512 * 40,
      blksize: 512,
      windowsize: 4,
      oack: true,
      loss: 0.1,
      dup: 0.1,
      jitterMs: 2,
    },
    {
      name: 'rollover with blksize 8, window 64, lossy',
      size: 65536 * 8 + 1,
      blksize: 8,
      windowsize: 64,
      oack: true,
      loss: 0.01,
      dup: 0.01,
      jitterMs: 0.5,
    },
  ];
  it.each(cases)('$name: byte-exact', (c) => {
    for (const seed of c.size > 100_000 ? [1] : [1, 2, 3]) {
      const result = simulate({ ...c, seed });
      expect(result.outcome).toEqual({ kind: 'complete' });
      expect(result.gotBytes).toBe(c.size);
      expect(result.exact).toBe(true);
      // Lock-step recovers only by timeout; windows mostly recover through partial ACKs.
      if (c.loss > 0 && c.windowsize === 1) expect(result.retransmits).toBeGreaterThan(0);
    }
  });

  it('gives up when the client vanishes (100% loss), bounded in retries', () => {
    const result = simulate({ size: 5000, blksize: 512, windowsize: 1, oack: true, loss: 1, dup: 0, jitterMs: 0.1, seed: 9 });
    expect(result.outcome?.kind).toBe('timeout');
    expect(result.retransmits).toBe(12);
  });
});

describe('RFC 6298 estimator (pure)', () => {
  it.each([
    { name: 'first sample', previous: undefined, sample: 10, srtt: 10, rttvar: 5 },
    { name: 'steady', previous: { srttMs: 10, rttvarMs: 5 }, sample: 10, srtt: 10, rttvar: 3.75 },
    { name: 'slower', previous: { srttMs: 10, rttvarMs: 5 }, sample: 18, srtt: 11, rttvar: 5.75 },
    { name: 'faster', previous: { srttMs: 10, rttvarMs: 5 }, sample: 2, srtt: 9, rttvar: 5.75 },
  ])('updateRtt: $name', ({ previous, sample, srtt, rttvar }) => {
    expect(updateRtt(previous, sample)).toEqual({ srttMs: srtt, rttvarMs: rttvar });
  });

  it.each([
    { srttMs: 10, rttvarMs: 5, rto: 30 },
    { srttMs: 0.2, rttvarMs: 0.1, rto: 20 }, // floor
    { srttMs: 800, rttvarMs: 400, rto: 1000 }, // ceiling
    { srttMs: 9.25, rttvarMs: 5.25, rto: 31 }, // whole ms, rounded up
  ])('retransmissionTimeout($srttMs, $rttvarMs) in [20, 1000] = $rto', ({ srttMs, rttvarMs, rto }) => {
    expect(retransmissionTimeout({ srttMs, rttvarMs }, 20, 1000)).toBe(rto);
  });
});

type Step = ['ack', number, number] | ['timeout', number];

describe('ReadTransferMachine adaptive timeout (pure, fake clock)', () => {
  const adaptive = { timeoutMs: 1000, maxTimeoutMs: 5000, maxRetries: 5, adaptive: { minTimeoutMs: 20 } };
  const cases: { name: string; config: Partial<ReadTransferConfig>; steps: Step[]; timers: number[]; samples: number; srtt?: number }[] = [
    { name: 'uses the configured timeout before the first sample', config: adaptive, steps: [], timers: [1000], samples: 0 },
    {
      name: 'samples DATA → ACK and arms SRTT + 4·RTTVAR',
      config: adaptive,
      steps: [
        ['ack', 1, 10],
        ['ack', 2, 14],
      ],
      timers: [1000, 30, 31],
      samples: 2,
      srtt: 9.25,
    },
    { name: 'samples OACK → ACK 0', config: { ...adaptive, oack: true }, steps: [['ack', 0, 6]], timers: [1000, 20], samples: 1, srtt: 6 },
    {
      name: 'clamps to the floor on a fast LAN',
      config: adaptive,
      steps: [
        ['ack', 1, 0.2],
        ['ack', 2, 0.4],
      ],
      timers: [1000, 20, 20],
      samples: 2,
    },
    {
      name: 'clamps to the ceiling (timeoutMs) on a slow path',
      config: adaptive,
      steps: [['ack', 1, 900]],
      timers: [1000, 1000],
      samples: 1,
      srtt: 900,
    },
    {
      name: 'backs off exponentially on consecutive timeouts, up to maxTimeoutMs',
      config: { ...adaptive, maxTimeoutMs: 200 },
      steps: [
        ['ack', 1, 10],
        ['timeout', 40],
        ['timeout', 100],
        ['timeout', 220],
        ['timeout', 420],
      ],
      timers: [1000, 30, 60, 120, 200, 200],
      samples: 1,
    },
    {
      // Karn: ACK 2 may answer either copy of DATA 2, so no sample and the back-off stays for
      // DATA 3; DATA 3 was sent once, its ACK is a sample and ends the back-off.
      name: "Karn's rule: no sample from a retransmitted block; back-off kept until a clean sample",
      config: adaptive,
      steps: [
        ['ack', 1, 10],
        ['timeout', 40],
        ['ack', 2, 200],
        ['ack', 3, 205],
      ],
      timers: [1000, 30, 60, 60, 30],
      samples: 2,
      srtt: 9.375,
    },
    {
      name: 'starts from a remembered estimate',
      config: { ...adaptive, adaptive: { minTimeoutMs: 20, initial: { srttMs: 50, rttvarMs: 10 } } },
      steps: [['ack', 1, 50]],
      timers: [90, 80],
      samples: 1,
      srtt: 50,
    },
    {
      // atftp aborts on a duplicate OACK, so the OACK never gets a remembered short timeout.
      name: 'an OACK waits the configured timeout even with a remembered estimate; data then adapts',
      config: { ...adaptive, oack: true, adaptive: { minTimeoutMs: 20, initial: { srttMs: 5, rttvarMs: 1 } } },
      steps: [
        ['ack', 0, 6],
        ['ack', 1, 12],
      ],
      timers: [1000, 20, 20],
      samples: 2,
    },
    {
      name: 'a lost OACK backs off from the configured timeout',
      config: { ...adaptive, oack: true, adaptive: { minTimeoutMs: 20, initial: { srttMs: 5, rttvarMs: 1 } } },
      steps: [
        ['timeout', 1000],
        ['ack', 0, 1010],
        ['ack', 1, 1012],
      ],
      timers: [1000, 2000, 2000, 20],
      samples: 1,
    },
    {
      name: 'a window restarted after a partial ACK is not timed from its resent blocks',
      config: { ...adaptive, windowsize: 4 },
      steps: [
        ['ack', 2, 5],
        ['ack', 6, 9],
      ],
      timers: [1000, 1000, 20],
      samples: 1,
      srtt: 4,
    },
    {
      name: 'without `adaptive` (negotiated timeout) the timeout stays fixed whatever the round trip',
      config: { timeoutMs: 1000, maxTimeoutMs: 5000 },
      steps: [
        ['ack', 1, 10],
        ['ack', 2, 14],
        ['timeout', 1014],
        ['ack', 3, 1500],
      ],
      timers: [1000, 1000, 1000, 2000, 1000],
      samples: 0,
    },
  ];
  it.each(cases)('$name', ({ config, steps, timers, samples, srtt }) => {
    const { machine, take } = recording({ size: 512 * 20, ...config });
    machine.start(0);
    for (const step of steps) {
      if (step[0] === 'ack') expect(machine.onAck(step[1], step[2])).toBe('progress');
      else machine.onTimeout(step[1]);
    }
    expect(
      take()
        .filter((c) => c[0] === 'timer')
        .map((c) => c[1]),
    ).toEqual(timers);
    expect(machine.rttSamples).toBe(config.adaptive ? samples : 0);
    if (srtt !== undefined) expect(machine.rtt?.srttMs).toBeCloseTo(srtt, 6);
    if (!config.adaptive) expect(machine.rtt).toBeUndefined();
  });

  it('retry cap and whole-transfer limit are unchanged', () => {
    const { machine, take } = recording({ size: 5000, ...adaptive, maxRetries: 2 });
    machine.start(0);
    machine.onAck(1, 1);
    machine.onTimeout(21);
    machine.onTimeout(61);
    machine.onTimeout(141);
    expect(take().at(-1)).toEqual(['finish', 'timeout']);
    expect(machine.retransmits).toBe(2);
    const limited = recording({ size: 5000, ...adaptive, maxDurationMs: 100 });
    limited.machine.start(0);
    limited.machine.onAck(1, 101);
    expect(limited.take().at(-1)).toEqual(['finish', 'timeout']);
  });
});

describe('adaptive timeout over a simulated network (fake clock)', () => {
  const adaptive = { adaptive: { minTimeoutMs: 20 }, timeoutMs: 1000, maxTimeoutMs: 5000 };
  const cases = [
    { name: 'lock-step, 10% loss', size: 30_000, blksize: 512, windowsize: 1, oack: true, loss: 0.1, dup: 0, jitterMs: 0.1 },
    {
      name: 'lock-step, 20% duplicates, reordering',
      size: 30_000,
      blksize: 1468,
      windowsize: 1,
      oack: true,
      loss: 0,
      dup: 0.2,
      jitterMs: 5,
    },
    { name: 'lock-step, everything at once', size: 40_000, blksize: 512, windowsize: 1, oack: true, loss: 0.15, dup: 0.15, jitterMs: 5 },
    { name: 'window 8, 5% loss, reordering', size: 100_000, blksize: 1468, windowsize: 8, oack: true, loss: 0.05, dup: 0.05, jitterMs: 3 },
    { name: 'window 16, 20% loss', size: 100_000, blksize: 1024, windowsize: 16, oack: true, loss: 0.2, dup: 0.1, jitterMs: 2 },
  ];
  it.each(cases)('$name: byte-exact', (c) => {
    for (const seed of [1, 2, 3]) {
      const result = simulate({ ...c, ...adaptive, seed });
      expect(result.outcome).toEqual({ kind: 'complete' });
      expect(result.exact).toBe(true);
      expect(result.samples).toBeGreaterThan(0);
    }
  });

  it('recovers from loss in tens of ms instead of the configured 1 s (1% loss, lock-step)', () => {
    const base = {
      size: 1468 * 2000,
      blksize: 1468,
      windowsize: 1,
      oack: true,
      loss: 0.01,
      dup: 0,
      jitterMs: 0.2,
      seed: 4,
      timeoutMs: 1000,
      maxTimeoutMs: 5000,
    };
    const fixed = simulate(base);
    const adapted = simulate({ ...base, adaptive: { minTimeoutMs: 20 } });
    expect(fixed.exact && adapted.exact).toBe(true);
    expect(fixed.retransmits).toBeGreaterThan(10);
    // Each loss costs ~1 s with the fixed timeout and ~20 ms adapted.
    expect(adapted.now).toBeLessThan(fixed.now / 10);
  });

  it.each([
    { name: 'RTT jumps 1 ms → 200 ms', before: 0.5, after: 100, maxSpurious: 4 },
    { name: 'RTT jumps 1 ms → 60 ms', before: 0.5, after: 30, maxSpurious: 3 },
    { name: 'RTT falls 200 ms → 1 ms', before: 100, after: 0.5, maxSpurious: 0 },
  ])('$name: spurious retransmissions stay bounded (no retransmit storm)', ({ before, after, maxSpurious }) => {
    const result = simulate({
      size: 512 * 600,
      blksize: 512,
      windowsize: 1,
      oack: true,
      loss: 0,
      dup: 0,
      jitterMs: 0.1,
      seed: 5,
      ...adaptive,
      delayMs: (now) => (now < 150 ? before : after),
    });
    expect(result.outcome).toEqual({ kind: 'complete' });
    expect(result.exact).toBe(true);
    // Nothing is lost here, so every retransmission is spurious.
    expect(result.retransmits).toBeLessThanOrEqual(maxSpurious);
    // The estimate followed the new round trip.
    expect(result.rtt!.srttMs).toBeGreaterThan(after * 2 * 0.9);
    expect(result.rtt!.srttMs).toBeLessThan(after * 2 * 1.1 + 0.3);
  });
});
