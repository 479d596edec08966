/**
 * Runs our TftpServer as a standalone process (for the benchmark and the namespace tests), so
 * its CPU time and peak RSS are its own. Prints one `listening <address>:<port>` line, and its
 * stats as JSON on SIGTERM/SIGINT before exiting.
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/serve.ts --root DIR [--address IP] [--port N]
 *        [--max-concurrent N] [--per-client-max N] [--serial-registered SERIAL] [--single-port]
 *        [--cache-mb N] [--memory-sample-ms N]   (adds peak heapUsed / external / arrayBuffers, MiB, to the stats line)
 *        [--threads auto|N]   (transfer threads besides the main thread; default auto, as the daemon)
 */
import { parseArgs } from 'node:util';
import { defaultTransferThreads, FileSource, TftpServer } from '@iot-tofu/tftp';

const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    address: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '69' },
    'max-concurrent': { type: 'string', default: '256' },
    'per-client-max': { type: 'string', default: '16' },
    'serial-registered': { type: 'string', multiple: true, default: [] },
    'single-port': { type: 'boolean', default: false },
    'memory-sample-ms': { type: 'string', default: '0' },
    /** FileSource read-cache budget; 0 streams every file from disk. Default: the library's. */
    'cache-mb': { type: 'string' },
    threads: { type: 'string', default: 'auto' },
  },
});
if (!values.root) {
  process.stderr.write('serve.ts: --root DIR is required\n');
  process.exit(2);
}
const registered = new Set(values['serial-registered']);
const cacheMb = values['cache-mb'];
const source = new FileSource({
  root: values.root,
  isRegistered: (serial) => registered.has(serial),
  ...(cacheMb !== undefined ? { cacheMaxBytes: Number(cacheMb) * 1024 * 1024 } : {}),
});
await source.checkRoot();
const server = new TftpServer({
  address: values.address,
  port: Number(values.port),
  source,
  maxConcurrent: Number(values['max-concurrent']),
  perClientMax: Number(values['per-client-max']),
  // A benchmark client starts all its downloads from one address at once: none is forged.
  perClientUnconfirmed: Number(values['per-client-max']),
  singlePort: values['single-port'],
  threads: values.threads === 'auto' ? defaultTransferThreads() : Number(values.threads),
  // A benchmark client fires all its requests from one address at once.
  requestRate: { perSecond: 1000, burst: 1000 },
});
const { address, port } = await server.start();
process.stdout.write(`listening ${address}:${port}\n`);

const memoryPeak = { rss: 0, heapUsed: 0, external: 0, arrayBuffers: 0 };
const sampleMs = Number(values['memory-sample-ms']);
const sampleMemory = () => {
  const usage = process.memoryUsage();
  for (const key of ['rss', 'heapUsed', 'external', 'arrayBuffers'] as const)
    memoryPeak[key] = Math.max(memoryPeak[key], usage[key] / 1048576);
};
if (sampleMs > 0) setInterval(sampleMemory, sampleMs).unref();

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  if (sampleMs > 0) sampleMemory();
  const stats = { ...server.stats, cache: source.stats, ...(sampleMs > 0 ? { memoryPeakMiB: memoryPeak } : {}) };
  await server.close();
  process.stdout.write(`stats ${JSON.stringify(stats)}\n`);
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
