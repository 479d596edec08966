// The prebuilt transfer-socket binaries the npm package ships (issue 14): each is what
// native/transfer-socket.c and scripts/build-native.mjs say it is (rebuilt byte for byte), the
// arm64 one loads and moves datagrams on a real arm64 Node (the runtime floor's, under
// qemu-aarch64 user mode), and the host's one does the same in the test process and in worker
// threads (the addon is per thread: NAPI_MODULE_INIT, cleanup hooks).
import { describe, expect, it } from 'vitest';
import { execFile, execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { needs } from '@iot-tofu/test-kit';
import type { Need, NeedsOptions } from '@iot-tofu/test-kit';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const prebuilds = fileURLToPath(new URL('../prebuilds', import.meta.url));
const binary = (target: string): string => join(prebuilds, target, 'transfer-socket.node');
const exchangeModule = fileURLToPath(new URL('./native-exchange.cjs', import.meta.url));
const buildScript = join(repo, 'scripts', 'build-native.mjs');
const fetchScript = join(repo, 'scripts', 'fetch-arm64-node.mjs');

interface Event {
  kind: number;
  value: number | { buffer: string };
}
interface ExchangeReport {
  node: string;
  arch: string;
  exports: string[];
  port: number;
  ack: Event;
  writable: Event;
  connect: number;
  sendData: number;
  data: { hex: string; from: number };
  send: number;
  sent: { hex: string; from: number };
  packet: Event;
  afterStranger: Event;
  sendToGone: number;
  gone: Event;
  reconnect: number;
  afterGone: Event;
  sendAfterClose: number;
  eventsLeft: number;
  strangerGot: number;
}
const { exchange } = createRequire(import.meta.url)(exchangeModule) as {
  exchange: (addonPath: string, timeoutMs?: number) => Promise<ExchangeReport>;
};

// The arm64 Node and the pinned headers come from scripts/fetch-arm64-node.mjs (.ci/run calls it);
// a test never downloads. Its folder, asked of the script so the version has one home.
const arm64Dir = execFileSync(process.execPath, [fetchScript, '--print'], { encoding: 'utf8' }).trim();
const arm64Node = join(arm64Dir, 'bin', 'node');
const headers = join(arm64Dir, 'include', 'node', 'node_api.h');
const ARM64_SYSROOT = '/usr/aarch64-linux-gnu';
const fetchHint = 'run node scripts/fetch-arm64-node.mjs';

/** needs(), with the fetched files' reasons saying how to get them. */
function needsFetched(...list: Need[]): NeedsOptions {
  const options = needs(...list);
  const explain = (reason: string): string =>
    reason === `file ${arm64Node}`
      ? `an arm64 Node at ${arm64Node} (${fetchHint})`
      : reason === `file ${headers}`
        ? `the pinned Node-API headers at ${headers} (${fetchHint})`
        : reason;
  const meta = options.meta && {
    needsSkipped: options.meta.needsSkipped?.map(explain),
    needsUnmet: options.meta.needsUnmet?.map(explain),
  };
  return { ...options, ...(meta ? { meta } : {}) };
}

const sha256 = (path: string): string => createHash('sha256').update(readFileSync(path)).digest('hex');

/** What every platform's exchange must show, whichever Node and thread ran it. */
function expectExchange(report: ExchangeReport): void {
  expect(report.exports).toEqual(['awaitWritable', 'close', 'connect', 'open', 'send', 'sendData']);
  expect(report.port).toBeGreaterThan(0);
  expect(report.ack).toEqual({ kind: 0, value: 0x1234 });
  expect(report.connect).toBe(0);
  expect(report.sendData).toBe(0);
  expect(report.data).toEqual({ hex: `00030007${Buffer.from('block seven').toString('hex')}`, from: report.port });
  expect(report.send).toBe(0);
  expect(report.sent).toEqual({ hex: Buffer.from('\x00\x06blksize\x001468\x00', 'latin1').toString('hex'), from: report.port });
  expect(report.writable).toEqual({ kind: 3, value: undefined });
  expect(report.packet).toEqual({ kind: 1, value: { buffer: '000500016e6f00' } });
  expect(report.afterStranger).toEqual({ kind: 0, value: 8 });
  expect(report.sendToGone).toBe(0);
  expect(report.gone).toEqual({ kind: 2, value: 111 }); // ECONNREFUSED on Linux, x64 and arm64 alike
  expect(report.reconnect).toBe(0);
  expect(report.afterGone).toEqual({ kind: 0, value: 0xffff });
  expect(report.sendAfterClose).toBe(9); // EBADF: closed twice without a throw, then refuses to send
  expect(report.eventsLeft).toBe(0);
  expect(report.strangerGot).toBe(0);
}

describe('prebuilt binaries are what the source says', {
  timeout: 120_000,
  ...needsFetched('gcc', 'aarch64-linux-gnu-gcc', headers),
}, () => {
  it('rebuilding both targets gives the committed bytes, no build path is inside, and --check sees a changed byte', () => {
    const manifest = JSON.parse(readFileSync(join(prebuilds, 'manifest.json'), 'utf8')) as {
      sourceSha256: string;
      targets: Record<string, { compiler: string; sha256: string }>;
    };
    expect(Object.keys(manifest.targets).sort()).toEqual(['linux-arm64', 'linux-x64']);
    expect(manifest.sourceSha256).toBe(sha256(join(repo, 'packages', 'tftp', 'native', 'transfer-socket.c')));
    const out = mkdtempSync(join(tmpdir(), 'tofu-prebuilt-'));
    try {
      execFileSync(process.execPath, [buildScript, '--out', out], { stdio: ['ignore', 'ignore', 'pipe'], timeout: 100_000 });
      const rebuilt = JSON.parse(readFileSync(join(out, 'manifest.json'), 'utf8')) as typeof manifest;
      for (const [target, committed] of Object.entries(manifest.targets)) {
        // A different compiler is the one legitimate reason for different bytes: say so first.
        expect(rebuilt.targets[target]?.compiler, `${target} compiler`).toBe(committed.compiler);
        expect(sha256(join(out, target, 'transfer-socket.node')), `${target} rebuilt`).toBe(committed.sha256);
        expect(sha256(binary(target)), `${target} committed`).toBe(committed.sha256);
        const bytes = readFileSync(binary(target));
        for (const path of [repo, out, arm64Dir]) expect(bytes.includes(path.replace(/\/$/, '')), `${target} holds ${path}`).toBe(false);
      }
      // The lint-time check (no compiler) accepts this build and refuses it once a binary changes.
      const check = () => spawnSync(process.execPath, [buildScript, '--check', '--out', out], { encoding: 'utf8', timeout: 30_000 });
      expect(check().status).toBe(0);
      const arm64 = join(out, 'linux-arm64', 'transfer-socket.node');
      const bytes = readFileSync(arm64);
      bytes.writeUInt8(bytes.readUInt8(bytes.length - 1) ^ 1, bytes.length - 1);
      writeFileSync(arm64, bytes);
      const stale = check();
      expect(stale.status).toBe(1);
      expect(stale.stderr).toContain('prebuilt binaries are stale: run npm run build:native (linux-arm64/transfer-socket.node differs');
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});

describe('the arm64 binary on an arm64 Node (qemu-aarch64)', {
  timeout: 120_000,
  ...needsFetched('qemu-aarch64', arm64Node, `${ARM64_SYSROOT}/lib/ld-linux-aarch64.so.1`, `${ARM64_SYSROOT}/lib/libstdc++.so.6`),
}, () => {
  it('loads and does the whole exchange on loopback', async () => {
    const script = `require(${JSON.stringify(exchangeModule)}).exchange(${JSON.stringify(binary('linux-arm64'))}, 60000)
        .then((report) => process.stdout.write(JSON.stringify(report)), (error) => { console.error(error); process.exit(1); });`;
    // TCG emulation, no KVM: slow to start (about a second idle), so the bound is generous.
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('qemu-aarch64', ['-L', ARM64_SYSROOT, arm64Node, '-e', script], { timeout: 110_000 }, (error, out, err) =>
        error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out),
      ),
    );
    const report = JSON.parse(stdout) as ExchangeReport;
    expect(report.arch).toBe('arm64');
    expect(report.node).toMatch(/^v20\.19\./);
    expectExchange(report);
  });
});

describe(
  `the ${process.platform}-${process.arch} binary on this Node (${process.version})`,
  needs(binary(`${process.platform}-${process.arch}`)),
  () => {
    const host = binary(`${process.platform}-${process.arch}`);

    it('does the whole exchange in the test process', async () => {
      expectExchange(await exchange(host));
    });

    const inWorker = <T>(code: string, workerData: object): { worker: Worker; result: Promise<T> } => {
      const worker = new Worker(code, { eval: true, workerData });
      const result = new Promise<T>((resolve, reject) => {
        worker.once('message', resolve);
        worker.once('error', reject);
        worker.once('exit', (code) => reject(new Error(`worker exited with ${code} before it answered`)));
      });
      return { worker, result };
    };

    it('loads per thread: two workers do the exchange at once', async () => {
      const code = `const { parentPort, workerData } = require('node:worker_threads');
      require(workerData.exchangeModule).exchange(workerData.host).then((report) => parentPort.postMessage(report));`;
      const reports = await Promise.all([1, 2].map(() => inWorker<ExchangeReport>(code, { exchangeModule, host }).result));
      for (const report of reports) expectExchange(report);
      expect(reports[0]?.port).not.toBe(reports[1]?.port);
    });

    it('a worker terminated with its socket open releases the port', async () => {
      const code = `const { parentPort, workerData } = require('node:worker_threads');
      const [, port] = require(workerData.host).open('127.0.0.1', () => {});
      parentPort.postMessage(port);`;
      const { worker, result } = inWorker<number>(code, { host });
      const port = await result;
      await worker.terminate();
      // Without SO_REUSEADDR on this side, the bind succeeds only once the worker's descriptor is closed.
      const socket = createSocket('udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          socket.once('error', reject);
          socket.bind(port, '127.0.0.1', resolve);
        });
      } finally {
        socket.close();
      }
    });
  },
);
