export interface RateLimitOptions {
  /** Requests a client may send back to back. */
  burst: number;
  /** Sustained requests per second once the burst is spent. */
  perSecond: number;
  /** Clients remembered at once; the least recently seen is forgotten first (bounds memory under a random-MAC flood). */
  maxClients: number;
}

export const DEFAULT_RATE_LIMIT: RateLimitOptions = { burst: 10, perSecond: 2, maxClients: 4096 };

/** Token bucket per key (the client MAC). Time comes in as an argument, so tests need no fake timers. */
export class PerClientRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(private readonly options: RateLimitOptions = DEFAULT_RATE_LIMIT) {}

  allow(key: string, nowMs: number): boolean {
    const bucket = this.buckets.get(key);
    let tokens = this.options.burst;
    if (bucket) {
      tokens = Math.min(this.options.burst, bucket.tokens + ((nowMs - bucket.at) / 1000) * this.options.perSecond);
      this.buckets.delete(key); // re-insert below: Map order is our recency list
    } else if (this.buckets.size >= this.options.maxClients) {
      const oldest = this.buckets.keys().next().value;
      if (oldest !== undefined) this.buckets.delete(oldest);
    }
    const allowed = tokens >= 1;
    this.buckets.set(key, { tokens: allowed ? tokens - 1 : tokens, at: nowMs });
    return allowed;
  }

  get size(): number {
    return this.buckets.size;
  }
}
