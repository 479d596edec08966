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

  it('adaptive: starts small and grows with the throughput the link delivers', () => {
    const { gate, advance } = gateAt('adaptive');
    expect(gate.capacity()).toBe(4);
    // 12.5 MB/s (100 Mbit/s) over the 10 s window, 12 MB per boot: 15 s of link = 15 boots.
    for (let i = 0; i < 10; i++) {
      advance(1000);
      gate.transferEnded(i, undefined, 'x/kernel8.img', 12_500_000, true);
    }
    expect(gate.capacity()).toBe(15);
    advance(11_000);
    expect(gate.capacity()).toBe(4);
  });
});
