import { execFileSync } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  lstatSync,
  symlinkSync,
  writeFileSync,
  writeSync,
  rmSync,
} from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Fleet, type FleetOptions, type FleetStep } from '../src/index.js';
import { needs } from '@iot-tofu/test-kit';
import {
  IMAGE_LAYOUT,
  IMAGE_TOOLS,
  SPECIAL_ENTRIES,
  VERB_NEEDS,
  anyUser,
  makeBaseTrees,
  makePiImage,
  recordingRunner,
  tempDir,
  treeManifest,
} from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function world(extra: Partial<FleetOptions> = {}, runnerOptions: Parameters<typeof recordingRunner>[0] = {}) {
  const dir = tempDir('tx');
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const { runner, calls } = recordingRunner({ fakeExportfs: true, ...runnerOptions });
  const options: FleetOptions = {
    tftpRoot: join(dir, 'tftpboot'),
    nfsRoot: join(dir, 'nfs'),
    stateDir: join(dir, 'state'),
    exportsFile: join(dir, 'exports', 'iot-tofu.exports'),
    exportsClients: '10.77.0.0/24',
    serverIp: '10.77.0.2',
    runner,
    ...anyUser,
    ...extra,
  };
  const open = async (more: Partial<FleetOptions> = {}) => {
    const fleet = await Fleet.open({ ...options, ...more });
    cleanups.push(() => fleet.close());
    return fleet;
  };
  const src = makeBaseTrees(join(dir, 'src'), { bookworm: true });
  const snapshot = () => ({
    tftp: existsSync(options.tftpRoot) ? readdirSync(options.tftpRoot).sort() : [],
    nfs: existsSync(options.nfsRoot) ? readdirSync(options.nfsRoot).sort() : [],
    bases: existsSync(join(options.nfsRoot, 'bases')) ? readdirSync(join(options.nfsRoot, 'bases')).sort() : [],
    // locks/ is created by the first add and stays (empty); its content is checked below.
    state: existsSync(options.stateDir)
      ? readdirSync(options.stateDir)
          .filter((n) => n !== 'locks')
          .sort()
      : [],
    stateBases: existsSync(join(options.stateDir, 'bases')) ? readdirSync(join(options.stateDir, 'bases')).sort() : [],
    locks: existsSync(join(options.stateDir, 'locks')) ? readdirSync(join(options.stateDir, 'locks')) : [],
    exports: existsSync(options.exportsFile!) ? readFileSync(options.exportsFile!, 'utf8') : null,
    registry: existsSync(join(options.stateDir, 'registry.json')) ? readFileSync(join(options.stateDir, 'registry.json'), 'utf8') : null,
  });
  return { dir, options, open, src, calls, snapshot };
}

const ADD_STEPS: FleetStep[] = ['add:boot-files', 'add:rootfs-copy', 'add:rootfs-tweak', 'add:commit-dirs', 'add:exports', 'add:registry'];

