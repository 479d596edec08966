import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Fleet, type FleetOptions, type FleetStep } from '../src/index.js';
import { needs, repoRoot, tsNodeArgs } from '@iot-tofu/test-kit';
import { BASE_BOOT_FILES, VERB_NEEDS, recordingRunner, tempDir, tempRoots } from './helpers.js';

/**
 * Issue 19 items 2-4: a fleet verb killed at any point (each named step, random moments; the whole
 * process group or the main PID alone) leaves a state the next verb repairs by itself: the fleet is
 * consistent (registry = folders = export lines, no temp/trash/old trees, no pending intent) and
 * the verb that follows succeeds.
 */
const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SERIAL = '9f55bbfd';

function world() {
  const dir = tempDir('kill');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const boot = join(dir, 'src', 'boot');
  const root = join(dir, 'src', 'root');
  mkdirSync(join(boot, 'overlays'), { recursive: true });
  for (const f of BASE_BOOT_FILES) writeFileSync(join(boot, f), Buffer.alloc(256 * 1024, f.length));
  writeFileSync(join(boot, 'config.txt'), 'auto_initramfs=1\n');
  writeFileSync(join(boot, 'cmdline.txt'), 'console=tty1 root=PARTUUID=x-02 rootwait\n');
  // A root big enough that cp is still running at random kill moments.
  for (let d = 0; d < 40; d++) {
    mkdirSync(join(root, 'usr', `d${d}`), { recursive: true });
    for (let f = 0; f < 20; f++) writeFileSync(join(root, 'usr', `d${d}`, `f${f}`), Buffer.alloc(64 * 1024, d + f));
  }
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc', 'hostname'), 'raspberrypi\n');
  const options = tempRoots(dir);
  const open = async () => {
    const fleet = await Fleet.open({
      ...options,
      runner: recordingRunner({ fakeExportfs: true }).runner,
      isRoot: () => true,
    } satisfies FleetOptions);
    cleanups.push(() => fleet.close());
    return fleet;
  };
  return { dir, options, base: { boot, root }, open };
}

type World = ReturnType<typeof world>;

