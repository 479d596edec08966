import type { RttEstimate } from './transfer-machine.js';
import type { TftpClock } from './udp.js';

/** Round-trip estimates kept per client IP (oldest forgotten first) and how long one stays valid. */
const RTT_MEMORY_ENTRIES = 4096;
const RTT_MEMORY_MS = 5 * 60_000;

/**
 * The last round-trip estimate per client IP, so a Pi's next transfer starts from what its last
 * one measured instead of the 1 s default (see the README's "Retransmission timeout").
 */
export class RttMemory {
  /** Insertion-ordered: the oldest entry is the first one forgotten. */
  private readonly byIp = new Map<string, { estimate: RttEstimate; at: number }>();

  constructor(private readonly clock: TftpClock) {}

  recent(ip: string): RttEstimate | undefined {
    const entry = this.byIp.get(ip);
    if (!entry) return undefined;
    if (this.clock.now() - entry.at <= RTT_MEMORY_MS) return entry.estimate;
    this.byIp.delete(ip);
    return undefined;
  }

  remember(ip: string, estimate: RttEstimate): void {
    this.byIp.delete(ip);
    this.byIp.set(ip, { estimate, at: this.clock.now() });
    if (this.byIp.size > RTT_MEMORY_ENTRIES) this.byIp.delete(this.byIp.keys().next().value!);
  }
}
