// The installable package (issue 13): `npm run package` makes iot-tofu-<version>.tgz; installed into
// an empty prefix with `npm install -g --offline` (everything comes from the tarball's bundle),
// `pxetools`, `boot-server` and `rpi-sim` run from that prefix in a folder with no repository
// around: help, the upstream usage, and the daemon serving TFTP and the API on loopback.
import { execFile, spawn } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchFile, systemClock } from '@iot-tofu/rpi-sim';
import { collect, repoRoot, stopProcess, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { freePort } from '../../packages/boot-server/test/free-port.js';

const run = promisify(execFile);

/** The environment without npm's run-script variables (npm test sets npm_config_prefix and friends). */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!/^npm_/i.test(key)) env[key] = value;
  return { ...env, ...extra };
}

describe('the iot-tofu package tarball', { timeout: 600_000, ...needs('npm') }, () => {
  let work: string;
  let prefix: string;
  let empty: string;
  let binPath: string;
  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'iot-tofu-pack-test-'));
    prefix = join(work, 'prefix');
    empty = join(work, 'empty');
    mkdirSync(empty);
    binPath = `${join(prefix, 'bin')}:${dirname(process.execPath)}:/usr/bin:/bin`;
    // dist/ as the sources say now (incremental: quick when npm test's prepare step built it).
    await run(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-b'], { cwd: repoRoot });
  }, 300_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  it('packs, installs offline into an empty prefix, and its commands run with no repository around', async () => {
    const packed = await run(process.execPath, [join(repoRoot, 'scripts/pack.mjs'), '--out', join(work, 'out')], {
      cwd: repoRoot,
      env: cleanEnv(),
      maxBuffer: 16 << 20,
    });
    const tarball = packed.stdout.trim().split('\n').at(-1)!;
    expect(tarball).toMatch(/iot-tofu-\d+\.\d+\.\d+\.tgz$/);

    // The tarball alone, in a folder of its own; --offline: nothing may come from a registry.
    const copy = join(empty, 'iot-tofu.tgz');
    writeFileSync(copy, readFileSync(tarball));
    await run('npm', ['install', '-g', copy, '--prefix', prefix, '--offline', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: empty,
      env: cleanEnv(),
      maxBuffer: 16 << 20,
    });
    rmSync(copy);

    const installed = join(prefix, 'lib/node_modules/iot-tofu');
    expect(lstatSync(installed).isSymbolicLink()).toBe(false); // a copy, not a link to the checkout
    for (const bin of ['pxetools', 'boot-server', 'rpi-sim']) {
      expect(readlinkSync(join(prefix, 'bin', bin))).toBe(`../lib/node_modules/iot-tofu/bin/${bin}.js`);
    }
    expect(realpathSync(join(installed, 'node_modules/@iot-tofu/boot-server/dist/cli.js')).startsWith(repoRoot)).toBe(false);
    expect(JSON.parse(readFileSync(join(installed, 'node_modules/@iot-tofu/fleet/package.json'), 'utf8')).exports['.']).not.toHaveProperty(
      '@iot-tofu/source',
    );

    const env = cleanEnv({ PATH: binPath, HOME: work });
    const help = await run('pxetools', ['--help'], { cwd: empty, env });
    expect(help.stdout).toMatch(/^Usage: pxetools \[options\] \[command\]/);
    expect(help.stdout).toContain('--add <serial>');
    const usage = await run('pxetools', [], { cwd: empty, env });
    expect(usage.stdout).toBe('Usage:\n\tpxetools --add serial\n\tpxetools --remove serial\n\tpxetools --list\n');
    const serverHelp = await run('boot-server', ['--help'], { cwd: empty, env });
    expect(serverHelp.stdout).toMatch(/^ {2}doctor \[options\]/m);
    expect(serverHelp.stdout).toMatch(/^ {2}uninstall \[options\]/m);
    const sim = await run('rpi-sim', ['--help'], { cwd: empty, env });
    expect(sim.stdout).toMatch(/^Usage: rpi-sim/);

    // The daemon from the prefix: TFTP and the API on loopback, no DHCP.
    const tftpRoot = join(work, 'tftp');
    mkdirSync(tftpRoot);
    writeFileSync(join(tftpRoot, 'hello.txt'), 'from the installed package\n');
    const apiPort = await freePort();
    const child = spawn(
      'boot-server',
      [
        'start',
        '--no-dhcp',
        '--config',
        '/dev/null',
        '--server-ip',
        '127.0.0.1',
        '--tftp-port',
        '0',
        '--api-port',
        String(apiPort),
        '--tftp-root',
        tftpRoot,
        '--nfs-root',
        join(work, 'nfs'),
        '--state-dir',
        join(work, 'state'),
      ],
      { cwd: empty, env: { ...env, IOT_TOFU_NEIGHBOUR_SCAN_INTERVAL: '0' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await waitForOutput(child, /"msg":"serving /, 60_000);
      const tftp = output
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { listen?: string; port?: number })
        .find((l) => l.listen === 'tftp');
      expect(tftp?.port).toBeGreaterThan(0);
      const got = await fetchFile(
        systemClock,
        {
          server: '127.0.0.1',
          localAddress: '127.0.0.1',
          path: 'hello.txt',
          tsize: true,
          blksize: 1468,
          probe: false,
          timeoutMs: 10_000,
          rrqResendMs: 2000,
          ackResendMs: 1000,
          signal: new AbortController().signal,
        },
        tftp!.port!,
      );
      expect(got).toMatchObject({ result: 'ok', bytes: 'from the installed package\n'.length });
      const health = await fetch(`http://127.0.0.1:${apiPort}/healthz`);
      expect(health.status).toBe(200);
      const status = await collect(
        spawn('boot-server', ['status', '--config', '/dev/null', '--state-dir', join(work, 'state')], {
          cwd: empty,
          env,
          stdio: ['ignore', 'pipe', 'pipe'],
        }),
        60_000,
      );
      expect(status.stdout).toMatch(new RegExp(`^boot-server: running \\(pid ${child.pid}, `));
      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code, output).toBe(0);
    } finally {
      await stopProcess(child);
    }
  });
});
