/**
 * Worker entry of a transfer thread (see worker-proxy.ts): runs the transfers the main thread
 * hands over, each with its own sockets and timer, and reports what they do.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { memoryBody } from './file-body.js';
import { RequestBudget } from './request-budget.js';
import { Transfer } from './transfer-io.js';
import type { ServerTransfer, TransferHost } from './transfer-io.js';
import { createUdp4Socket, realClock } from './udp.js';
import type { TftpLogger } from './logger.js';
import type { RttEstimate } from './transfer-machine.js';
import type { FromThread, LogLevel, ThreadSettings, ToThread } from './worker-proxy.js';

const port = parentPort;
if (!port) throw new Error('worker-entry.ts runs as a worker thread only');
const settings = workerData as ThreadSettings;
const post = (message: FromThread) => port.postMessage(message);

const transfers = new Map<number, Transfer>();
const strangerBudget = new RequestBudget(settings.requestRate, () => realClock.now());
/** Round-trip estimate handed over with the transfer being constructed (read by its constructor). */
let initialRtt: RttEstimate | undefined;

const host: TransferHost = {
  config: { ...settings, singlePort: false, clock: realClock, socketFactory: createUdp4Socket },
  sharedSocket: undefined,
  emitStarted: (event) => post({ type: 'started', event }),
  emitServed: (event) => post({ type: 'served', event }),
  emitAborted: (event) => post({ type: 'aborted', event }),
  emitFailure: (event) => post({ type: 'failed', event }),
  dropped: (reason, client) => post({ type: 'dropped', reason, client }),
  mayAnswer: (ip) => strangerBudget.take(ip),
  released: (transfer: ServerTransfer) => {
    transfers.delete(transfer.id);
    post({ type: 'ended', id: transfer.id, bytesSent: transfer.bytesSent, retries: transfer.retries });
  },
  recentRtt: () => initialRtt,
  rememberRtt: (ip, estimate) => post({ type: 'rtt', ip, estimate }),
  confirmed: (transfer) => post({ type: 'confirmed', id: transfer.id }),
};

/** Errors do not survive postMessage as themselves everywhere: send what a log line shows. */
function plain(fields: object): object {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    const code = value instanceof Error ? (value as NodeJS.ErrnoException).code : undefined;
    out[key] = value instanceof Error ? { type: value.name, message: value.message, ...(code ? { code } : {}) } : value;
  }
  return out;
}

function loggerFor(id: number): TftpLogger {
  const at = (level: LogLevel) => (fields: object, msg?: string) =>
    post({ type: 'log', id, level, fields: plain(fields), ...(msg !== undefined ? { msg } : {}) });
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

port.on('message', (message: ToThread) => {
  if (message.type === 'stop') {
    void transfers.get(message.id)?.fail(message.reason, message.message);
    return;
  }
  if (message.type === 'repeat') {
    transfers.get(message.id)?.requestRepeated();
    return;
  }
  const { data } = message;
  initialRtt = message.rtt;
  // The main thread holds the cache reference and releases it when this transfer ends.
  const body = memoryBody(data);
  const transfer = new Transfer(host, {
    id: message.id,
    client: message.client,
    key: message.key,
    opened: { ...message.file, body },
    body,
    mode: message.mode,
    negotiated: message.negotiated,
    log: loggerFor(message.id),
  });
  initialRtt = undefined;
  transfers.set(message.id, transfer);
  void transfer.start();
});

post({ type: 'ready' });
