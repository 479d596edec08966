import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchFile, systemClock } from '@iot-tofu/rpi-sim';
import { collect, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { freePort } from '../../packages/boot-server/test/free-port.js';

const CLI = ['packages/boot-server/src/cli.ts'];

function bootServer(args: string[], env: NodeJS.ProcessEnv = {}): ChildProcess {
  return spawn(process.execPath, [...tsNodeArgs, ...CLI, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** JSON log lines printed so far. */
function logLines(text: string): Array<Record<string, unknown>> {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe('boot-server bin', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'iot-tofu-bin-'));
    mkdirSync(join(dir, 'tftp'));
    writeFileSync(join(dir, 'tftp', 'hello.txt'), 'hello from tofu\n');
    writeFileSync(join(dir, 'not-a-dir'), 'x');
    writeFileSync(join(dir, 'typo.json'), JSON.stringify({ tftpRoot: join(dir, 'tftp'), tftpport: 69 }));
    writeFileSync(join(dir, 'broken.json'), '{"tftpRoot": ');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const base = () => [
    'start',
    '--config',
    '/dev/null',
    '--server-ip',
    '127.0.0.1',
    '--no-dhcp',
    '--api-port',
    '0',
    '--state-dir',
    join(dir, 'state-bad'),
    '--nfs-root',
    join(dir, 'nfs'),
  ];

  it('refuses bad flags and unusable roots with one clear line and a non-zero exit', async () => {
    const cases: Array<[string[], RegExp, NodeJS.ProcessEnv?]> = [
      [['start', '--bogus'], /^boot-server: unknown option '--bogus'$/],
      [
        [...base(), '--tftp-port', 'abc', '--tftp-root', join(dir, 'tftp')],
        /^boot-server: invalid config \(command line --tftp-port\): tftpPort: expected a whole number ≥ 0, got "abc"$/,
      ],
      [[...base(), '--tftp-root', join(dir, 'not-a-dir')], /^boot-server: tftpRoot: .*not-a-dir is not a directory$/],
      [[...base(), '--tftp-root', join(dir, 'missing')], /^boot-server: tftpRoot: .*missing does not exist$/],
      [
        [...base(), '--tftp-root', join(dir, 'tftp'), '--dhcp-answer', 'everyone'],
        /^boot-server: option '--dhcp-answer <mode>' argument 'everyone' is invalid/,
      ],
      // Full-DHCP flags reach the config checks (which name the key) before anything binds.
      [[...base(), '--tftp-root', join(dir, 'tftp'), '--dhcp-mode', 'full'], /dhcpRange: required with dhcpMode full/],
      [
        [...base(), '--tftp-root', join(dir, 'tftp'), '--dhcp-mode', 'full', '--dhcp-range', '10.77.0.100-nope'],
        /--dhcp-range\): dhcpRange: expected FIRST-LAST/,
      ],
      [['start', '--config', join(dir, 'typo.json')], /^boot-server: invalid config \(config file .*typo\.json\): tftpport: unknown key/],
      [['start', '--config', join(dir, 'broken.json')], /^boot-server: invalid config: config: .*broken\.json is not valid JSON/],
      [['start', '--config', join(dir, 'nope.json')], /^boot-server: invalid config: config: cannot read .*nope\.json: ENOENT$/],
      [
        [...base(), '--tftp-root', join(dir, 'tftp')],
        /^boot-server: invalid config \(environment IOT_TOFU_API_LISTEN\): apiListen: expected an IPv4 address, got "localhost"$/,
        { IOT_TOFU_API_LISTEN: 'localhost' },
      ],
    ];
    // Three at a time: each is a Node start-up with tsx, and CI runs other suites beside this one.
    const results: Awaited<ReturnType<typeof collect>>[] = [];
    for (let i = 0; i < cases.length; i += 3) {
      results.push(...(await Promise.all(cases.slice(i, i + 3).map(([args, , env]) => collect(bootServer(args, env), 60_000)))));
    }
    for (const [i, [args, pattern]] of cases.entries()) {
      const result = results[i]!;
      expect(result.signal, `${args.join(' ')} did not finish in time`).toBeNull();
      expect(result.code, args.join(' ')).not.toBe(0);
      expect(result.stderr.trimEnd().split('\n'), `${args.join(' ')}\n${result.stderr}`).toHaveLength(1);
      expect(result.stderr.trim()).toMatch(pattern);
    }
  }, 240_000);

  it('serves TFTP, logs one line per socket, reloads on SIGHUP, reports status and stops cleanly on SIGTERM', async () => {
    const apiPort = await freePort();
    const stateDir = join(dir, 'state');
    const configFile = join(dir, 'config.json');
    const config = {
      serverIp: '127.0.0.1',
      tftpRoot: join(dir, 'tftp'),
      nfsRoot: join(dir, 'nfs'),
      stateDir,
      exportsFile: join(dir, 'exports'),
      dhcp: false,
      tftpPort: 0,
      apiPort,
      logLevel: 'info',
      neighbourScanInterval: 0,
    };
    writeFileSync(configFile, JSON.stringify(config));
    const child = bootServer(['start', '--config', configFile]);
    let output = '';
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    try {
      await waitForOutput(child, /"msg":"serving /, 60_000);
      const listening = logLines(output).filter((l) => String(l.msg).startsWith('listening on'));
      expect(listening.map((l) => l.listen).sort()).toEqual(['api', 'tftp']);
      expect(listening.find((l) => l.listen === 'api')).toMatchObject({
        address: '127.0.0.1',
        port: apiPort,
        msg: `listening on tcp 127.0.0.1:${apiPort} (api)`,
      });
      const tftpPort = listening.find((l) => l.listen === 'tftp')!.port as number;
      expect(tftpPort).toBeGreaterThan(0);

      // The token is generated with mode 0600 at first start.
      expect(statSync(join(stateDir, 'api-token')).mode & 0o777).toBe(0o600);

      // A plain TFTP read (our simulated Pi's client: no peer program needed).
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
        tftpPort,
      );
      expect(got).toMatchObject({ result: 'ok', bytes: 'hello from tofu\n'.length });

      const status = await collect(bootServer(['status', '--config', configFile]), 60_000);
      expect(status.code, status.stderr).toBe(0);
      expect(status.stdout).toMatch(new RegExp(`^boot-server: running \\(pid ${child.pid}, since `));
      expect(status.stdout).toContain(`tftp  udp 127.0.0.1:${tftpPort}`);
      expect(status.stdout).toMatch(/health: status=ok dhcp=false tftp=true serverIp=127\.0\.0\.1 pis=0/);
      expect(status.stdout).toMatch(/^nfsd: /m);
      expect(status.stdout).toMatch(/^exports/m);

      // SIGHUP: new log level applies at once, a new port needs a restart and is said so.
      writeFileSync(configFile, JSON.stringify({ ...config, logLevel: 'debug', tftpPort: 1069 }));
      child.kill('SIGHUP');
      await waitForOutput(child, /SIGHUP: config reloaded; restart needed for tftpPort/, 10_000);
      writeFileSync(configFile, '{ not json');
      child.kill('SIGHUP');
      await waitForOutput(child, /SIGHUP: config not reloaded: invalid config: config: .* is not valid JSON/, 10_000);
      expect(child.exitCode).toBeNull();

      child.kill('SIGTERM');
      const code = await new Promise<number | null>((resolve) => child.once('exit', (exitCode) => resolve(exitCode)));
      expect(code).toBe(0);
      const lines = logLines(output);
      expect(lines.at(-1)?.msg).toBe('stopped');
      expect(existsSync(join(stateDir, 'boot-server.json'))).toBe(false);

      const stopped = await collect(bootServer(['status', '--state-dir', stateDir, '--config', '/dev/null']), 60_000);
      expect(stopped.code).toBe(3);
      expect(stopped.stdout).toMatch(/^boot-server: not running$/m);
    } finally {
      await stopProcess(child);
    }
  }, 120_000);

  it('install --dry-run lists the unit, sysusers.d, tmpfiles.d and config it would write, and writes nothing (the real install: install.test.ts)', async () => {
    const root = join(dir, 'root');
    const dry = await collect(bootServer(['install', '--root', root, '--dry-run']), 60_000);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toContain(`would write ${join(root, 'etc/systemd/system/iot-tofu-boot-server.service')}\n`);
    expect(dry.stdout).toContain(`would write ${join(root, 'etc/sysusers.d/iot-tofu.conf')}\n`);
    expect(dry.stdout).toContain(`would write ${join(root, 'etc/tmpfiles.d/iot-tofu.conf')}\n`);
    expect(dry.stdout).toContain(`would write ${join(root, 'etc/iot-tofu/config.json')}\n`);
    expect(dry.stdout).toMatch(/^the daemon runs as iot-tofu with CAP_NET_BIND_SERVICE only/m);
    expect(dry.stdout).toContain(`nfs-kernel-server: ${needs.met('exportfs', 'rpc.nfsd') ? 'present' : 'MISSING'}`);
    expect(existsSync(root)).toBe(false);
    const refused = await collect(bootServer(['install', '--root', root, '--dry-run', '--user', 'root']), 60_000);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^boot-server: the daemon does not run as root/);
  }, 120_000);
});
