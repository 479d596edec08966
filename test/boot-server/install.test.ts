// boot-server install / uninstall / doctor: the hardened unit, the system user and folders made
// below a sandbox root (never the real /), the unit checked by systemd-analyze, and doctor's checks.
import { execFile, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { NfsHealth } from '@iot-tofu/nfs-server-lite';
import { DEFAULT_CONFIG } from '../../packages/boot-server/src/config.js';
import { parseProcNet, portHolders, renderDoctor, runDoctor } from '../../packages/boot-server/src/doctor.js';
import { installBootServer, renderSystemdUnit, renderTmpfiles, type FleetPaths } from '../../packages/boot-server/src/install.js';
import { uninstallBootServer } from '../../packages/boot-server/src/uninstall.js';
import { collect, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';

const run = promisify(execFile);
const paths: FleetPaths = {
  tftpRoot: '/tftpboot',
  nfsRoot: '/nfs',
  stateDir: '/var/lib/iot-tofu',
  exportsFile: '/etc/exports.d/iot-tofu.exports',
};

function bootServer(args: string[]) {
  return collect(
    spawn(process.execPath, [...tsNodeArgs, 'packages/boot-server/src/cli.ts', ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
    60_000,
  );
}

/** The value lines of one key in a unit file. */
function settings(unit: string, key: string): string[] {
  return unit
    .split('\n')
    .filter((line) => line.startsWith(`${key}=`))
    .map((line) => line.slice(key.length + 1));
}

describe('the systemd unit', () => {
  const unit = renderSystemdUnit({
    execStart: ['/usr/bin/node', '/usr/lib/node_modules/iot-tofu/bin/boot-server.js'],
    configFile: '/etc/iot-tofu/config.json',
    paths,
  });

  it('runs as the system user with CAP_NET_BIND_SERVICE only, never CAP_NET_RAW', () => {
    expect(settings(unit, 'User')).toEqual(['iot-tofu']);
    expect(settings(unit, 'Group')).toEqual(['iot-tofu']);
    expect(settings(unit, 'AmbientCapabilities')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(settings(unit, 'CapabilityBoundingSet')).toEqual(['CAP_NET_BIND_SERVICE']);
    expect(unit).not.toMatch(/^[A-Za-z]+=.*CAP_NET_RAW/m);
    expect(settings(unit, 'NoNewPrivileges')).toEqual(['yes']);
    expect(settings(unit, 'Restart')).toEqual(['on-failure']);
    expect(settings(unit, 'ExecStart')).toEqual([
      '/usr/bin/node /usr/lib/node_modules/iot-tofu/bin/boot-server.js start --config /etc/iot-tofu/config.json',
    ]);
  });

  it('makes the file system read-only but for the state dir, hides homes and /tmp', () => {
    expect(settings(unit, 'ProtectSystem')).toEqual(['strict']);
    expect(settings(unit, 'ReadWritePaths')).toEqual(['/var/lib/iot-tofu']);
    expect(settings(unit, 'ProtectHome')).toEqual(['yes']);
    expect(settings(unit, 'PrivateTmp')).toEqual(['yes']);
    expect(settings(unit, 'SystemCallErrorNumber')).toEqual(['EPERM']);
    // V8's JIT needs writable+executable memory: this one must stay off.
    expect(settings(unit, 'MemoryDenyWriteExecute')).toEqual([]);
  });

  it('says ProtectHome=read-only when node or the script lives in a home folder, and quotes odd paths', () => {
    const home = renderSystemdUnit({
      execStart: ['/root/.nvm/versions/node/v20/bin/node', '/home/jo/iot tofu/cli.js'],
      configFile: '/etc/iot-tofu/config.json',
      paths: { ...paths, stateDir: '/srv/iot tofu' },
      programInHome: true,
    });
    expect(settings(home, 'ProtectHome')).toEqual(['read-only']);
    expect(settings(home, 'ExecStart')[0]).toContain('"/home/jo/iot tofu/cli.js"');
    expect(settings(home, 'ReadWritePaths')).toEqual(['"/srv/iot tofu"']);
  });

  it("tmpfiles.d gives the state dir to the service user and keeps the fleet folders root's", () => {
    const lines = renderTmpfiles(paths).split('\n');
    expect(lines).toContain('d /var/lib/iot-tofu 0755 iot-tofu iot-tofu -');
    expect(lines).toContain('z /var/lib/iot-tofu/api-token 0600 iot-tofu iot-tofu -');
    expect(lines).toContain('d /tftpboot 0755 root root -');
    expect(lines).toContain('d /nfs 0755 root root -');
    expect(lines).toContain('d /etc/exports.d 0755 root root -');
  });
});

describe('install and uninstall with injected commands', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'iot-tofu-install-'));
  });
  afterAll(() => rmSync(root, { recursive: true, force: true }));
  const which = async (program: string) =>
    ['systemd-sysusers', 'systemd-tmpfiles', 'systemctl', 'userdel', 'exportfs'].includes(program) ? `/usr/bin/${program}` : undefined;

  it('--dry-run lists what it would do and writes nothing', async () => {
    const calls: string[] = [];
    const result = await installBootServer({
      root: join(root, 'dry'),
      execStart: ['/usr/bin/node', '/x/cli.js'],
      dryRun: true,
      which,
      runner: async (file, args) => {
        calls.push([file, ...args].join(' '));
        return { stdout: '', stderr: '' };
      },
    });
    expect(calls).toEqual([]);
    expect(existsSync(join(root, 'dry'))).toBe(false);
    expect(result.actions.map((a) => a.kind)).toEqual(['write', 'write', 'write', 'write', 'run', 'run']);
    expect(result.actions[4]!.what).toBe(
      `/usr/bin/systemd-sysusers --root=${join(root, 'dry')} ${join(root, 'dry', 'etc/sysusers.d/iot-tofu.conf')}`,
    );
    expect(result.nfsServerPresent).toBe(false);
  });

  it('writes unit, sysusers.d, tmpfiles.d and config, runs sysusers and tmpfiles below the root; takes the folders from an existing config', async () => {
    const calls: string[][] = [];
    const runner = async (file: string, args: readonly string[]) => {
      calls.push([file, ...args]);
      return { stdout: '', stderr: '' };
    };
    mkdirSync(join(root, 'r1/etc/iot-tofu'), { recursive: true });
    writeFileSync(
      join(root, 'r1/etc/iot-tofu/config.json'),
      JSON.stringify({ tftpRoot: '/srv/tftp', stateDir: '/srv/state', logLevel: 'debug' }),
    );
    const result = await installBootServer({
      root: join(root, 'r1'),
      execStart: ['/usr/bin/node', '/x/cli.js'],
      which,
      runner,
      systemdRunning: async () => true,
    });
    expect(result.configWritten).toBe(false);
    expect(readFileSync(join(root, 'r1/etc/iot-tofu/config.json'), 'utf8')).toContain('"logLevel":"debug"');
    const unit = readFileSync(join(root, 'r1/etc/systemd/system/iot-tofu-boot-server.service'), 'utf8');
    expect(settings(unit, 'ReadWritePaths')).toEqual(['/srv/state']);
    expect(readFileSync(join(root, 'r1/etc/sysusers.d/iot-tofu.conf'), 'utf8')).toMatch(
      /^u iot-tofu - "iot-tofu boot server" \/srv\/state \/usr\/sbin\/nologin$/m,
    );
    expect(readFileSync(join(root, 'r1/etc/tmpfiles.d/iot-tofu.conf'), 'utf8')).toMatch(/^d \/srv\/tftp 0755 root root -$/m);
    // Below another root: no daemon-reload (that systemd is not the one we wrote for).
    expect(calls.map((c) => c[0])).toEqual(['/usr/bin/systemd-sysusers', '/usr/bin/systemd-tmpfiles']);
    expect(calls[1]).toEqual([
      '/usr/bin/systemd-tmpfiles',
      `--root=${join(root, 'r1')}`,
      '--create',
      join(root, 'r1/etc/tmpfiles.d/iot-tofu.conf'),
    ]);

    const removed = await uninstallBootServer({ root: join(root, 'r1'), purge: true, which, runner, systemdRunning: async () => true });
    expect(existsSync(join(root, 'r1/etc/systemd/system/iot-tofu-boot-server.service'))).toBe(false);
    expect(existsSync(join(root, 'r1/etc/sysusers.d/iot-tofu.conf'))).toBe(false);
    expect(existsSync(join(root, 'r1/etc/iot-tofu/config.json'))).toBe(false);
    expect(calls.at(-1)).toEqual(['/usr/bin/userdel', '--root', join(root, 'r1'), 'iot-tofu']);
    expect(removed.kept).toEqual(['/srv/tftp', '/nfs', '/srv/state', '/etc/exports.d/iot-tofu.exports']);
  });

  it('refuses root and invalid user names', async () => {
    await expect(installBootServer({ root: join(root, 'r2'), execStart: ['/n'], user: 'root', which })).rejects.toThrow(
      /does not run as root/,
    );
    await expect(installBootServer({ root: join(root, 'r2'), execStart: ['/n'], user: 'Bad User', which })).rejects.toThrow(
      /not a valid system user name/,
    );
  });
});