describe('add is transactional', needs(...VERB_NEEDS), () => {
  it.each(ADD_STEPS)('a failure at %s leaves no trace', async (failAt) => {
    const w = await world();
    const setupFleet = await w.open();
    await setupFleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await setupFleet.add({ serial: '11111111', owner: 'jo', name: 'first', base: 'lite' });
    const before = w.snapshot();
    const fleet = await w.open({
      beforeStep: (step) => {
        if (step === failAt) throw new Error(`injected failure at ${step}`);
      },
    });
    await expect(fleet.add({ serial: '22222222', owner: 'jo', name: 'second', base: 'lite' })).rejects.toThrow(
      `injected failure at ${failAt}`,
    );
    expect(w.snapshot()).toEqual(before);
    expect(fleet.isRegistered({ serial: '22222222' })).toBe(false);
    // ... and a retry works (no "already exists" leftovers: docs/pxetools-compat.md E5).
    const retry = await w.open();
    await expect(retry.add({ serial: '22222222', owner: 'jo', name: 'second', base: 'lite' })).resolves.toMatchObject({
      pi: { serial: '22222222' },
    });
  });

  it.each(['remove:exports', 'remove:registry'] as FleetStep[])('a failure at %s leaves the Pi fully in place', async (failAt) => {
    const w = await world();
    const first = await w.open();
    await first.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await first.add({ serial: '12121212', owner: 'jo', name: 'keep', base: 'lite' });
    const before = w.snapshot();
    const fleet = await w.open({
      beforeStep: (step) => {
        if (step === failAt) throw new Error(`injected ${step}`);
      },
    });
    await expect(fleet.remove('12121212')).rejects.toThrow(`injected ${failAt}`);
    expect(w.snapshot()).toEqual(before);
    expect(fleet.isRegistered({ serial: '12121212' })).toBe(true);
  });

  it('a failure while deleting after the commit is swept by the next remove', async () => {
    const w = await world();
    const first = await w.open();
    await first.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await first.add({ serial: '13131313', owner: 'jo', name: 'gone', base: 'lite' });
    const fleet = await w.open({
      beforeStep: (step) => {
        if (step === 'remove:delete') throw new Error('injected delete failure');
      },
    });
    await expect(fleet.remove('13131313')).rejects.toThrow('injected delete failure');
    expect(fleet.isRegistered({ serial: '13131313' })).toBe(false);
    expect(w.snapshot().nfs.some((n) => n.startsWith('.13131313.trash-'))).toBe(true);
    expect(await (await w.open()).remove('13131313')).toEqual({ serial: '13131313', removed: false });
    expect(w.snapshot().nfs).toEqual(['bases']);
    expect(w.snapshot().tftp).toEqual(['base', 'bootcode.bin']);
  });

  it('a failing cp (real non-zero exit) leaves no trace', async () => {
    const w = await world({}, { fail: (file, args) => file === 'cp' && args.some((a) => a.endsWith('/nfs/bases/lite/.')) });
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    const before = w.snapshot();
    await expect(fleet.add({ serial: '33333333', owner: 'jo', name: 'x', base: 'lite' })).rejects.toMatchObject({ code: 'COPY_FAILED' });
    expect(w.snapshot()).toEqual(before);
  });

  it('never writes through a symlink in the base onto the server, and refuses a symlinked /etc', async () => {
    const w = await world();
    const outside = join(w.dir, 'server-hostname');
    writeFileSync(outside, 'server\n');
    rmSync(join(w.src.root, 'etc/hostname'));
    symlinkSync(outside, join(w.src.root, 'etc/hostname'));
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.add({ serial: '44444444', owner: 'jo', name: 'safe', base: 'lite' });
    expect(readFileSync(outside, 'utf8')).toBe('server\n');
    expect(lstatSync(join(w.options.nfsRoot, '44444444/etc/hostname')).isFile()).toBe(true);

    const src2 = makeBaseTrees(join(w.dir, 'src2'));
    const realEtc = join(w.dir, 'real-etc');
    execFileSync('mv', [join(src2.root, 'etc'), realEtc]);
    symlinkSync(realEtc, join(src2.root, 'etc'));
    mkdirSync(join(src2.root, 'etc2'));
    await expect(fleet.setup({ base: 'evil', source: { kind: 'dirs', boot: src2.boot, root: src2.root } })).resolves.toBeDefined();
    const before = w.snapshot();
    await expect(fleet.add({ serial: '55555555', owner: 'jo', name: 'evil', base: 'evil' })).rejects.toMatchObject({
      code: 'BASE_INVALID',
    });
    expect(w.snapshot()).toEqual(before);
    expect(readFileSync(join(realEtc, 'hostname'), 'utf8')).toBe('raspberrypi\n');
  });

  it('remove deletes symlinks, never what they point to', async () => {
    const w = await world();
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.add({ serial: '66666666', owner: 'jo', name: 'x', base: 'lite' });
    const precious = join(w.dir, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'keep'), 'keep');
    symlinkSync(precious, join(w.options.nfsRoot, '66666666', 'home', 'link-out'));
    await fleet.remove('66666666');
    expect(readFileSync(join(precious, 'keep'), 'utf8')).toBe('keep');
    expect(existsSync(join(w.options.nfsRoot, '66666666'))).toBe(false);
  });

  it('needs root for every change', async () => {
    const w = await world({ isRoot: () => false });
    const fleet = await w.open();
    await expect(fleet.add({ serial: '77777777', owner: 'jo', name: 'x', base: 'lite' })).rejects.toMatchObject({ code: 'NOT_ROOT' });
    await expect(fleet.remove('77777777')).rejects.toMatchObject({ code: 'NOT_ROOT' });
    await expect(fleet.setup({ base: 'b', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } })).rejects.toMatchObject({
      code: 'NOT_ROOT',
    });
    await expect(fleet.reset()).rejects.toMatchObject({ code: 'NOT_ROOT' });
    expect(w.snapshot().state).toEqual([]);
  });

  it('removeBase refuses bases in use and deletes unused ones completely', async () => {
    const w = await world();
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.setup({ base: 'other', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.add({ serial: 'dddd0001', owner: 'jo', name: 'd1', base: 'other' });
    await fleet.add({ serial: 'dddd0002', owner: 'jo', name: 'd2', ownFilesystem: true });
    await expect(fleet.removeBase('other')).rejects.toMatchObject({ code: 'BASE_IN_USE', message: expect.stringContaining('dddd0001') });
    // The default base feeds <tftpRoot>/base, which the own-filesystem Pi boots from.
    await expect(fleet.removeBase('lite')).rejects.toMatchObject({ code: 'BASE_IN_USE', message: expect.stringContaining('dddd0002') });
    await fleet.remove('dddd0002');
    expect(await fleet.removeBase('lite')).toEqual({ name: 'lite', removed: true });
    expect(fleet.bases().map((b) => b.name)).toEqual(['other']);
    expect(w.snapshot()).toMatchObject({ bases: ['other'], stateBases: ['other'], tftp: ['dddd0001'] });
    expect(await fleet.removeBase('lite')).toEqual({ name: 'lite', removed: false });
  });

  it('own filesystem and a non-default base', async () => {
    const w = await world();
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.setup({ base: 'other', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    expect(fleet.bases().map((b) => [b.name, b.default])).toEqual([
      ['lite', true],
      ['other', false],
    ]);
    const own = await fleet.add({ serial: '88888888', owner: 'jo', name: 'own', ownFilesystem: true });
    expect(own.copyMode).toBe('none');
    expect(readdirSync(join(w.options.nfsRoot, '88888888'))).toEqual([]);
    expect(readdirSync(join(w.options.tftpRoot, '88888888')).sort()).toEqual(['cmdline.txt', 'name', 'owner']);
    // A Pi on a base that is not in <tftpRoot>/base/ carries that base's boot files itself.
    await fleet.add({ serial: '99999999', owner: 'jo', name: 'other', base: 'other', configTxt: '[all]\r\ngpu_mem=16' });
    const files = readdirSync(join(w.options.tftpRoot, '99999999'));
    expect(files).toContain('start4.elf');
    expect(readFileSync(join(w.options.tftpRoot, '99999999', 'config.txt'), 'utf8')).toBe('[all]\ngpu_mem=16\n');
    expect(readFileSync(join(w.options.nfsRoot, '99999999', 'etc/NetworkManager/conf.d/90-iot-tofu-nfsroot.conf'), 'utf8')).toContain(
      'unmanaged-devices=interface-name:eth0',
    );
  });
});

// Importing an image keeps its owners (lchown): root, like the real setup.
describe('setup is transactional', needs('root', ...IMAGE_TOOLS), () => {
  const SETUP_STEPS: FleetStep[] = ['setup:boot', 'setup:root', 'setup:commit', 'setup:registry'];
  it.each(SETUP_STEPS)('a failure at %s (image source) leaves no trace', async (failAt) => {
    const w = await world();
    const { image } = makePiImage(join(w.dir, 'img'));
    const first = await w.open();
    await first.setup({ base: 'old', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    const before = w.snapshot();
    const baseBefore = readdirSync(join(w.options.tftpRoot, 'base')).sort();
    const fleet = await w.open({
      beforeStep: (step) => {
        if (step === failAt) throw new Error(`injected ${step}`);
      },
    });
    await expect(fleet.setup({ base: 'new', source: { kind: 'image', image }, makeDefault: true })).rejects.toThrow(`injected ${failAt}`);
    expect(w.snapshot()).toEqual(before);
    expect(readdirSync(join(w.options.tftpRoot, 'base')).sort()).toEqual(baseBefore);
  });

  it('a failing mcopy or a corrupt image is a clear IMPORT_FAILED', async () => {
    const w = await world({}, { fail: (file) => file === 'mcopy' });
    const { image } = makePiImage(join(w.dir, 'img'));
    const fleet = await w.open();
    await expect(fleet.setup({ base: 'x', source: { kind: 'image', image } })).rejects.toMatchObject({ code: 'IMPORT_FAILED' });
    const junk = join(w.dir, 'junk.img');
    writeFileSync(junk, Buffer.alloc(4096));
    const fleet2 = await (await world()).open();
    await expect(fleet2.setup({ base: 'x', source: { kind: 'image', image: junk } })).rejects.toMatchObject({
      code: 'IMPORT_FAILED',
      message: expect.stringContaining('no usable MBR'),
    });
    await expect(fleet2.setup({ base: 'x', source: { kind: 'image', image: join(w.dir, 'missing.img') } })).rejects.toMatchObject({
      code: 'IMPORT_FAILED',
    });
    expect(w.snapshot().bases).toEqual([]);
  });

  it('refuses a root filesystem whose journal needs recovery', async () => {
    const w = await world();
    const { image } = makePiImage(join(w.dir, 'img'));
    // Set INCOMPAT_RECOVER (0x4) in the root partition's superblock.
    const fd = openSync(image, 'r+');
    const at = IMAGE_LAYOUT.rootStart * 512 + 1024 + 0x60;
    const word = Buffer.alloc(4);
    readSync(fd, word, 0, 4, at);
    word.writeUInt32LE(word.readUInt32LE(0) | 0x4, 0);
    writeSync(fd, word, 0, 4, at);
    closeSync(fd);
    const fleet = await w.open();
    await expect(fleet.setup({ base: 'dirty', source: { kind: 'image', image } })).rejects.toMatchObject({
      code: 'IMPORT_FAILED',
      message: expect.stringContaining('journal needs recovery'),
    });
    expect(w.snapshot().bases).toEqual([]);
  });

  it('imports the official boot/root tarball pair with metadata intact', needs('xz', ...SPECIAL_ENTRIES), async () => {
    const w = await world();
    const bootTar = join(w.dir, 'boot.tar.xz');
    const rootTar = join(w.dir, 'root.tar.xz');
    execFileSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-cJf', bootTar, '-C', w.src.boot, '.']);
    execFileSync('tar', ['--numeric-owner', '--xattrs', '--xattrs-include=*', '-cJf', rootTar, '-C', w.src.root, '.']);
    const fleet = await w.open();
    await fleet.setup({ base: 'tar', source: { kind: 'tarballs', boot: bootTar, root: rootTar } });
    expect(treeManifest(join(w.options.nfsRoot, 'bases', 'tar'))).toEqual(treeManifest(w.src.root));
    await expect(fleet.setup({ base: 'tar', source: { kind: 'tarballs', boot: bootTar, root: rootTar } })).rejects.toMatchObject({
      code: 'BASE_EXISTS',
    });
  });
});

describe('registry shared between processes', needs(...VERB_NEEDS), () => {
  it('parallel adds from two Fleet instances both land; the same serial twice does not', async () => {
    const w = await world();
    const a = await w.open();
    await a.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    const b = await w.open();
    const results = await Promise.allSettled([
      a.add({ serial: 'aaaa0001', owner: 'jo', name: 'a1', base: 'lite' }),
      b.add({ serial: 'aaaa0002', owner: 'jo', name: 'a2', base: 'lite' }),
      a.add({ serial: 'aaaa0003', owner: 'jo', name: 'a3', base: 'lite' }),
      b.add({ serial: 'aaaa0003', owner: 'jo', name: 'a3', base: 'lite' }),
    ]);
    expect(results.slice(0, 2).map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const dup = results.slice(2);
    expect(dup.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect((dup.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason).toMatchObject({
      code: expect.stringMatching(/^(PI_BUSY|PI_EXISTS)$/),
    });
    const fresh = await w.open();
    expect(fresh.list().map((p) => p.serial)).toEqual(['aaaa0001', 'aaaa0002', 'aaaa0003']);
    const exports = readFileSync(w.options.exportsFile!, 'utf8');
    for (const s of ['aaaa0001', 'aaaa0002', 'aaaa0003']) expect(exports).toContain(`${w.options.nfsRoot}/${s} `);
  });

  it('watch() notices a change made by another process without a restart', async () => {
    const w = await world();
    const daemon = await w.open();
    const cli = await w.open();
    await cli.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    const changes: unknown[] = [];
    const seen = new Promise<void>((resolve) => {
      daemon.watch((change) => {
        changes.push(change);
        if (change.added.includes('bbbb0001')) resolve();
      });
    });
    expect(daemon.isRegistered({ serial: 'bbbb0001' })).toBe(false);
    await cli.add({ serial: 'bbbb0001', owner: 'jo', name: 'b1', base: 'lite', mac: 'dc:a6:32:00:00:01' });
    await seen;
    expect(daemon.isRegistered({ serial: 'bbbb0001' })).toBe(true);
    expect(daemon.isRegistered({ mac: 'DC-A6-32-00-00-01' })).toBe(true);
    await cli.remove('bbbb0001');
    await expect.poll(() => daemon.isRegistered({ serial: 'bbbb0001' }), { timeout: 5000 }).toBe(false);
  });
});

describe('learned facts and timelines', needs(...VERB_NEEDS), () => {
  it('records what traffic taught us, debounced to seen.json, and keeps the last N timeline events', async () => {
    const w = await world({ seenFlushMs: 20, timelineLimit: 3 });
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.src.boot, root: w.src.root } });
    await fleet.add({ serial: 'cccc0001', owner: 'jo', name: 'c1', base: 'lite', mac: 'dc:a6:32:00:00:02' });
    // A DHCP packet with only the MAC: the serial comes from the configured MAC.
    fleet.recordSeen({ mac: 'dc:a6:32:00:00:02', ip: '10.77.0.60', model: 'pi4', at: 1_800_000_000_000 });
    fleet.recordSeen({ serial: '00000000ddd00001', mac: 'd8:3a:dd:99:99:99', at: 1_800_000_000_500 });
    fleet.recordSeen({ mac: 'not a mac', at: 0 });
    fleet.recordSeen({ mac: 'd8:3a:dd:99:99:98', at: 'not a time' });
    fleet.recordTimeline('not a serial', { type: 'x' });
    expect(fleet.get('CCCC0001')).toMatchObject({
      mac: 'dc:a6:32:00:00:02',
      macSource: 'learned',
      macDerived: false,
      ip: '10.77.0.60',
      model: 'pi4',
      lastSeen: new Date(1_800_000_000_000).toISOString(),
    });
    expect(fleet.list({ includeDiscovered: true }).discovered).toEqual(fleet.discovered());
    expect(fleet.list({ includeDiscovered: true }).pis).toEqual(fleet.list());
    expect(fleet.discovered().find((d) => d.mac === 'd8:3a:dd:99:99:98')?.lastSeen).toMatch(/^\d{4}-/);
    expect(fleet.discovered().filter((d) => d.serial !== null)).toEqual([
      {
        serial: 'ddd00001',
        mac: 'd8:3a:dd:99:99:99',
        ip: null,
        model: null,
        firstSeen: new Date(1_800_000_000_500).toISOString(),
        lastSeen: new Date(1_800_000_000_500).toISOString(),
      },
    ]);
    await expect.poll(() => existsSync(join(w.options.stateDir, 'seen.json'))).toBe(true);
    const reopened = await w.open();
    expect(reopened.get('cccc0001').ip).toBe('10.77.0.60');
    for (let i = 0; i < 5; i++) fleet.recordTimeline('cccc0001', { type: 'file-served', file: `f${i}`, at: 1_800_000_000_000 + i });
    expect(fleet.timeline('cccc0001').map((e) => e.file)).toEqual(['f2', 'f3', 'f4']);
    expect(fleet.timeline('cccc0001')[0]).toMatchObject({ type: 'file-served', at: new Date(1_800_000_000_002).toISOString() });
    expect(() => fleet.get('eeee0001')).toThrow(expect.objectContaining({ code: 'PI_NOT_FOUND' }));
  });

  it('adopts an upstream pxetools installation', async () => {
    const w = await world();
    mkdirSync(join(w.options.tftpRoot, '9f55bbfd'), { recursive: true });
    writeFileSync(join(w.options.tftpRoot, '9f55bbfd', 'owner'), 'jo\n');
    writeFileSync(join(w.options.tftpRoot, '9f55bbfd', 'name'), 'rpi4\n');
    mkdirSync(join(w.options.tftpRoot, 'lost+found'));
    mkdirSync(join(w.options.nfsRoot, '9f55bbfd'), { recursive: true });
    const upstream = join(w.dir, 'etc-exports');
    writeFileSync(upstream, `${w.options.nfsRoot}/9f55bbfd *(rw,sync,no_subtree_check,no_root_squash)\n/srv other(ro)\n`);
    const fleet = await w.open();
    const result = await fleet.adopt({ upstreamExports: upstream });
    expect(result).toEqual({
      adopted: ['9f55bbfd'],
      staleUpstreamExportLines: [`${w.options.nfsRoot}/9f55bbfd *(rw,sync,no_subtree_check,no_root_squash)`],
    });
    expect(fleet.list().map((p) => [p.serial, p.owner, p.name, p.mac])).toEqual([['9f55bbfd', 'jo', 'rpi4', 'b8:27:eb:55:bb:fd']]);
    expect(readFileSync(upstream, 'utf8')).toContain('/srv other(ro)');
    expect((await fleet.adopt({ upstreamExports: upstream })).adopted).toEqual([]);
  });
});

describe('watch on a fresh state dir', () => {
  it('works before anything was ever written', async () => {
    const w = await world();
    const daemon = await w.open();
    const got = new Promise<string[]>((resolve) => daemon.watch((c) => resolve(c.added)));
    const cli = await w.open();
    await cli.add({ serial: 'eeee0001', owner: 'jo', name: 'e1', ownFilesystem: true });
    expect(await got).toEqual(['eeee0001']);
  });
});

describe('a damaged registry', () => {
  it('is reported with REGISTRY_CORRUPT and never overwritten', async () => {
    const w = await world();
    mkdirSync(w.options.stateDir, { recursive: true });
    writeFileSync(join(w.options.stateDir, 'registry.json'), '{"version":1,"pis":{"9f55');
    await expect(Fleet.open(w.options)).rejects.toMatchObject({
      code: 'REGISTRY_CORRUPT',
      message: expect.stringContaining('registry.json'),
    });
    expect(readFileSync(join(w.options.stateDir, 'registry.json'), 'utf8')).toBe('{"version":1,"pis":{"9f55');
  });
});
