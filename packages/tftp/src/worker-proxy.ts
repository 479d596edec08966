/**
 * Transfer threads. Lock-step TFTP costs a datagram each way per block, and Node's per-datagram
 * work (a syscall, a callback, a Buffer) keeps one event loop on one core: at 50 concurrent
 * downloads the main thread is the bottleneck while the other cores idle. The server therefore
 * keeps everything stateful on the main thread (listening socket, read cache, limits, queue,
 * events) and runs the transfers of cached files on worker threads. Each worker runs the same
 * `Transfer` with its own sockets; the file crosses as a SharedArrayBuffer view (no copy, one
 * cache for every thread) and the worker reports back what the transfer did.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { NegotiatedOptions } from './options.js';
import type { OpenedFile } from './file-source.js';
import type { ServerTransfer, TransferHost, TransferInit, TransferSettings } from './transfer-io.js';
import type { RequestRate } from './request-budget.js';
import type { RttEstimate } from './transfer-machine.js';
import type { TftpLogger } from './logger.js';
import type {
  DropReason,
  FileServedEvent,
  TftpClient,
  TransferAbortedEvent,
  TransferFailedEvent,
  TransferFailureReason,
  TransferStartedEvent,
} from './events.js';

/**
 * Transfer threads a server on this machine runs by default: one per core beyond the main
 * thread's, at most 3 (past that the link, not the CPU, is the limit).
 */
export function defaultTransferThreads(): number {
  return Math.max(0, Math.min(availableParallelism() - 1, 3));
}

/**
 * Transfer settings a worker needs: the main thread's, less what it has of its own (real clock
 * and sockets; never single-port), plus the budget for ERROR 5 answers to strangers (per worker).
 */
export type ThreadSettings = Omit<TransferSettings, 'clock' | 'socketFactory' | 'singlePort'> & { readonly requestRate: RequestRate };

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Main thread → worker. */
export type ToThread =
  | {
      readonly type: 'start';
      readonly id: number;
      readonly client: TftpClient;
      readonly key: string;
      readonly file: Pick<OpenedFile, 'path' | 'serial' | 'origin'>;
      /** The file: a view on the read cache's SharedArrayBuffer. */
      readonly data: Uint8Array;
      readonly mode: 'octet' | 'netascii';
      readonly negotiated: NegotiatedOptions;
      readonly rtt?: RttEstimate;
    }
  | { readonly type: 'stop'; readonly id: number; readonly reason: TransferFailureReason; readonly message: string }
  | { readonly type: 'repeat'; readonly id: number };

/** Worker → main thread. Events arrive in the order the transfer emitted them; `ended` is last. */
export type FromThread =
  | { readonly type: 'ready' }
  | { readonly type: 'started'; readonly event: TransferStartedEvent }
  | { readonly type: 'served'; readonly event: FileServedEvent }
  | { readonly type: 'aborted'; readonly event: TransferAbortedEvent }
  | { readonly type: 'failed'; readonly event: TransferFailedEvent }
  | { readonly type: 'dropped'; readonly reason: DropReason; readonly client: TftpClient }
  | { readonly type: 'rtt'; readonly ip: string; readonly estimate: RttEstimate }
  | { readonly type: 'confirmed'; readonly id: number }
  | { readonly type: 'log'; readonly id: number; readonly level: LogLevel; readonly fields: object; readonly msg?: string }
  | { readonly type: 'ended'; readonly id: number; readonly bytesSent: number; readonly retries: number };

const READY_TIMEOUT_MS = 30_000;

/**
 * Starts the worker: the built .js next to this file; from source (tests, benchmarks under tsx)
 * the .ts file, compiled by tsx's require hook inside the worker (tsx's ESM loader does not reach
 * worker threads on Node >= 20.6: privatenumber/tsx#354).
 */
function spawnWorker(settings: ThreadSettings): Worker {
  if (!import.meta.url.endsWith('.ts')) return new Worker(new URL('./worker-entry.js', import.meta.url), { workerData: settings });
  const tsx = createRequire(import.meta.url).resolve('tsx/cjs/api');
  const entry = fileURLToPath(new URL('./worker-entry.ts', import.meta.url));
  const bootstrap = `require(${JSON.stringify(tsx)}).register(); require(${JSON.stringify(entry)});`;
  return new Worker(bootstrap, { eval: true, workerData: settings, execArgv: ['--conditions=@iot-tofu/source'] });
}

/** One worker thread and the transfers it runs. */
export class TransferThread {
  private readonly worker: Worker;
  private readonly transfers = new Map<number, ThreadedTransfer>();
  private alive = true;
  private readonly whenReady: Promise<void>;

