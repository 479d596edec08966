import { describe, expect, it } from 'vitest';
import {
  AdmissionGate,
  DEFAULT_ADAPTIVE_TUNING,
  PI_FILE_LIMIT_MS,
  admissionMode,
  admitNewPi,
  initialSteerState,
  steerCapacity,
  type AdmissionBudget,
  type AdmissionMode,
  type AdmissionState,
  type KernelSample,
  type SteerState,
} from '../src/admission.js';

describe('admitNewPi', () => {
  const cases: Array<[string, AdmissionState, boolean]> = [
    ['gate off admits everyone', { budget: 0, activeBoots: 500, bootInProgress: false }, true],
    ['free slot', { budget: 4, activeBoots: 3, bootInProgress: false }, true],
    ['budget used up', { budget: 4, activeBoots: 4, bootInProgress: false }, false],
    ['over budget', { budget: 4, activeBoots: 9, bootInProgress: false }, false],
    ['a Pi already booting always gets its offer again', { budget: 4, activeBoots: 9, bootInProgress: true }, true],
  ];
  it.each(cases)('%s', (_name, state, expected) => {
    expect(admitNewPi(state)).toBe(expected);
  });
});

const T = DEFAULT_ADAPTIVE_TUNING;

describe('admissionMode', () => {
  const cases: Array<[AdmissionBudget, AdmissionMode['kind']]> = [
    ['auto', 'adaptive'],
    [0, 'off'],
    [1, 'fixed'],
    [148, 'fixed'],
  ];
  it.each(cases)('%s → %s', (budget, kind) => expect(admissionMode(budget).kind).toBe(kind));
});

