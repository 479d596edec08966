/**
 * "ours" assembled from the libraries for the boot-storm bench: ProxyDhcpServer (+ TftpServer
 * unless --no-tftp) in one process, with the daemon's admission gate on the proxy offer
 * (daemon-gate.ts). Used when the boot-server daemon is not available, and (with --no-tftp) as our
 * proxy in front of tftpd-hpa.
 *
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/ours.ts \
 *     --server-ip 10.77.0.2 --tftp-root DIR [--no-tftp] [--gate off|fixed:K|adaptive] [--newcomer-slots N]
 *     [--rto-ms 1000] [--threads 0|auto|N]
 *
 * Prints "ready" once every socket is bound; runs until SIGTERM/SIGINT, then prints its gate and
 * read-cache counters (the bench keeps them in the run's serverTail).
 */
import { parseArgs } from 'node:util';
import { ProxyDhcpServer } from '@iot-tofu/dhcp';
import { FileSource, TftpServer, defaultTransferThreads } from '@iot-tofu/tftp';
import { BenchGate, parseGate } from './daemon-gate.js';

const { values } = parseArgs({
  options: {
    'server-ip': { type: 'string' },
    'tftp-root': { type: 'string' },
    'no-tftp': { type: 'boolean', default: false },
    gate: { type: 'string', default: 'adaptive' },
    // The gate's newcomer lane (SlotTiming.newcomerSlots); 0 = the gate before it (bench/storm/forged-wire.ts).
    'newcomer-slots': { type: 'string' },
    'rto-ms': { type: 'string', default: '1000' },
    // Transfer threads as the daemon's --tftp-threads (auto = one per spare core); 0 keeps every transfer on main.
    threads: { type: 'string', default: '0' },
  },
});
const serverIp = values['server-ip'];
const tftpRoot = values['tftp-root'];
if (!serverIp || (!tftpRoot && !values['no-tftp'])) {
  process.stderr.write('usage: ours.ts --server-ip IP --tftp-root DIR [--no-tftp] [--gate off|fixed:K|adaptive]\n');
  process.exit(64);
}

const newcomerSlots = values['newcomer-slots'] === undefined ? undefined : Number(values['newcomer-slots']);
const gate = new BenchGate(parseGate(values.gate ?? 'adaptive'), undefined, newcomerSlots === undefined ? {} : { newcomerSlots });
let tftp: TftpServer | undefined;
let source: FileSource | undefined;
if (!values['no-tftp'] && tftpRoot) {
  source = new FileSource({ root: tftpRoot, sharedFolder: null });
  // rto-ms: first retransmission timeout (library default 1 s; on a LAN the round trip is < 1 ms).
  tftp = new TftpServer({
    address: '0.0.0.0',
    source,
    maxConcurrent: 1024,
    perClientMax: 16,
    timeoutMs: Number(values['rto-ms']),
    threads: values.threads === 'auto' ? defaultTransferThreads() : Number(values.threads ?? 0),
  });
  tftp.on('transfer-started', (e) => gate.transferStarted(e.serial));
  tftp.on('file-served', (e) => gate.transferEnded(e.serial, e.file, e.durationMs, 'served'));
  tftp.on('transfer-aborted', (e) => gate.transferEnded(e.serial, e.file, e.durationMs, 'failed'));
  tftp.on('transfer-failed', (e) => gate.transferEnded(e.serial, e.file, e.durationMs, e.reason === 'timeout' ? 'timed-out' : 'failed'));
}
const dhcp = new ProxyDhcpServer({
  serverIp,
  policy: {
    serverIp,
    answer: 'any-pi',
    isRegistered: () => true,
    pxe: {},
    pi3RepeatDelayMs: 1200,
    // Without our TFTP server we cannot see load: the proxy then admits everyone.
    ...(tftp ? { admit: (client) => gate.admit(client.serial ?? client.mac, client.mac) } : {}),
  },
  rateLimit: false,
});

const shutdown = async () => {
  await Promise.allSettled([dhcp.close(), tftp?.close()]);
  process.stdout.write(`gate: ${JSON.stringify(gate.stats())}\n`);
  if (source) process.stdout.write(`cache: ${JSON.stringify(source.stats)} tftp: ${JSON.stringify(tftp?.stats)}\n`);
  process.exit(0);
};
process.once('SIGTERM', () => void shutdown());
process.once('SIGINT', () => void shutdown());

await dhcp.start();
await tftp?.start();
process.stdout.write(`ready (tftp ${tftp ? 'on' : 'off'}, gate ${values.gate}, threads ${tftp?.stats.threads ?? 0})\n`);
