/** What the admission gate knows when a Pi's DISCOVER arrives. */
export interface AdmissionState {
  /** Most Pis booting at once (offer to kernel); 0 = no gate. */
  budget: number;
  /** Pis between admission and kernel right now. */
  activeBoots: number;
  /** A Pi already between offer and kernel is never turned away (its retries must succeed). */
  bootInProgress: boolean;
}

/**
 * Boot-storm pacing: a Pi that has not started booting gets no offer while `budget` Pis are already
 * booting; its bootloader re-sends the DISCOVER a few seconds later and tries again. Silence is the
 * standard way to make a PXE client wait. Pure, so the table test pins it.
 */
export function admitNewPi(state: AdmissionState): boolean {
  if (state.budget <= 0) return true;
  if (state.bootInProgress) return true;
  return state.activeBoots < state.budget;
}
