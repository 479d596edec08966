/** What the admission gate knows when a Pi's DISCOVER arrives. */
export interface AdmissionState {
  /** Max large TFTP transfers before new Pis wait; 0 = no gate. */
  budget: number;
  activeLargeTransfers: number;
  /** A Pi already between offer and kernel is never turned away (its retries must succeed). */
  bootInProgress: boolean;
}

/**
 * Boot-storm pacing: during a storm, a Pi that has not started booting gets no offer while the
 * large transfers already running use up the budget; its bootloader retries the DISCOVER a few
 * seconds later. Pure, so the table test pins it.
 */
export function admitNewPi(state: AdmissionState): boolean {
  if (state.budget <= 0) return true;
  if (state.bootInProgress) return true;
  return state.activeLargeTransfers < state.budget;
}
