/** Token buckets per client IP: `perSecond` refill up to `burst`. */
export interface RequestRate {
  readonly perSecond: number;
  readonly burst: number;
}

interface Bucket {
  tokens: number;
  last: number;
  /** Set once the limit was reported, cleared when the client is back under it (one report per episode). */
  limited: boolean;
}

/** Buckets idle this long are forgotten once the table grows past PRUNE_ABOVE. */
const IDLE_MS = 60_000;
const PRUNE_ABOVE = 4096;

export class RequestBudget {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    readonly rate: RequestRate,
    private readonly now: () => number,
    /** Called when an IP first runs out of tokens (once per episode). */
    private readonly onLimited: (ip: string) => void = () => undefined,
  ) {}

  /** Spends one token of `ip`; false when it has none left. */
  take(ip: string): boolean {
    const { perSecond, burst } = this.rate;
    const now = this.now();
    let bucket = this.buckets.get(ip);
    if (!bucket) {
      if (this.buckets.size > PRUNE_ABOVE) this.prune(now);
      bucket = { tokens: burst, last: now, limited: false };
      this.buckets.set(ip, bucket);
    }
    bucket.tokens = Math.min(burst, bucket.tokens + ((now - bucket.last) / 1000) * perSecond);
    bucket.last = now;
    if (bucket.tokens < 1) {
      if (!bucket.limited) this.onLimited(ip);
      bucket.limited = true;
      return false;
    }
    bucket.limited = false;
    bucket.tokens -= 1;
    return true;
  }

  /** Gives back the token of a request that turned out to cost no amplifying answer (a refusal). */
  refund(ip: string): void {
    const bucket = this.buckets.get(ip);
    if (bucket) bucket.tokens = Math.min(this.rate.burst, bucket.tokens + 1);
  }

  private prune(now: number): void {
    for (const [ip, bucket] of this.buckets) if (now - bucket.last > IDLE_MS) this.buckets.delete(ip);
  }
}
