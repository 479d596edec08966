/**
 * Issue 19 item 8 on loopback: RRQs that never ACK, from many source addresses, then one
 * legitimate download. Prints JSON: how long the legitimate download took (a Pi gives up a file
 * after 30 s), the server's open descriptors before / at peak / 60 s after the flood, and when
 * they were back at baseline. Bounded in count and time; loopback only (127.0.0.0/8).
 *   node --conditions=@iot-tofu/source --import tsx bench/tftp/flood.ts [--serve FILE] [--sources 30] [--per-source 100]
 * `--serve` is a server launcher taking `ROOT ADDRESS PORT` (default bench/tftp/serve-defaults.ts);
 * a `tftpd-hpa` value runs in.tftpd instead.
 */
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { encodeTftpPacket } from '@iot-tofu/tftp';
import { tftpGet } from '../../packages/tftp/test/client.js';
import { repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../../test/lab/index.js';

const { values } = parseArgs({
  options: {
    serve: { type: 'string', default: join(repoRoot, 'bench/tftp/serve-defaults.ts') },
    sources: { type: 'string', default: '30' },
    'per-source': { type: 'string', default: '100' },
    'after-ms': { type: 'string', default: '60000' },
    port: { type: 'string', default: '16969' },
  },
});
const sources = Math.min(Number(values.sources), 200);
const perSource = Math.min(Number(values['per-source']), 1000);
const afterMs = Math.min(Number(values['after-ms']), 120_000);
const port = Number(values.port);
const host = '127.0.0.1';

const work = mkdtempSync(join(tmpdir(), 'tofu-flood-'));
const kernel = randomBytes(8 * 1024 * 1024);
writeFileSync(join(work, 'kernel8.img'), kernel);
const child =
  values.serve === 'tftpd-hpa'
    ? spawn('in.tftpd', ['--foreground', '--listen', '--address', `${host}:${port}`, '--secure', work], {
        stdio: ['ignore', 'pipe', 'pipe'],
      })
    : spawn(process.execPath, [...tsNodeArgs, values.serve, work, host, String(port)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        cwd: repoRoot,
      });
let out = '';
child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
try {
  if (values.serve !== 'tftpd-hpa') await waitForOutput(child, /listening/, 30_000);
  else await new Promise((r) => setTimeout(r, 500));
  // tftpd-hpa forks a child per transfer: count the descriptors of the whole process tree.
  const fds = () => descriptors(child.pid!);
  const baseline = fds();
  const samples: { t: number; fds: number }[] = [];
  const started = Date.now();
  const sampler = setInterval(() => samples.push({ t: Date.now() - started, fds: fds() }), 250);

  const rrq = encodeTftpPacket({ type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: {} });
  // One RRQ per source address, then 10 ms: paced so the server's receive buffer takes them all.
  for (let i = 0; i < perSource; i++) {
    for (let s = 0; s < sources; s++) {
      const socket = createSocket('udp4');
      await new Promise<void>((resolve) => socket.bind(0, `127.0.0.${10 + s}`, resolve));
      await new Promise<void>((resolve) => socket.send(rrq, port, host, () => resolve()));
      socket.close(); // never ACKs
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  const floodMs = Date.now() - started;
  const legit = await tftpGet({
    host,
    port,
    file: 'kernel8.img',
    options: { blksize: '1468' },
    bindAddress: '127.0.0.250',
    timeoutMs: 1000,
    retries: 200,
    totalTimeoutMs: 150_000,
  });
  const legitOk = legit.ok && legit.sha256 === createHash('sha256').update(kernel).digest('hex');
  const floodEnd = started + floodMs;
  await new Promise((r) => setTimeout(r, Math.max(0, floodEnd + afterMs - Date.now())));
  clearInterval(sampler);
  const after = fds();
  const peak = Math.max(...samples.map((x) => x.fds));
  const back = samples.find(
    (x) => x.t > floodMs && x.fds <= baseline + 2 && samples.filter((y) => y.t >= x.t).every((y) => y.fds <= baseline + 2),
  );
  child.kill('SIGTERM');
  await new Promise((r) => setTimeout(r, 1000));
  const stats = /stats (.*)/.exec(out)?.[1];
  process.stdout.write(
    `${JSON.stringify({
      server: values.serve,
      sources,
      perSource,
      floodMs,
      legit: { ok: legitOk, ms: Math.round(legit.durationMs), underPiLimit: legitOk && legit.durationMs < 30_000 },
      fds: { baseline, peak, afterMs, after, backAtBaselineMsAfterFlood: back ? back.t - floodMs : null },
      ...(stats ? { stats: JSON.parse(stats) as object } : {}),
    })}\n`,
  );
} finally {
  await stopProcess(child);
  rmSync(work, { recursive: true, force: true });
}

/** Open descriptors of a process and its children (tftpd-hpa forks per transfer). */
function descriptors(pid: number): number {
  let count = 0;
  try {
    count = readdirSync(`/proc/${pid}/fd`).length;
  } catch {
    return 0;
  }
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const kids = readdirSyncText(`/proc/${pid}/task/${task}/children`);
      for (const kid of kids) count += descriptors(kid);
    }
  } catch {
    // no children file
  }
  return count;
}

function readdirSyncText(path: string): number[] {
  try {
    return readFileSync(path, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}