  constructor(
    readonly index: number,
    settings: ThreadSettings,
    private readonly host: TransferHost,
    private readonly logger: TftpLogger,
  ) {
    this.worker = spawnWorker(settings);
    this.whenReady = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
      this.worker.once('message', () => {
        clearTimeout(timer);
        resolve();
      });
      this.worker.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      // Terminated (or ended) before its first message: no need to wait out READY_TIMEOUT_MS.
      this.worker.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`exited (code ${code}) before it was ready`));
      });
    });
    this.whenReady.catch(() => undefined);
    this.worker.on('message', (message: FromThread) => this.onMessage(message));
    this.worker.on('error', (error) => this.died(`transfer thread ${index} failed: ${error.message}`));
    this.worker.on('exit', (code) => this.died(`transfer thread ${index} exited (code ${code})`));
  }

  /** Resolves once the worker loaded and listens; rejects when it cannot start. */
  ready(): Promise<void> {
    return this.whenReady;
  }

  get usable(): boolean {
    return this.alive;
  }

  /** Transfers assigned to this thread (queued or running): the load the scheduler balances. */
  get load(): number {
    return this.transfers.size;
  }

  assign(transfer: ThreadedTransfer): void {
    this.transfers.set(transfer.id, transfer);
  }

  post(message: ToThread): void {
    this.worker.postMessage(message);
  }

  forget(id: number): void {
    this.transfers.delete(id);
  }

  /** Stops the worker; transfers still on it end as failed (`shutdown`). */
  async close(): Promise<void> {
    if (!this.alive) return;
    this.alive = false;
    await this.worker.terminate();
    this.failAll('shutdown', 'server shutting down');
  }

  private onMessage(message: FromThread): void {
    switch (message.type) {
      case 'ready':
        return;
      case 'started':
        this.transfers.get(message.event.id)?.onStarted(message.event);
        return;
      case 'served':
        this.host.emitServed(message.event);
        return;
      case 'aborted':
        this.host.emitAborted(message.event);
        return;
      case 'failed':
        this.host.emitFailure(message.event);
        return;
      case 'dropped':
        this.host.dropped(message.reason, message.client);
        return;
      case 'rtt':
        this.host.rememberRtt?.(message.ip, message.estimate);
        return;
      case 'log': {
        const log = this.transfers.get(message.id)?.log ?? this.logger;
        log[message.level](message.fields, message.msg);
        return;
      }
      case 'confirmed': {
        const transfer = this.transfers.get(message.id);
        if (transfer) this.host.confirmed?.(transfer);
        return;
      }
      case 'ended':
        this.transfers.get(message.id)?.onEnded(message.bytesSent, message.retries);
        return;
    }
  }

  private died(why: string): void {
    if (!this.alive) return;
    this.alive = false;
    const message = `tftp: ${why}; its transfers failed, new ones run on the other threads`;
    this.logger.error({ thread: this.index, transfers: this.transfers.size }, message);
    this.failAll('io-error', why);
  }

  private failAll(reason: TransferFailureReason, message: string): void {
    for (const transfer of [...this.transfers.values()]) transfer.endHere(reason, message);
  }
}

/** The main thread's handle on a transfer that runs on a transfer thread. */
export class ThreadedTransfer implements ServerTransfer {
  readonly id: number;
  readonly client: TftpClient;
  readonly key: string;
  readonly log: TftpLogger;
  running = false;
  bytesSent = 0;
  retries = 0;
  private posted = false;
  private ended = false;
  private readonly endWaiters: (() => void)[] = [];

  constructor(
    private readonly host: TransferHost,
    private readonly thread: TransferThread,
    private readonly init: TransferInit,
    private readonly data: Uint8Array,
  ) {
    this.id = init.id;
    this.client = init.client;
    this.key = init.key;
    this.log = init.log;
    thread.assign(this);
  }

  start(): void {
    if (this.ended) return;
    if (!this.thread.usable) {
      this.endHere('io-error', 'transfer thread unavailable');
      return;
    }
    const { opened, mode, negotiated } = this.init;
    const rtt = this.host.recentRtt?.(this.client.address);
    this.posted = true;
    this.thread.post({
      type: 'start',
      id: this.id,
      client: this.client,
      key: this.key,
      file: { path: opened.path, ...(opened.serial ? { serial: opened.serial } : {}), origin: opened.origin },
      data: this.data,
      mode,
      negotiated,
      ...(rtt ? { rtt } : {}),
    });
  }

  requestRepeated(): void {
    if (this.posted && !this.ended && this.thread.usable) this.thread.post({ type: 'repeat', id: this.id });
  }

  fail(reason: TransferFailureReason, message: string): Promise<void> {
    if (this.ended) return Promise.resolve();
    if (!this.posted || !this.thread.usable) {
      this.endHere(reason, message);
      return Promise.resolve();
    }
    this.thread.post({ type: 'stop', id: this.id, reason, message });
    return new Promise((resolve) => this.endWaiters.push(resolve));
  }

  /** @internal the worker started it */
  onStarted(event: TransferStartedEvent): void {
    this.running = true;
    this.host.emitStarted(event);
  }

  /** @internal the worker reported its end (after its outcome event) */
  onEnded(bytesSent: number, retries: number): void {
    this.bytesSent = bytesSent;
    this.retries = retries;
    this.release();
  }

  /**
   * @internal ends it on this side without the worker: never sent there, or the worker is gone.
   * Reports the failure itself, as the worker would have.
   */
  endHere(reason: TransferFailureReason, message: string): void {
    if (this.ended) return;
    const { opened } = this.init;
    this.host.emitFailure({
      id: this.id,
      client: this.client,
      file: opened.path,
      ...(opened.serial ? { serial: opened.serial } : {}),
      reason,
      message,
      bytes: this.bytesSent,
      durationMs: 0,
      retries: this.retries,
    });
    this.release();
  }

  private release(): void {
    if (this.ended) return;
    this.ended = true;
    this.running = false;
    this.thread.forget(this.id);
    this.init.body.release();
    this.host.released(this);
    for (const resolve of this.endWaiters.splice(0)) resolve();
  }
}