/** Runs kill-child.ts; resolves when it has exited (killed or done), and its whole group is gone. */
async function runChild(
  w: World,
  verb: 'setup' | 'add' | 'remove',
  kill: { atStep?: FleetStep; afterMs?: number; group?: boolean },
): Promise<{ output: string; killed: boolean }> {
  const job = { options: w.options, verb, base: w.base, serial: SERIAL, ...(kill.atStep ? { killAt: kill.atStep } : {}) };
  const child = spawn(process.execPath, [...tsNodeArgs, 'packages/fleet/test/kill-child.ts', JSON.stringify(job)], {
    cwd: repoRoot,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const pid = child.pid!;
  cleanups.push(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // the group is gone
    }
  });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  let timer: NodeJS.Timeout | undefined;
  if (kill.afterMs !== undefined) {
    // Count from the first step, so the kill lands inside the verb, not in tsx's start-up.
    const started = new Promise<void>((resolve) => child.stdout.on('data', () => resolve()));
    void started.then(() => {
      timer = setTimeout(() => {
        try {
          if (kill.group) process.kill(-pid, 'SIGKILL');
          else process.kill(pid, 'SIGKILL');
        } catch {
          // already exited
        }
      }, kill.afterMs);
    });
  }
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (c, s) => resolve({ code: c, signal: s })),
  );
  clearTimeout(timer);
  // Children killed with the main PID (pdeathsig) are gone within moments; wait for the group to empty.
  for (let i = 0; i < 100 && groupAlive(pid); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  expect(groupAlive(pid), 'a child of the killed verb (cp) outlived it').toBe(false);
  if (signal === null && code !== 0) throw new Error(`kill-child failed (${code}):\n${output}`);
  return { output, killed: signal === 'SIGKILL' };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Registry, folders and export lines agree; nothing half-made is left anywhere. */
function expectConsistent(w: World): void {
  const registry = JSON.parse(readFileSync(join(w.options.stateDir, 'registry.json'), 'utf8')) as {
    pis: Record<string, unknown>;
    bases: Record<string, unknown>;
  };
  const pis = Object.keys(registry.pis).sort();
  const list = (dir: string) => (existsSync(dir) ? readdirSync(dir).sort() : []);
  const serialDirs = (dir: string) => list(dir).filter((n) => /^[0-9a-f]{8}$/.test(n));
  expect(serialDirs(w.options.tftpRoot)).toEqual(pis);
  expect(serialDirs(w.options.nfsRoot)).toEqual(pis);
  const exported = existsSync(w.options.exportsFile)
    ? readFileSync(w.options.exportsFile, 'utf8')
        .split('\n')
        .filter((l) => l.startsWith('/'))
        .map((l) => l.split(/\s+/)[0])
    : [];
  expect(exported.sort()).toEqual(pis.flatMap((s) => [join(w.options.nfsRoot, s), join(w.options.tftpRoot, s)]).sort());
  expect(list(join(w.options.nfsRoot, 'bases'))).toEqual(Object.keys(registry.bases).sort());
  expect(list(join(w.options.stateDir, 'bases'))).toEqual(Object.keys(registry.bases).sort());
  for (const dir of [
    w.options.tftpRoot,
    w.options.nfsRoot,
    join(w.options.nfsRoot, 'bases'),
    join(w.options.stateDir, 'bases'),
    w.options.stateDir,
  ]) {
    expect(
      list(dir).filter((n) => /\.(tmp|trash|old)-|^\.scratch-/.test(n)),
      `leftovers in ${dir}`,
    ).toEqual([]);
  }
  expect(list(join(w.options.stateDir, 'intents'))).toEqual([]);
}

const SETUP_STEPS: FleetStep[] = ['setup:boot', 'setup:root', 'setup:commit', 'setup:registry'];
const ADD_STEPS: FleetStep[] = [
  'add:boot-files',
  'add:rootfs-copy',
  'add:rootfs-tweak',
  'add:docker-disk',
  'add:commit-dirs',
  'add:exports',
  'add:registry',
];
const REMOVE_STEPS: FleetStep[] = ['remove:exports', 'remove:registry', 'remove:delete'];

describe('a verb killed at any point is repaired by the next one (issue 19)', {
  timeout: 120_000,
  ...needs(...VERB_NEEDS, 'setpriv', 'mkfs.ext4'),
}, () => {
  it.each(SETUP_STEPS)('setup killed at %s: the next setup of the same base succeeds', async (step) => {
    const w = world();
    expect((await runChild(w, 'setup', { atStep: step })).killed).toBe(true);
    const fleet = await w.open();
    await fleet
      .setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } })
      .catch(async (error: { code?: string }) => {
        // Killed after the registry write: the base is there, as the operator wanted.
        if (error.code !== 'BASE_EXISTS' || step !== 'setup:registry') throw error;
      });
    expect(fleet.bases().map((b) => b.name)).toEqual(['lite']);
    expectConsistent(w);
  });

  it.each(ADD_STEPS)('add killed at %s: the next add of the same serial succeeds', async (step) => {
    const w = world();
    await (await w.open()).setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    expect((await runChild(w, 'add', { atStep: step })).killed).toBe(true);
    const fleet = await w.open();
    expectConsistent(w);
    await fleet.add({ serial: SERIAL, owner: 'jo', name: 'pi', base: 'lite' });
    expectConsistent(w);
    expect(fleet.list().map((p) => p.serial)).toEqual([SERIAL]);
  });

  it.each(REMOVE_STEPS)('remove killed at %s: the removal is finished and a re-add starts clean', async (step) => {
    const w = world();
    const first = await w.open();
    await first.setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    await first.add({ serial: SERIAL, owner: 'jo', name: 'pi', base: 'lite' });
    writeFileSync(join(w.options.nfsRoot, SERIAL, 'etc', 'marker'), 'from the first life\n');
    expect((await runChild(w, 'remove', { atStep: step })).killed).toBe(true);
    const fleet = await w.open();
    expectConsistent(w);
    expect(fleet.list()).toEqual([]);
    await fleet.add({ serial: SERIAL, owner: 'jo', name: 'pi', base: 'lite' });
    expect(existsSync(join(w.options.nfsRoot, SERIAL, 'etc', 'marker'))).toBe(false);
    expectConsistent(w);
  });

  // Random moments inside an add (cp of the root included), killing the whole group or only the main PID.
  it.each([
    { afterMs: 0, group: false },
    { afterMs: 40, group: false },
    { afterMs: 120, group: true },
    { afterMs: 250, group: false },
    { afterMs: 400, group: true },
  ])('add killed $afterMs ms after it started (group: $group)', async ({ afterMs, group }) => {
    const w = world();
    await (await w.open()).setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    await runChild(w, 'add', { afterMs, group });
    const fleet = await w.open();
    expectConsistent(w);
    // Whether the kill landed before or after the commit, the fleet ends with the Pi after one more verb.
    if (!fleet.list().length) await fleet.add({ serial: SERIAL, owner: 'jo', name: 'pi', base: 'lite' });
    expectConsistent(w);
    expect(fleet.list().map((p) => p.serial)).toEqual([SERIAL]);
  });
});