describe(
  'install into a sandbox root, checked by systemd-analyze',
  needs('root', 'systemd-sysusers', 'systemd-tmpfiles', 'systemd-analyze', 'userdel'),
  () => {
    let root: string;
    beforeAll(() => {
      root = mkdtempSync(join(tmpdir(), 'iot-tofu-sandbox-'));
    });
    afterAll(() => rmSync(root, { recursive: true, force: true }));

    it('creates the system user and folders, passes verify, scores under 2.0 exposure, uninstalls without touching the fleet', async () => {
      const first = await bootServer(['install', '--root', root]);
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toMatch(/^write .*etc\/systemd\/system\/iot-tofu-boot-server\.service$/m);
      expect(first.stdout).toMatch(/^run .*systemd-sysusers --root=/m);
      const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
      const entry = passwd
        .split('\n')
        .find((l) => l.startsWith('iot-tofu:'))!
        .split(':');
      const uid = Number(entry[2]);
      expect(uid).toBeGreaterThan(0);
      expect(uid).toBeLessThan(1000); // a system user
      expect(entry[6]).toBe('/usr/sbin/nologin');
      expect(statSync(join(root, 'var/lib/iot-tofu')).uid).toBe(uid);
      expect(statSync(join(root, 'tftpboot')).uid).toBe(0);
      expect(statSync(join(root, 'nfs')).uid).toBe(0);
      // The host's own passwd is untouched.
      expect(readFileSync('/etc/passwd', 'utf8')).not.toMatch(/^iot-tofu:x:/m);

      const unitFile = join(root, 'etc/systemd/system/iot-tofu-boot-server.service');
      const verify = await run('systemd-analyze', ['verify', unitFile]).then(
        (r) => ({ code: 0, out: r.stdout + r.stderr }),
        (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr }),
      );
      expect(verify.code, verify.out).toBe(0);
      expect(verify.out).not.toContain('iot-tofu-boot-server');
      const security = await run('systemd-analyze', ['security', '--offline=yes', '--threshold=20', unitFile]);
      const score = Number(/Overall exposure level for iot-tofu-boot-server\.service: ([\d.]+)/.exec(security.stdout)?.[1]);
      expect(score).toBeGreaterThan(0);
      expect(score).toBeLessThanOrEqual(2.0);

      // Again: idempotent, the config kept.
      const second = await bootServer(['install', '--root', root]);
      expect(second.code, second.stderr).toBe(0);
      expect(second.stdout).toMatch(/^keep existing .*etc\/iot-tofu\/config\.json$/m);

      writeFileSync(join(root, 'tftpboot', 'marker'), 'fleet data');
      const gone = await bootServer(['uninstall', '--root', root, '--purge']);
      expect(gone.code, gone.stderr).toBe(0);
      expect(existsSync(unitFile)).toBe(false);
      expect(existsSync(join(root, 'etc/iot-tofu/config.json'))).toBe(false);
      expect(readFileSync(join(root, 'etc/passwd'), 'utf8')).not.toMatch(/^iot-tofu:/m);
      expect(readFileSync(join(root, 'tftpboot', 'marker'), 'utf8')).toBe('fleet data');
      expect(gone.stdout).toMatch(/^kept: \/tftpboot \/nfs \/var\/lib\/iot-tofu /m);
    }, 120_000);
  },
);

