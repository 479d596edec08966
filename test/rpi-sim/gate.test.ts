import { describe, expect, it } from 'vitest';
import { AdmissionGate, parseGate } from '../../bench/storm/gate.js';

function gateAt(mode: string) {
  let t = 0;
  const gate = new AdmissionGate(parseGate(mode), () => t);
  return { gate, advance: (ms: number) => (t += ms) };
}

describe('boot-storm admission gate (bench/storm/gate.ts)', () => {
  it('parses its modes and rejects anything else with a clear message', () => {
    expect(parseGate('off')).toEqual({ kind: 'off' });
    expect(parseGate('fixed:12')).toEqual({ kind: 'fixed', capacity: 12 });
    expect(parseGate('adaptive')).toMatchObject({ kind: 'adaptive' });
    expect(() => parseGate('fast')).toThrow(/--gate fast: expected off, adaptive or fixed:<n>/);
  });

  it('fixed: admits up to K Pis, keeps answering admitted ones, frees the slot when the kernel is served', () => {
    const { gate } = gateAt('fixed:2');
    expect(gate.admit('aaaaaaaa')).toBe(true);
    expect(gate.admit('bbbbbbbb')).toBe(true);
    expect(gate.admit('cccccccc')).toBe(false);
    expect(gate.admit('aaaaaaaa')).toBe(true); // a retrying, admitted Pi is never turned away
    gate.transferEnded(1, 'aaaaaaaa', 'aaaaaaaa/start4.elf', 2_000_000, true);
    expect(gate.admit('cccccccc')).toBe(false);
    gate.transferEnded(2, 'aaaaaaaa', 'aaaaaaaa/kernel8.img', 9_000_000, true);
    expect(gate.admit('cccccccc')).toBe(true);
    expect(gate.stats()).toMatchObject({ admitted: 3, booted: 1, active: 2 });
  });

  it('lets the longest-waiting Pi in first', () => {
    const { gate, advance } = gateAt('fixed:1');
    expect(gate.admit('first000')).toBe(true);
    expect(gate.admit('older000')).toBe(false);
    advance(1000);
    expect(gate.admit('newer000')).toBe(false);
    gate.transferEnded(1, 'first000', 'first000/kernel8.img', 9_000_000, true);
    expect(gate.admit('newer000')).toBe(false); // the slot is kept for the older waiter
    expect(gate.admit('older000')).toBe(true);
  });

  it('forgets an admitted Pi that went silent, so a dead Pi does not hold a slot forever', () => {
    const { gate, advance } = gateAt('fixed:1');
    expect(gate.admit('dead0000')).toBe(true);
    advance(46_000);
    expect(gate.admit('alive000')).toBe(true);
    expect(gate.stats()).toMatchObject({ expired: 1 });
  });

  it('adaptive: starts at 16, grows on fast kernels only while a Pi waits, cuts back when one nears the Pi limit, never below 8', () => {
    const { gate, advance } = gateAt('adaptive');
    expect(gate.capacity()).toBe(16);
    gate.transferEnded(1, undefined, 'x/kernel8.img', 5000, true);
    expect(gate.capacity()).toBe(16); // nobody waiting: never past the initial capacity
    for (let i = 0; i < 16; i++) expect(gate.admit(`pi${String(i).padStart(6, '0')}`)).toBe(true);
    expect(gate.admit('waiting0')).toBe(false);
    gate.transferEnded(2, undefined, 'x/kernel8.img', 5000, true); // ramp: floor(24 s / 5 s) - 1 = 3 more
    expect(gate.capacity()).toBe(19);
    gate.transferEnded(3, undefined, 'x/kernel8.img', 15_000, true); // between 12 and 20 s: hold
    gate.transferEnded(4, undefined, 'x/start4.elf', 1000, true); // not the kernel: ignored
    expect(gate.capacity()).toBe(19);
    gate.transferEnded(5, undefined, 'x/kernel8.img', 21_000, true);
    expect(gate.capacity()).toBe(14);
    gate.transferEnded(6, undefined, 'x/kernel8.img', 22_000, true); // same slow wave: one cut per cooldown
    expect(gate.capacity()).toBe(14);
    advance(10_000);
    gate.transferEnded(7, undefined, 'x/kernel8.img', 21_000, true);
    expect(gate.capacity()).toBe(10);
    advance(10_000);
    gate.transferEnded(8, undefined, 'x/kernel8.img', 25_000, true);
    expect(gate.capacity()).toBe(8);
  });
});

describe('admission gate and DHCP back-off', () => {
  it('does not keep a slot for an older waiter that stopped sending DISCOVERs (its 5 s back-off)', () => {
    let t = 0;
    const gate = new AdmissionGate(parseGate('fixed:1'), () => t);
    expect(gate.admit('first000')).toBe(true);
    expect(gate.admit('older000')).toBe(false);
    t += 3000;
    expect(gate.admit('newer000')).toBe(false);
    gate.transferEnded(1, 'first000', 'first000/kernel8.img', 9_000_000, true);
    t += 3000; // older000 last asked 6 s ago: it is backing off
    expect(gate.admit('newer000')).toBe(true);
  });
});
