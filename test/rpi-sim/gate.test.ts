import { describe, expect, it } from 'vitest';
import { BenchGate, parseGate } from '../../bench/storm/daemon-gate.js';

/**
 * The boot-storm bench's wiring of the daemon's gate (bench/storm/daemon-gate.ts): its --gate
 * parser, which TFTP events end a boot and steer the capacity. The gate's own rules (oldest first,
 * back-off, steering, slots of silent offers) are tested in packages/boot-server/test/admission*.
 */
function gateAt(mode: string) {
  let t = 0;
  const gate = new BenchGate(parseGate(mode), () => t);
  return { gate, advance: (ms: number) => (t += ms) };
}
const mac = (i: number) => `dc:a6:32:00:00:${String(i).padStart(2, '0')}`;

describe('boot-storm bench: the daemon gate wired to TFTP events', () => {
  it('parses its modes and rejects anything else with a clear message', () => {
    expect(parseGate('off')).toEqual({ kind: 'off' });
    expect(parseGate('fixed:12')).toEqual({ kind: 'fixed', budget: 12 });
    expect(parseGate('adaptive')).toMatchObject({ kind: 'adaptive', tuning: { initial: 16, max: 1024 } });
    expect(() => parseGate('fast')).toThrow(/--gate fast: expected off, adaptive or fixed:<n>/);
  });

  it('fixed: admits up to K Pis, keeps answering admitted ones, frees the slot when the kernel (not another file) is served', () => {
    const { gate } = gateAt('fixed:2');
    expect(gate.admit('aaaaaaaa', mac(1))).toBe(true);
    expect(gate.admit('bbbbbbbb', mac(2))).toBe(true);
    gate.transferStarted('aaaaaaaa');
    gate.transferStarted('bbbbbbbb');
    expect(gate.admit('cccccccc', mac(3))).toBe(false);
    expect(gate.admit('aaaaaaaa', mac(1))).toBe(true); // a retrying, admitted Pi is never turned away
    gate.transferEnded('aaaaaaaa', 'aaaaaaaa/start4.elf', 2_000, 'served');
    expect(gate.admit('cccccccc', mac(3))).toBe(false);
    gate.transferEnded('aaaaaaaa', 'aaaaaaaa/kernel8.img', 9_000, 'served');
    expect(gate.admit('cccccccc', mac(3))).toBe(true);
    expect(gate.stats()).toMatchObject({ admitted: 4, booted: 1, active: 2 });
  });

  it('lets the longest-waiting Pi in first', () => {
    const { gate, advance } = gateAt('fixed:1');
    expect(gate.admit('first000', mac(1))).toBe(true);
    gate.transferStarted('first000');
    expect(gate.admit('older000', mac(2))).toBe(false);
    advance(1000);
    expect(gate.admit('newer000', mac(3))).toBe(false);
    gate.transferEnded('first000', 'first000/kernel8.img', 9_000, 'served');
    expect(gate.admit('newer000', mac(3))).toBe(false); // the slot is kept for the older waiter
    expect(gate.admit('older000', mac(2))).toBe(true);
  });

  it('an offer never followed by a TFTP request frees its slot within seconds', () => {
    const { gate, advance } = gateAt('fixed:1');
    expect(gate.admit('silent00', mac(1))).toBe(true);
    expect(gate.admit('alive000', mac(2))).toBe(false);
    advance(4_000);
    expect(gate.admit('alive000', mac(2))).toBe(true);
  });

  it('adaptive: only kernel times steer, a kernel that timed out cuts', () => {
    const { gate } = gateAt('adaptive');
    expect(gate.stats().capacity).toBe(16);
    for (let i = 0; i < 16; i++) {
      expect(gate.admit(`pi${String(i).padStart(6, '0')}`, mac(i))).toBe(true);
      gate.transferStarted(`pi${String(i).padStart(6, '0')}`);
    }
    expect(gate.admit('waiting0', mac(20))).toBe(false);
    gate.transferEnded(undefined, 'x/start4.elf', 1000, 'served'); // not the kernel: ignored
    expect(gate.stats().capacity).toBe(16);
    gate.transferEnded('pi000000', 'pi000000/kernel8.img', 5000, 'served'); // ramp: floor(24 s / 5 s) - 1 = 3 more
    expect(gate.stats().capacity).toBe(19);
    gate.transferEnded('pi000001', 'pi000001/kernel8.img', 30_000, 'timed-out');
    expect(gate.stats().capacity).toBe(14);
  });
});
