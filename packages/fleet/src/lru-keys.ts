/**
 * Keys in least-recently-touched order, at most `limit` of them: what the fleet uses to bound the
 * memory spent on Pis that are seen on the wire but not registered (their serials and MACs may be
 * made up by whoever sends DHCP packets).
 */
export class LruKeys {
  private readonly keys = new Map<string, true>();

  constructor(readonly limit: number) {}

  get size(): number {
    return this.keys.size;
  }

  has(key: string): boolean {
    return this.keys.has(key);
  }

  /** Marks `key` as the most recent one; returns the keys that fell out (oldest first). */
  touch(key: string): string[] {
    this.keys.delete(key);
    this.keys.set(key, true);
    const evicted: string[] = [];
    for (const oldest of this.keys.keys()) {
      if (this.keys.size <= this.limit) break;
      this.keys.delete(oldest);
      evicted.push(oldest);
    }
    return evicted;
  }

  delete(key: string): void {
    this.keys.delete(key);
  }

  clear(): void {
    this.keys.clear();
  }
}
