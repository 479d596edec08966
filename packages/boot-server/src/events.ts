import { EventEmitter } from 'node:events';

/** What the daemon's subsystems tell each other; API (SSE), metrics, logs and the fleet subscribe. */
export interface BootEvents {
  'pi-seen': { serial?: string; mac: string; model?: string; ip?: string; answered: boolean; at: number };
  'offer-sent': { serial?: string; mac: string; kind: string; messageType: 'offer' | 'ack'; repeat: boolean; at: number };
  'dhcp-ignored': { mac?: string; serial?: string; kind?: string; reason: string; at: number };
  'transfer-started': { serial?: string; clientIp: string; file: string; at: number };
  'file-served': { serial?: string; clientIp: string; file: string; bytes: number; ms: number; retries: number; at: number };
  /** Ended early: client "Early terminate" probes, timeouts, missing files. */
  'transfer-failed': {
    serial?: string;
    clientIp: string;
    file: string;
    reason: string;
    kind: 'missing' | 'aborted' | 'timeout' | 'error';
    retries: number;
    at: number;
  };
  'boot-complete': { serial: string; ms: number; at: number };
  'boot-failed': { serial: string; reason: string; at: number };
  'registry-changed': { at: number };
}

export type BootEventName = keyof BootEvents;
export const BOOT_EVENT_NAMES: readonly BootEventName[] = [
  'pi-seen',
  'offer-sent',
  'dhcp-ignored',
  'transfer-started',
  'file-served',
  'transfer-failed',
  'boot-complete',
  'boot-failed',
  'registry-changed',
];

/**
 * A typed EventEmitter; listeners that throw are isolated so one bad subscriber cannot stop a server.
 * Every listener sees events in the order they were emitted: an event emitted from inside a listener
 * (the daemon's boot-complete, concluded from the kernel's file-served) is delivered once the event
 * being delivered has reached every listener, still before the outer emit() returns.
 */
export class EventBus {
  private readonly emitter = new EventEmitter();
  private readonly onListenerError: (error: unknown, name: string) => void;
  private readonly queue: Array<() => void> = [];
  private delivering = false;

  constructor(onListenerError: (error: unknown, name: string) => void = () => undefined) {
    this.emitter.setMaxListeners(0);
    this.onListenerError = onListenerError;
  }

  on<K extends BootEventName>(name: K, listener: (event: BootEvents[K]) => void): () => void {
    const safe = (event: BootEvents[K]) => {
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error, name);
      }
    };
    this.emitter.on(name, safe);
    return () => this.emitter.off(name, safe);
  }

  /** Subscribes to every event; returns the unsubscribe function. */
  onAny(listener: <K extends BootEventName>(name: K, event: BootEvents[K]) => void): () => void {
    const offs = BOOT_EVENT_NAMES.map((name) => this.on(name, (event) => listener(name, event)));
    return () => {
      for (const off of offs) off();
    };
  }

  emit<K extends BootEventName>(name: K, event: BootEvents[K]): void {
    if (this.delivering) {
      // Emitted by a listener: waits until the current event has reached every listener.
      this.queue.push(() => this.emitter.emit(name, event));
      return;
    }
    this.delivering = true;
    try {
      this.emitter.emit(name, event);
      for (let next = this.queue.shift(); next; next = this.queue.shift()) next();
    } finally {
      this.delivering = false;
    }
  }

  listenerCount(name: BootEventName): number {
    return this.emitter.listenerCount(name);
  }
}
