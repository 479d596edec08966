import { describe, expect, it } from 'vitest';
import { admitNewPi, type AdmissionState } from '../src/admission.js';

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