describe('steerCapacity (adaptive thresholds relative to the 30 s per-file limit)', () => {
  it('derives grow and cut thresholds from the Pi file limit, within floor and ceiling', () => {
    expect(PI_FILE_LIMIT_MS).toBe(30_000);
    expect(T).toMatchObject({
      growBelowMs: 12_000,
      cutAboveMs: 20_000,
      initial: 16,
      min: 8,
      max: 256,
      rampTargetMs: 24_000,
      rampMaxGain: 15,
      rampRearmMs: 600_000,
    });
    expect(initialSteerState(T)).toEqual({ capacity: 16, lastCutAt: Number.NEGATIVE_INFINITY });
  });
  const ramp = Number.NEGATIVE_INFINITY; // never cut: the ramp is on
  const served = (ms: number): KernelSample => ({ kind: 'served', ms });
  // [name, state, sample, now, gateLimited, expected]
  const cases: Array<[string, SteerState, KernelSample, number, boolean, SteerState]> = [
    // The ramp (no cut yet): floor(24 s / ms) − 1 slots per kernel, between 1 and 15.
    [
      'ramp: kernel in 2 s adds 11 (one round ×12)',
      { capacity: 16, lastCutAt: ramp },
      served(2_000),
      5_000,
      true,
      { capacity: 27, lastCutAt: ramp },
    ],
    [
      'ramp: kernel in 1.5 s adds 15 (one round ×16)',
      { capacity: 16, lastCutAt: ramp },
      served(1_500),
      5_000,
      true,
      { capacity: 31, lastCutAt: ramp },
    ],
    [
      'ramp: kernel in 0.2 s adds at most 15',
      { capacity: 16, lastCutAt: ramp },
      served(200),
      5_000,
      true,
      { capacity: 31, lastCutAt: ramp },
    ],
    [
      'ramp: a zero-time kernel adds at most 15',
      { capacity: 16, lastCutAt: ramp },
      served(0),
      5_000,
      true,
      { capacity: 31, lastCutAt: ramp },
    ],
    [
      'ramp: kernel in 3 s adds 7 (one round ×8)',
      { capacity: 16, lastCutAt: ramp },
      served(3_000),
      5_000,
      true,
      { capacity: 23, lastCutAt: ramp },
    ],
    ['ramp: kernel in 7 s adds 2', { capacity: 16, lastCutAt: ramp }, served(7_000), 5_000, true, { capacity: 18, lastCutAt: ramp }],
    [
      'ramp: kernel in 11 s adds 1 (near the grow threshold it is additive)',
      { capacity: 16, lastCutAt: ramp },
      served(11_000),
      5_000,
      true,
      { capacity: 17, lastCutAt: ramp },
    ],
    ['ramp stops at the ceiling', { capacity: 252, lastCutAt: ramp }, served(1_000), 5_000, true, { capacity: 256, lastCutAt: ramp }],
    [
      'nobody waiting: no growth past the initial capacity',
      { capacity: 16, lastCutAt: ramp },
      served(1_000),
      5_000,
      false,
      { capacity: 16, lastCutAt: ramp },
    ],
    [
      'nobody waiting: below the initial capacity, one slot back',
      { capacity: 12, lastCutAt: ramp },
      served(1_000),
      5_000,
      false,
      { capacity: 13, lastCutAt: ramp },
    ],
    [
      'ramp: a slow kernel cuts and ends the ramp',
      { capacity: 120, lastCutAt: ramp },
      served(21_000),
      30_000,
      true,
      { capacity: 90, lastCutAt: 30_000 },
    ],
    [
      'ramp: a timed-out kernel cuts',
      { capacity: 120, lastCutAt: ramp },
      { kind: 'timed-out' },
      30_000,
      true,
      { capacity: 90, lastCutAt: 30_000 },
    ],
    [
      'ramp: a cut needs no waiters',
      { capacity: 120, lastCutAt: ramp },
      served(25_000),
      30_000,
      false,
      { capacity: 90, lastCutAt: 30_000 },
    ],
    // After a cut: additive increase, multiplicative decrease.
    [
      'after a cut a fast kernel grows by one only',
      { capacity: 16, lastCutAt: 50_000 },
      served(1_500),
      100_000,
      true,
      { capacity: 17, lastCutAt: 50_000 },
    ],
    [
      'after a cut: nobody waiting, one slot back towards the initial capacity',
      { capacity: 9, lastCutAt: 50_000 },
      served(1_500),
      100_000,
      false,
      { capacity: 10, lastCutAt: 50_000 },
    ],
    [
      'after a cut: nobody waiting, never past the initial capacity',
      { capacity: 16, lastCutAt: 50_000 },
      served(1_500),
      100_000,
      false,
      { capacity: 16, lastCutAt: 50_000 },
    ],
    ['grow stops at the ceiling', { capacity: 256, lastCutAt: 0 }, served(1_000), 100_000, true, { capacity: 256, lastCutAt: 0 }],
    ['in-between kernel holds', { capacity: 30, lastCutAt: ramp }, served(15_000), 100_000, true, { capacity: 30, lastCutAt: ramp }],
    [
      'exactly the grow threshold holds',
      { capacity: 30, lastCutAt: ramp },
      served(12_000),
      100_000,
      true,
      { capacity: 30, lastCutAt: ramp },
    ],
    [
      'exactly the cut threshold holds',
      { capacity: 30, lastCutAt: ramp },
      served(20_000),
      100_000,
      true,
      { capacity: 30, lastCutAt: ramp },
    ],
    [
      'slow kernel cuts to three quarters',
      { capacity: 40, lastCutAt: 0 },
      served(25_000),
      100_000,
      true,
      { capacity: 30, lastCutAt: 100_000 },
    ],
    [
      'cut never goes below the floor',
      { capacity: 9, lastCutAt: ramp },
      served(29_000),
      100_000,
      true,
      { capacity: 8, lastCutAt: 100_000 },
    ],
    [
      'second cut within the cooldown is ignored',
      { capacity: 30, lastCutAt: 95_000 },
      served(29_000),
      100_000,
      true,
      { capacity: 30, lastCutAt: 95_000 },
    ],
    [
      'cut again once the cooldown passed',
      { capacity: 30, lastCutAt: 90_000 },
      { kind: 'timed-out' },
      100_000,
      true,
      { capacity: 22, lastCutAt: 100_000 },
    ],
    [
      'the ramp is back 10 min after the last cut (a new storm)',
      { capacity: 16, lastCutAt: 50_000 },
      served(2_000),
      650_000,
      true,
      { capacity: 27, lastCutAt: 50_000 },
    ],
    [
      'just short of 10 min after a cut: still additive',
      { capacity: 16, lastCutAt: 50_000 },
      served(2_000),
      649_999,
      true,
      { capacity: 17, lastCutAt: 50_000 },
    ],
    [
      'growing is not held back by a recent cut',
      { capacity: 30, lastCutAt: 99_000 },
      served(3_000),
      100_000,
      true,
      { capacity: 31, lastCutAt: 99_000 },
    ],
  ];
  it.each(cases)('%s', (_name, state, sample, now, gateLimited, expected) => {
    expect(steerCapacity(state, sample, now, T, gateLimited)).toEqual(expected);
  });

  it('rampMaxGain 1 is the plain additive rule', () => {
    expect(steerCapacity({ capacity: 16, lastCutAt: ramp }, served(500), 0, { ...T, rampMaxGain: 1 })).toEqual({
      capacity: 17,
      lastCutAt: ramp,
    });
  });

  it('one round of fast kernels multiplies the capacity; a slow kernel mid-ramp cuts and the ramp does not resume', () => {
    let state = initialSteerState(T);
    for (let i = 0; i < 16; i++) state = steerCapacity(state, served(2_000), 3_000 + i, T);
    expect(state.capacity).toBe(192);
    for (let i = 0; i < 8; i++) state = steerCapacity(state, served(3_000), 7_000 + i, T); // +7 each
    expect(state.capacity).toBe(248);
    state = steerCapacity(state, served(22_000), 9_000, T);
    expect(state).toEqual({ capacity: 186, lastCutAt: 9_000 });
    state = steerCapacity(state, served(1_500), 9_500, T);
    expect(state.capacity).toBe(187);
    state = steerCapacity(state, { kind: 'timed-out' }, 15_000, T); // within the cooldown
    expect(state.capacity).toBe(187);
    state = steerCapacity(state, { kind: 'timed-out' }, 19_000, T);
    expect(state).toEqual({ capacity: 140, lastCutAt: 19_000 });
  });
});

