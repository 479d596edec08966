import { execFileSync, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagedExports } from '@iot-tofu/nfs-server-lite';
import { collect, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';
import { makeBaseTrees, tempDir } from '../../packages/fleet/test/helpers.js';
import { Fleet } from '../../packages/fleet/src/index.js';

const CLI = 'packages/pxetools/src/cli.ts';

/**
 * Several processes on one state dir, like operators running pxetools while the daemon serves:
 * parallel CLI adds must all land (registry lock), and a CLI killed with SIGKILL in the middle of
 * an add must leave nothing that blocks the next attempt.
 */
/** Without a terminal pxetools reports progress as plain lines on stderr ("Copying root: 50% (…)"); what is left is what went wrong. */
const withoutProgress = (stderr: string) =>
  stderr
    .split(/(?<=\n)/)
    .filter((line) => !/^[A-Z][\w ]*: \d{1,3}% \(/.test(line))
    .join('');

describe('fleet across processes (real pxetools processes, real exportfs)', {
  timeout: 120_000,
  ...needs('root', 'exportfs', 'exports.d', 'xattr'),
}, () => {
  let dir: string;
  let configFile: string;
  let exportsFile: string;
  let roots: { tftpRoot: string; nfsRoot: string; stateDir: string };

  const spawnCli = (args: string[]) =>
    spawn(process.execPath, [...tsNodeArgs, CLI, ...args, '--config', configFile], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });

  beforeAll(async () => {
    dir = tempDir('multi');
    chmodSync(dir, 0o755);
    roots = { tftpRoot: join(dir, 'tftpboot'), nfsRoot: join(dir, 'nfs'), stateDir: join(dir, 'state') };
    mkdirSync('/etc/exports.d', { recursive: true });
    exportsFile = `/etc/exports.d/iot-tofu-test-${randomBytes(4).toString('hex')}.exports`;
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...roots, exportsFile, exportsClients: '10.77.0.0/24', serverIp: '10.77.0.2' }));
    const src = makeBaseTrees(join(dir, 'src'));
    // ~120 MiB so a copy takes long enough to be interrupted.
    mkdirSync(join(src.root, 'usr/lib/big'), { recursive: true });
    for (let i = 0; i < 120; i++) writeFileSync(join(src.root, 'usr/lib/big', `f${i}`), Buffer.alloc(1024 * 1024, i + 1));
    const setup = await collect(spawnCli(['setup', '--base', 'lite', '--boot-dir', src.boot, '--rootfs-dir', src.root]), 60_000);
    expect(withoutProgress(setup.stderr)).toBe('');
  });

  afterAll(async () => {
    // Our file goes before our folders; ManagedExports' reload tolerates other tests' exports files.
    await new ManagedExports({ file: exportsFile }).removeFile();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parallel pxetools --add runs all land in one consistent registry and exports file', async () => {
    const serials = ['a0000001', 'a0000002', 'a0000003', 'a0000004'];
    // The daemon's side: learned facts written at the same time.
    const daemon = await Fleet.open({ ...roots, exportsFile, exportsClients: '10.77.0.0/24', serverIp: '10.77.0.2', seenFlushMs: 5 });
    const changes: string[] = [];
    const stop = daemon.watch((c) => changes.push(...c.added));
    const runs = serials.map((s) => collect(spawnCli(['--add', s, '--owner', 'ops', '--name', `pi-${s}`, '--base', 'lite']), 60_000));
    for (let i = 0; i < 20; i++) {
      daemon.recordSeen({ mac: `d8:3a:dd:00:00:${i.toString(16).padStart(2, '0')}`, at: Date.now() });
      await sleep(20);
    }
    const results = await Promise.all(runs);
    for (const r of results) expect({ code: r.code, stderr: withoutProgress(r.stderr) }).toEqual({ code: 0, stderr: '' });
    await expect.poll(() => [...new Set(changes)].sort(), { timeout: 5000 }).toEqual(serials);
    stop();
    await daemon.close();
    const registry = JSON.parse(readFileSync(join(roots.stateDir, 'registry.json'), 'utf8')) as { pis: Record<string, unknown> };
    expect(Object.keys(registry.pis).sort()).toEqual(serials);
    const exportsText = readFileSync(exportsFile, 'utf8');
    for (const s of serials) {
      expect(exportsText).toContain(`${roots.nfsRoot}/${s} 10.77.0.0/24(`);
      expect(exportsText).toContain(`${roots.tftpRoot}/${s} 10.77.0.0/24(`);
    }
    expect(Object.keys((JSON.parse(readFileSync(join(roots.stateDir, 'seen.json'), 'utf8')) as { byMac: object }).byMac)).toHaveLength(20);
    const active = execFileSync('exportfs', ['-v'], { encoding: 'utf8' });
    for (const s of serials) expect(active).toContain(`${roots.nfsRoot}/${s}`);
  });

  it('an add killed with SIGKILL mid-copy blocks nothing: the retry cleans up and succeeds', async () => {
    const child = spawnCli(['--add', 'b0000001', '--owner', 'ops', '--name', 'killed', '--base', 'lite']);
    const done = collect(child, 60_000);
    await expect
      .poll(() => readdirSync(roots.nfsRoot).some((n) => n.startsWith('.b0000001.tmp-')), { timeout: 20_000, interval: 20 })
      .toBe(true);
    // The whole process group: node and the cp it started, like a power cut of that session.
    process.kill(-child.pid!, 'SIGKILL');
    expect((await done).signal).toBe('SIGKILL');
    expect(existsSync(join(roots.stateDir, 'locks', 'b0000001.lock'))).toBe(true);
    expect(JSON.parse(readFileSync(join(roots.stateDir, 'registry.json'), 'utf8')).pis.b0000001).toBeUndefined();

    const retry = await collect(spawnCli(['--add', 'b0000001', '--owner', 'ops', '--name', 'retried', '--base', 'lite', '--json']), 60_000);
    expect(withoutProgress(retry.stderr)).toBe('');
    expect(JSON.parse(retry.stdout)).toMatchObject({ serial: 'b0000001', name: 'retried' });
    expect(readdirSync(roots.nfsRoot).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(readdirSync(roots.tftpRoot).filter((n) => n.startsWith('.'))).toEqual([]);
    expect(readdirSync(join(roots.stateDir, 'locks'))).toEqual([]);
  });
});
