import type { Clock } from '../src/clock.js';
import type { FetchOutcome, FetchRequest, LeaseOutcome, LeaseRequest, PiLink } from '../src/pi.js';

/** Virtual time: timers fire in order, with every pending promise settled in between. */
export class FakeClock implements Clock {
  private t = 0;
  private nextId = 1;
  private timers = new Map<number, { at: number; callback: () => void }>();

  now(): number {
    return this.t;
  }
  setTimeout(callback: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + Math.max(0, ms), callback });
    return id;
  }
  clearTimeout(handle: unknown): void {
    this.timers.delete(handle as number);
  }
  /** Runs until `done` settles; throws if virtual time passes `maxMs` (a stuck model). */
  async run<T>(done: Promise<T>, maxMs = 3_600_000): Promise<T> {
    let settled = false;
    const result = done.finally(() => (settled = true));
    for (;;) {
      await new Promise((resolve) => setImmediate(resolve));
      if (settled) return result;
      const next = [...this.timers.entries()].sort((a, b) => a[1].at - b[1].at || a[0] - b[0])[0];
      if (!next) throw new Error('fake clock: nothing scheduled but the run is not finished');
      if (next[1].at > maxMs) throw new Error(`fake clock: passed ${maxMs} ms`);
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].callback();
    }
  }
}

export interface ScriptedFile {
  /** Bytes of the file; undefined = not found. */
  size?: number;
  /** Text of the file, handed back when the Pi asks to keep it (config.txt). */
  content?: string;
  /** How long a full transfer takes (ms); past the request's timeoutMs it times out. */
  ms?: number;
}

/**
 * A scripted network: DHCP answers after `leaseMs` (or never while `dhcpUp` says no), files come
 * from a table. It records every request so tests can compare the Pi's order with docs/pi-netboot-protocol.md 3.2.
 */
export class ScriptedLink implements PiLink {
  readonly fetches: FetchRequest[] = [];
  readonly leases: LeaseRequest[] = [];
  constructor(
    private readonly clock: FakeClock,
    private readonly files: (path: string, attempt: number) => ScriptedFile,
    private readonly dhcpUp: (leaseNumber: number) => boolean = () => true,
    private readonly leaseMs = 10,
  ) {}

  acquireLease(request: LeaseRequest): Promise<LeaseOutcome> {
    this.leases.push(request);
    const answered = this.dhcpUp(this.leases.length);
    request.onEvent({ kind: 'discover', xid: request.xid });
    const wait = answered ? this.leaseMs : request.behaviour.dhcpTimeoutMs;
    return new Promise((resolve) => {
      const answer = () => {
        if (!answered) return resolve({ ok: false, detail: 'no offer' });
        request.onEvent({ kind: 'offer', from: '10.0.0.2', pxe: true });
        resolve({ ok: true, lease: { address: '10.0.1.5', tftpServer: '10.0.0.2' } });
      };
      this.after(request.signal, wait, answer, () => resolve({ ok: false, detail: 'stopped' }));
    });
  }

  fetch(request: FetchRequest): Promise<FetchOutcome> {
    this.fetches.push(request);
    const file = this.files(request.path, this.leases.length);
    return new Promise((resolve) => {
      if (file.size === undefined)
        return this.clock.setTimeout(() => resolve({ result: 'not-found', bytes: 0, retransmits: 0, detail: 'File not found' }), 1);
      if (request.probe) return this.clock.setTimeout(() => resolve({ result: 'probe', bytes: 0, retransmits: 0 }), 1);
      const ms = file.ms ?? 1;
      if (ms > request.timeoutMs) {
        const partial = Math.floor((file.size * request.timeoutMs) / ms);
        const timedOut = () => resolve({ result: 'timeout', bytes: partial, retransmits: 0, detail: 'file limit' });
        const stopped = () => resolve({ result: 'timeout', bytes: 0, retransmits: 0, detail: 'stopped' });
        return this.after(request.signal, request.timeoutMs, timedOut, stopped);
      }
      const content = request.keepContent && file.content !== undefined ? { content: Buffer.from(file.content) } : {};
      const done = () => resolve({ result: 'ok', bytes: file.size ?? 0, retransmits: 0, ...content });
      this.after(request.signal, ms, done, () => resolve({ result: 'timeout', bytes: 0, retransmits: 0, detail: 'stopped' }));
    });
  }

  /**
   * Runs onTime after `ms` of virtual time, or onStop at once if the Pi is stopped first. The abort
   * listener leaves with the timer: a Pi's signal outlives thousands of requests.
   */
  private after(signal: AbortSignal, ms: number, onTime: () => void, onStop: () => void): void {
    const stop = () => {
      this.clock.clearTimeout(handle);
      onStop();
    };
    const handle = this.clock.setTimeout(() => {
      signal.removeEventListener('abort', stop);
      onTime();
    }, ms);
    signal.addEventListener('abort', stop, { once: true });
  }
}