describe('doctor', () => {
  let dir: string;
  let socket: Socket;
  let port: number;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'iot-tofu-doctor-'));
    for (const d of ['tftp', 'nfs', 'state', 'exports.d']) mkdirSync(join(dir, d));
    socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    port = socket.address().port;
  });
  afterAll(() => {
    socket.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const nfsUp = async (): Promise<NfsHealth> => ({
    nfsdRunning: true,
    nfsdDetail: '8 nfsd threads',
    servesV3: true,
    exported: [{ path: join(dir, 'nfs', 'abcd1234'), client: '192.0.2.0/24', options: ['rw'] }],
  });
  const config = () => ({
    ...DEFAULT_CONFIG,
    serverIp: '127.0.0.1',
    tftpRoot: join(dir, 'tftp'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile: join(dir, 'exports.d', 'iot-tofu.exports'),
    dhcp: false,
    tftpPort: port,
    apiPort: 0,
  });
  const which = async (p: string) => (p === 'exportfs' ? '/usr/sbin/exportfs' : undefined);

  it('parses /proc/net lines (IPv4, IPv6, ports in hex)', () => {
    const udp =
      '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n  12: 0100007F:0045 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 424242 2 0000000000000000 0\n';
    expect(parseProcNet(udp, 'udp')).toEqual([{ protocol: 'udp', address: '127.0.0.1', port: 69, state: '07', inode: 424242 }]);
    const tcp6 =
      '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0\n   1: 00000000000000000000000001000000:0FA3 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 778 1\n';
    expect(parseProcNet(tcp6, 'tcp')).toEqual([
      { protocol: 'tcp', address: '::', port: 8083, state: '0A', inode: 777 },
      { protocol: 'tcp', address: '::1', port: 4003, state: '0A', inode: 778 },
    ]);
    expect(parseProcNet('header\ngarbage line\n', 'udp')).toEqual([]);
  });

  it('names the process that holds a port, from /proc', async () => {
    const holders = await portHolders('/proc', 'udp', port);
    expect(holders).toHaveLength(1);
    expect(holders[0]).toMatchObject({ address: '127.0.0.1', port, pid: process.pid });
  });

  it('fails a port held by another program, passes one held by the running daemon, prints the EEPROM lines', async () => {
    const held = await runDoctor({ config: config(), configFile: join(dir, 'config.json'), root: dir, which, nfs: nfsUp });
    expect(held.ok).toBe(false);
    const tftp = held.checks.find((c) => c.name === `port ${port}/udp (tftp)`)!;
    expect(tftp.status).toBe('fail');
    expect(tftp.detail).toMatch(new RegExp(`^held by .* \\(pid ${process.pid}\\): another TFTP server`));
    expect(held.checks.find((c) => c.name === 'service')).toMatchObject({ status: 'warn' });
    expect(held.checks.find((c) => c.name === 'tftp-sockets')).toMatchObject({
      status: 'ok',
      detail: expect.stringContaining('native addon'),
    });
    expect(held.checks.find((c) => c.name === 'nfsd')).toMatchObject({ status: 'ok' });
    expect(held.checks.find((c) => c.name === 'exports')).toMatchObject({ status: 'warn' });
    expect(held.checks.some((c) => c.name.includes('(dhcp)'))).toBe(false);

    // The same socket, but this process is the daemon the runtime file names.
    writeFileSync(
      join(dir, 'state', 'boot-server.json'),
      JSON.stringify({ pid: process.pid, startedAt: new Date().toISOString(), addresses: [], serverIp: '127.0.0.1' }),
    );
    writeFileSync(join(dir, 'exports.d', 'iot-tofu.exports'), '');
    const ours = await runDoctor({ config: config(), root: dir, which, nfs: nfsUp });
    expect(ours.checks.find((c) => c.name === `port ${port}/udp (tftp)`)).toMatchObject({
      status: 'ok',
      detail: `boot-server (pid ${process.pid})`,
    });
    expect(ours.checks.find((c) => c.name === 'exports')).toMatchObject({ status: 'ok', detail: expect.stringContaining('1 root(s)') });
    expect(ours.ok).toBe(true);
    const text = renderDoctor(ours);
    expect(text).toMatch(/^ {4}BOOT_ORDER=0xf21 /m);
    expect(text).toMatch(/^ {4}TFTP_PREFIX=0 /m);
    expect(text).toContain('rpi-eeprom-config --edit');

    const down = await runDoctor({
      config: config(),
      root: dir,
      which: async () => undefined,
      nfs: async () => ({
        nfsdRunning: false,
        nfsdDetail: 'nfsd not available: ENOENT reading /proc/fs/nfsd/threads',
        servesV3: null,
        exported: [],
      }),
    });
    expect(down.checks.find((c) => c.name === 'nfsd')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('nfs-kernel-server'),
    });
    expect(down.checks.find((c) => c.name === 'exports')).toMatchObject({
      status: 'fail',
      detail: expect.stringContaining('exportfs not found'),
    });
    expect(down.ok).toBe(false);
  });

  it('the bin prints checks and the bootloader settings; --json has them too; exit 1 when a check fails', async () => {
    const file = join(dir, 'doctor.json');
    writeFileSync(
      file,
      JSON.stringify({
        serverIp: '127.0.0.1',
        tftpRoot: join(dir, 'tftp'),
        nfsRoot: join(dir, 'nfs'),
        stateDir: join(dir, 'state2'),
        exportsFile: join(dir, 'exports.d', 'x.exports'),
        dhcp: false,
        tftpPort: port,
        apiPort: 0,
      }),
    );
    const text = await bootServer(['doctor', '--config', file, '--root', dir]);
    expect(text.code, text.stderr).toBe(1);
    expect(text.stdout).toMatch(new RegExp(`^FAIL +port ${port}/udp \\(tftp\\) +held by `, 'm'));
    expect(text.stdout).toMatch(/^ok +config +.*doctor\.json$/m);
    expect(text.stdout).toMatch(/BOOT_ORDER=0xf21/);
    const json = await bootServer(['doctor', '--config', file, '--root', dir, '--json']);
    const report = JSON.parse(json.stdout) as { ok: boolean; eeprom: { settings: Array<{ line: string }> } };
    expect(report.ok).toBe(false);
    expect(report.eeprom.settings.map((s) => s.line)).toEqual(['BOOT_ORDER=0xf21', 'TFTP_PREFIX=0']);
  }, 120_000);
});