describe('AdmissionGate', () => {
  const ask = (gate: AdmissionGate, key: string, now: number, activeBoots: number, bootInProgress = false) =>
    gate.admit({ key, now, activeBoots, bootInProgress });

  it('off admits everyone; fixed keeps the budget; a Pi already booting always gets its offer', () => {
    const off = new AdmissionGate(admissionMode(0));
    expect(ask(off, 'a', 0, 10_000)).toBe(true);
    expect(off.snapshot(0)).toEqual({ mode: 'off', capacity: Number.POSITIVE_INFINITY, waiting: 0 });
    const fixed = new AdmissionGate(admissionMode(2));
    expect(ask(fixed, 'a', 0, 1)).toBe(true);
    expect(ask(fixed, 'b', 0, 2)).toBe(false);
    expect(ask(fixed, 'c', 0, 9, true)).toBe(true);
    expect(fixed.snapshot(0)).toEqual({ mode: 'fixed', capacity: 2, waiting: 1 });
  });

  it('gives a freed slot to the oldest waiter still sending DISCOVERs, not to a newcomer', () => {
    const gate = new AdmissionGate(admissionMode(1));
    expect(ask(gate, 'old', 0, 1)).toBe(false);
    expect(ask(gate, 'new', 2_000, 1)).toBe(false);
    // Slot frees at 3 s; the newer Pi happens to re-send first: it waits for the older one.
    expect(ask(gate, 'new', 3_000, 0)).toBe(false);
    expect(ask(gate, 'old', 4_000, 0)).toBe(true);
    expect(gate.snapshot(4_000).waiting).toBe(1);
    expect(ask(gate, 'new', 7_000, 1)).toBe(false);
    expect(ask(gate, 'new', 9_000, 0)).toBe(true);
    expect(gate.snapshot(9_000).waiting).toBe(0);
  });

  it('does not hold a slot for an older waiter in its back-off (silent past the DISCOVER gap)', () => {
    const gate = new AdmissionGate(admissionMode(1), { discoverGapMs: 4_500 });
    expect(ask(gate, 'old', 0, 1)).toBe(false);
    expect(ask(gate, 'new', 1_000, 1)).toBe(false);
    expect(ask(gate, 'new', 6_000, 0)).toBe(true); // old last asked 6 s ago
    // old comes back and still has its place: it is the only waiter left.
    expect(ask(gate, 'old', 10_000, 0)).toBe(true);
  });

  it('lets several waiters in when several slots are free, in age order', () => {
    const gate = new AdmissionGate(admissionMode(3));
    for (const [i, key] of ['a', 'b', 'c', 'd'].entries()) expect(ask(gate, key, i * 100, 3)).toBe(false);
    // Two slots free: the two oldest get them whatever order they re-send in; c and d wait.
    expect(ask(gate, 'd', 4_000, 1)).toBe(false);
    expect(ask(gate, 'c', 4_010, 1)).toBe(false);
    expect(ask(gate, 'b', 4_020, 1)).toBe(true);
    expect(ask(gate, 'a', 4_030, 2)).toBe(true);
    expect(ask(gate, 'c', 8_000, 3)).toBe(false);
  });

  it('forgets waiters that went silent, and bounds how many it remembers', () => {
    const gate = new AdmissionGate(admissionMode(1), { forgetWaiterMs: 30_000, maxWaiters: 2 });
    expect(ask(gate, 'a', 0, 1)).toBe(false);
    expect(ask(gate, 'b', 0, 1)).toBe(false);
    expect(ask(gate, 'c', 0, 1)).toBe(false);
    expect(gate.snapshot(0).waiting).toBe(2);
    expect(gate.snapshot(30_001).waiting).toBe(0);
    expect(ask(gate, 'c', 30_001, 0)).toBe(true);
  });

  it('adaptive: starts at the initial capacity, grows on fast kernels, cuts on slow ones, fixed ignores samples', () => {
    const gate = new AdmissionGate(admissionMode('auto'));
    expect(gate.capacity()).toBe(16);
    for (let i = 0; i < 16; i++) expect(ask(gate, `pi${i}`, i, i)).toBe(true);
    expect(ask(gate, 'pi16', 20, 16)).toBe(false);
    gate.observeKernel({ kind: 'served', ms: 4_000 }, 5_000); // pi16 waits: ramp, +5
    expect(gate.capacity()).toBe(21);
    expect(ask(gate, 'pi16', 5_000, 16)).toBe(true);
    gate.observeKernel({ kind: 'served', ms: 24_000 }, 30_000);
    expect(gate.capacity()).toBe(15);
    gate.observeKernel({ kind: 'timed-out' }, 35_000); // within the cooldown
    expect(gate.capacity()).toBe(15);
    gate.observeKernel({ kind: 'served', ms: 1_000 }, 36_000); // after a cut: one slot, no ramp
    expect(gate.capacity()).toBe(16);
    const fixed = new AdmissionGate(admissionMode(5));
    fixed.observeKernel({ kind: 'timed-out' }, 0);
    expect(fixed.capacity()).toBe(5);
  });

  it('SIGHUP: staying adaptive keeps the learnt capacity, fixed → auto starts from the initial value', () => {
    const gate = new AdmissionGate(admissionMode('auto'));
    for (let i = 0; i < 17; i++) ask(gate, `pi${i}`, 0, i);
    for (let i = 0; i < 10; i++) gate.observeKernel({ kind: 'served', ms: 11_000 }, i);
    expect(gate.capacity()).toBe(26);
    gate.setMode(admissionMode('auto'));
    expect(gate.capacity()).toBe(26);
    gate.setMode(admissionMode(4));
    expect(gate.snapshot(0)).toMatchObject({ mode: 'fixed', capacity: 4 });
    gate.setMode(admissionMode('auto'));
    expect(gate.capacity()).toBe(16);
    gate.observeKernel({ kind: 'served', ms: 1_000 }, 20); // the ramp is on again after a fresh start
    expect(gate.capacity()).toBe(31);
    gate.setMode(admissionMode(0));
    expect(gate.capacity()).toBe(Number.POSITIVE_INFINITY);
  });

  it('adaptive ramp: a storm on a fast link opens the gate within one round of kernels; fast kernels with nobody waiting do not grow it', () => {
    const idle = new AdmissionGate(admissionMode('auto'));
    for (let i = 0; i < 10; i++) idle.observeKernel({ kind: 'served', ms: 800 }, i * 60_000); // Pis booting one at a time
    expect(idle.capacity()).toBe(16);

    const gate = new AdmissionGate(admissionMode('auto'));
    let admitted = 0;
    for (let i = 0; i < 200; i++) if (ask(gate, `pi${i}`, 0, admitted)) admitted++;
    expect(admitted).toBe(16);
    for (let i = 0; i < 16; i++) gate.observeKernel({ kind: 'served', ms: 3_000 }, 3_000 + i);
    expect(gate.capacity()).toBe(128);
    // The waiters re-send 4 s after the storm began; the first 16 have booted.
    let second = 0;
    for (let i = 16; i < 200; i++) if (ask(gate, `pi${i}`, 4_000, second)) second++;
    expect(second).toBe(128);
    expect(gate.snapshot(4_000).waiting).toBe(56);
  });
});
