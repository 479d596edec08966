import { describe, expect, it } from 'vitest';
import { AdmissionControl } from '../src/admission-control.js';
import { AdmissionGate, admissionMode } from '../src/admission.js';

/**
 * Issue 19 item 7: DISCOVERs that look like Pis but never fetch a kernel must not hold the gate.
 * Fake clock; each case is a burst of forged DISCOVERs followed by one real Pi.
 */
const forged = (i: number) => ({ key: `f${String(i).padStart(7, '0')}`, mac: `02:00:00:00:${(i >> 8) & 255}:${i & 255}` });
const realPi = { key: '9ffefdef', mac: 'dc:a6:32:01:02:03' };

function control(budget: number | 'auto' = 'auto') {
  return new AdmissionControl(new AdmissionGate(admissionMode(budget)));
}

describe('AdmissionControl: clients that never fetch cannot hold the gate', () => {
  it.each([
    { mode: 'any-pi: forged unknown serials', forgedKnown: false },
    { mode: 'registered: forged registered serials from MACs the fleet does not know for them', forgedKnown: false },
  ])('$mode: a known Pi gets its offer on its first DISCOVER right after a burst', ({ forgedKnown }) => {
    const admission = control();
    let let_in = 0;
    for (let i = 0; i < 500; i++) if (admission.admit({ ...forged(i), known: forgedKnown, now: i })) let_in++;
    expect(let_in).toBe(16); // the burst fills the gate…
    expect(admission.admit({ ...realPi, known: true, now: 600 })).toBe(true); // …but not against a known Pi
    expect(admission.active(600)).toBe(16);
  });

  it("a full copy of a registered Pi (its serial and MAC) holds only that Pi's key: the real one is let in as a repeat", () => {
    const admission = control(1);
    expect(admission.admit({ ...realPi, known: true, now: 0 })).toBe(true); // the forger's copy
    expect(admission.admit({ ...realPi, known: true, now: 100 })).toBe(true); // the real Pi
  });

  it('silent offers free their slots after the grace; their keys go behind everyone else', () => {
    const admission = control(4);
    for (let i = 0; i < 4; i++) expect(admission.admit({ ...forged(i), known: false, now: 0 })).toBe(true);
    const other = { key: 'aaaaaaaa', mac: '02:aa:00:00:00:01', known: false };
    expect(admission.admit({ ...other, now: 500 })).toBe(false); // same priority, gate full
    // 2 s later no forged key fetched: the slots are free and the forgers' re-sends queue behind.
    for (let i = 0; i < 4; i++) admission.admit({ ...forged(i), known: false, now: 2_100 + i });
    expect(admission.admit({ ...other, now: 2_200 })).toBe(true);
    expect(admission.priorityOf({ ...forged(0), known: true, now: 2_200 })).toBe(2);
  });

  it('a Pi that fetches keeps its slot until its boot ends; an unknown key never takes it', () => {
    const admission = control(1);
    expect(admission.admit({ ...realPi, known: true, now: 0 })).toBe(true);
    admission.fetched(realPi.key, 50);
    expect(admission.admit({ ...forged(1), known: false, now: 5_000 })).toBe(false);
    expect(admission.admit({ key: 'bbbbbbbb', mac: '02:bb:00:00:00:01', known: true, now: 5_000 })).toBe(false); // in use, not preemptible
    admission.release(realPi.key);
    expect(admission.admit({ key: 'bbbbbbbb', mac: '02:bb:00:00:00:01', known: true, now: 5_100 })).toBe(true);
  });

  it('a fetching Pi silent past the stall time frees its slot', () => {
    const admission = control(1);
    admission.admit({ ...realPi, known: true, now: 0 });
    admission.fetched(realPi.key, 10);
    expect(admission.active(60_000)).toBe(1);
    expect(admission.active(60_011)).toBe(0);
  });

  it('one tentative slot per MAC: a forger cycling serials behind one MAC gets one', () => {
    const admission = control(16);
    const mac = '02:00:00:00:00:99';
    expect(admission.admit({ key: 'c0000001', mac, known: false, now: 0 })).toBe(true);
    for (let i = 2; i < 10; i++) expect(admission.admit({ key: `c000000${i}`, mac, known: false, now: i })).toBe(false);
    expect(admission.active(10)).toBe(1);
  });

  it('a real storm of fetching Pis is still paced at the capacity (preemption only takes silent, lower-priority slots)', () => {
    const admission = control(16);
    let admitted = 0;
    for (let i = 0; i < 200; i++) {
      const pi = { key: `p${String(i).padStart(7, '0')}`, mac: `dc:a6:32:00:${(i >> 8) & 255}:${i & 255}`, known: true, now: i };
      if (admission.admit(pi)) {
        admitted++;
        admission.fetched(pi.key, i + 5);
      }
    }
    expect(admitted).toBe(16);
    expect(admission.active(1_000)).toBe(16);
  });

  describe('the newcomer lane (an unregistered Pi in any-pi mode)', () => {
    const unknownPi = { ...realPi, known: false };
    /** 200 forgers at 0 (and every 4 s with `repeat`); the real Pi from `after`, every 4 s; which DISCOVER got the offer. */
    function firstOffer(admission: AdmissionControl, after: number, repeat: boolean): number | undefined {
      for (let t = 0; t <= 60_000; t += 100) {
        if (t % 4_000 === 0 && (t === 0 || repeat)) for (let i = 0; i < 200; i++) admission.admit({ ...forged(i), known: false, now: t });
        if (t >= after && (t - after) % 4_000 === 0 && admission.admit({ ...unknownPi, now: t })) return (t - after) / 4_000 + 1;
      }
      return undefined;
    }

    it.each([
      { repeat: false, after: 1_500, lane: 1, oldestFirst: 2 },
      { repeat: true, after: 1_500, lane: 1, oldestFirst: 13 },
      { repeat: false, after: 100, lane: 2, oldestFirst: 3 },
      { repeat: true, after: 100, lane: 2, oldestFirst: 13 },
    ])('forgers re-sending: $repeat, the Pi $after ms after the burst: DISCOVER $lane (oldest first alone: $oldestFirst)', (c) => {
      expect(firstOffer(control(), c.after, c.repeat)).toBe(c.lane);
      const withoutLane = new AdmissionControl(new AdmissionGate(admissionMode('auto')), { newcomerSlots: 0 });
      expect(firstOffer(withoutLane, c.after, c.repeat)).toBe(c.oldestFirst);
    });

    it('forgers inventing new keys churn only the lane: the other slots still go oldest first', () => {
      const admission = control(16);
      let key = 0;
      const burst = (now: number) => {
        let admitted = 0;
        for (let i = 0; i < 200; i++) if (admission.admit({ ...forged(key++), known: false, now })) admitted++;
        return admitted;
      };
      expect(burst(0)).toBe(16);
      const waiting = { key: 'aaaaaaaa', mac: '02:aa:00:00:00:01', known: false };
      expect(admission.admit({ ...waiting, now: 100 })).toBe(false); // gate full of fresh offers
      burst(4_000); // the old slots expired at 2 s: the lane is open, 14 slots oldest first, 2 kept
      expect(admission.active(4_000)).toBeLessThanOrEqual(16);
      // 8.1 s: the first burst's keys are silent past the DISCOVER gap, so `waiting` is the oldest.
      burst(8_000);
      expect(admission.admit({ ...waiting, now: 8_100 })).toBe(true);
    });

    it('a real storm (every offer used) never opens the lane: a late Pi waits behind the older ones', () => {
      const admission = control(4);
      const pi = (i: number) => ({ key: `p${String(i).padStart(7, '0')}`, mac: `dc:a6:32:00:00:${i}`, known: false });
      for (let i = 0; i < 8; i++) if (admission.admit({ ...pi(i), now: i })) admission.fetched(pi(i).key, i + 5);
      expect(admission.active(10)).toBe(4);
      admission.release(pi(0).key);
      expect(admission.admit({ ...pi(9), now: 3_000 })).toBe(false); // newest, but no unused offer: oldest first
      expect(admission.admit({ ...pi(4), now: 3_100 })).toBe(true);
    });

    it('a slow Pi whose tentative slot the lane took is counted again when it fetches', () => {
      const admission = control(1);
      expect(admission.admit({ ...forged(1), known: false, now: 0 })).toBe(true); // a real Pi, slow to fetch
      expect(admission.admit({ ...unknownPi, now: 1_200 })).toBe(true); // past the fetch window: the lane takes it
      admission.fetched(forged(1).key, 1_300);
      expect(admission.active(1_300)).toBe(2);
      expect(admission.priorityOf({ ...forged(1), known: false, now: 1_300 })).toBe(1); // strike forgiven
    });
  });

  it('gate off: everyone, no accounting', () => {
    const admission = control(0);
    for (let i = 0; i < 100; i++) expect(admission.admit({ ...forged(i), known: false, now: 0 })).toBe(true);
  });
});
