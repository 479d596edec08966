/**
 * Who may start a transfer, and who waits or is turned away: pure decisions over counts, so a
 * table test pins them. A request is "unconfirmed" from its arrival until its client acknowledges
 * the first packet (OACK or DATA 1); until then its source address may be forged, so every such
 * request is bounded per address, and a queue is served by address, not by arrival.
 */
export interface ClientLimits {
  /** Transfers running at once. */
  readonly maxConcurrent: number;
  /** Transfers one client address may run at once. */
  readonly perClientMax: number;
  /** Requests one client address may have without a first ACK (opening, queued or running). */
  readonly perClientUnconfirmed: number;
}

/** Take a new request from an address that already has `unconfirmed` requests without a first ACK? */
export function acceptsRequest(unconfirmed: number, limits: ClientLimits): boolean {
  return unconfirmed < limits.perClientUnconfirmed;
}

/** May a transfer start now, with `total` transfers running and `ofClient` of them from its address? */
export function mayStart(total: number, ofClient: number, limits: ClientLimits): boolean {
  return total < limits.maxConcurrent && ofClient < limits.perClientMax;
}

/**
 * The queued transfer to start next (index into `queue`, the client addresses oldest first), or
 * −1. The address with the fewest running transfers goes first, its oldest request first: one
 * address with many requests waiting cannot keep a newcomer (a Pi on its first file) behind them.
 */
export function nextToStart(queue: readonly string[], runningOf: (ip: string) => number, total: number, limits: ClientLimits): number {
  if (total >= limits.maxConcurrent) return -1;
  let best = -1;
  let bestRunning = Number.POSITIVE_INFINITY;
  for (let i = 0; i < queue.length; i++) {
    const running = runningOf(queue[i]!);
    if (running < bestRunning && running < limits.perClientMax) {
      best = i;
      bestRunning = running;
      if (running === 0) break;
    }
  }
  return best;
}
