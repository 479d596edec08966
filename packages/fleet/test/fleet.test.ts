import { lstatSync, readFileSync, readlinkSync, existsSync, readdirSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Fleet, MASKED_UNITS, chooseSetupSource, parseNeighbours, planRootfs, type FleetOptions } from '../src/index.js';
import { CommandFailedError } from '@iot-tofu/host-io';
import { needs } from '@iot-tofu/test-kit';
import { SPECIAL_ENTRIES, anyUser, makeBaseTrees, recordingRunner, tempDir, tempRoots } from './helpers.js';

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function makeFleet(extra: Partial<FleetOptions> = {}) {
  const dir = tempDir('fleet');
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const { runner, calls } = recordingRunner({ fakeExportfs: true });
  const options: FleetOptions = {
    ...tempRoots(dir),
    runner,
    ...anyUser,
    ...extra,
  };
  const fleet = await Fleet.open(options);
  cleanups.push(() => fleet.close());
  return { dir, fleet, calls, options };
}

describe('Fleet with a directory base', needs(...SPECIAL_ENTRIES), () => {
  it('sets up, adds, lists and removes a Pi', async () => {
    const { dir, fleet, options } = await makeFleet();
    const src = makeBaseTrees(join(dir, 'src'));
    const setup = await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: src.boot, root: src.root } });
    expect(setup.base).toMatchObject({ name: 'lite', default: true, layout: 'legacy' });
    expect(readFileSync(join(options.tftpRoot, 'base', 'start4.elf'), 'utf8')).toBe('start4.elf contents\n');
    expect(existsSync(join(options.tftpRoot, 'bootcode.bin'))).toBe(true);

    const added = await fleet.add({ serial: '0A1B2C3D', owner: 'jo', name: 'rpi4', base: 'lite' });
    expect(added.pi).toMatchObject({
      serial: '0a1b2c3d',
      owner: 'jo',
      name: 'rpi4',
      mac: 'b8:27:eb:1b:2c:3d',
      macDerived: true,
      ip: null,
      base: 'lite',
    });
    const tftp = join(options.tftpRoot, '0a1b2c3d');
    // The Pi's /boot/firmware holds every file it boots from (the base's) plus its own three.
    expect(readdirSync(tftp).sort()).toEqual([...readdirSync(src.boot), 'name', 'owner'].sort());
    expect(readFileSync(join(tftp, 'start4.elf'), 'utf8')).toBe('start4.elf contents\n');
    expect(readFileSync(join(tftp, 'config.txt'), 'utf8')).toBe('[all]\narm_64bit=1\n');
    expect(readFileSync(join(tftp, 'overlays', 'overlay_map.dtb'), 'utf8')).toBe('map');
    // The base's line with the SD-card arguments replaced by the NFS root (vers=3,tcp: klibc nfsmount).
    expect(readFileSync(join(tftp, 'cmdline.txt'), 'utf8')).toBe(
      `console=serial0,115200 root=/dev/nfs nfsroot=10.77.0.2:${options.nfsRoot}/0a1b2c3d,vers=3,tcp rw ip=dhcp rootwait cgroup_enable=cpuset cgroup_enable=memory\n`,
    );
    expect(added.cmdlineDropped).toEqual(['rootfstype=ext4', 'fsck.repair=yes']);
    const root = join(options.nfsRoot, '0a1b2c3d');
    expect(readFileSync(join(root, 'etc/hostname'), 'utf8')).toBe('rpi4\n');
    expect(readFileSync(join(root, 'etc/fstab'), 'utf8')).toBe(
      `proc /proc proc defaults 0 0\n10.77.0.2:${tftp} /boot nfs defaults,_netdev,vers=3,proto=tcp,nolock 0 0\n`,
    );
    expect(existsSync(join(root, 'etc/init.d/dphys-swapfile'))).toBe(false);
    expect(existsSync(join(root, 'etc/init.d/keepme'))).toBe(true);
    expect(readlinkSync(join(root, 'etc/systemd/system/dphys-swapfile.service'))).toBe('/dev/null');
    expect(existsSync(join(root, 'etc/ssh/ssh_host_ed25519_key'))).toBe(false);
    expect(existsSync(join(root, 'etc/ssh/sshd_config'))).toBe(true);
    expect(readlinkSync(join(root, 'etc/systemd/system/multi-user.target.wants/ssh.service'))).toBe('/usr/lib/systemd/system/ssh.service');
    expect(readFileSync(join(root, 'etc/systemd/system/iot-tofu-ssh-host-keys.service'), 'utf8')).toContain(
      'ExecStart=/usr/bin/ssh-keygen -A',
    );
    // metadata survives the copy
    expect(lstatSync(join(root, 'usr/bin/sudo')).mode & 0o7777).toBe(0o4755);
    expect(lstatSync(join(root, 'var/empty'))).toMatchObject({ uid: 4242, gid: 4343 });
    expect(lstatSync(join(root, 'usr/bin/perl')).ino).toBe(lstatSync(join(root, 'usr/bin/perl5.36')).ino);
    expect(lstatSync(join(root, 'dev/null')).isCharacterDevice()).toBe(true);
    expect(readlinkSync(join(root, 'etc/absolute-link'))).toBe('/etc/hostname');
    expect(
      execFileSync('getfattr', ['--absolute-names', '--only-values', '-n', 'user.tofu', join(root, 'usr/bin/ping')], { encoding: 'utf8' }),
    ).toBe('cap_net_raw');

    const exportsText = readFileSync(options.exportsFile!, 'utf8');
    expect(exportsText).toContain(`${root} 10.77.0.0/24(rw,sync,no_subtree_check,no_root_squash)\n`);
    expect(exportsText).toContain(`${tftp} 10.77.0.0/24(rw,sync,no_subtree_check,no_root_squash)\n`);

    expect(fleet.list().map((p) => p.serial)).toEqual(['0a1b2c3d']);
    expect(fleet.isRegistered({ serial: '0a1b2c3d' })).toBe(true);
    expect(fleet.isRegistered({ mac: 'b8:27:eb:1b:2c:3d' })).toBe(true);

    await expect(fleet.add({ serial: '0a1b2c3d', owner: 'jo', name: 'x', base: 'lite' })).rejects.toMatchObject({ code: 'PI_EXISTS' });

    expect(await fleet.remove('0a1b2c3d')).toEqual({ serial: '0a1b2c3d', removed: true });
    expect(existsSync(root)).toBe(false);
    expect(existsSync(tftp)).toBe(false);
    expect(readFileSync(options.exportsFile!, 'utf8')).not.toContain('0a1b2c3d');
    expect(await fleet.remove('0a1b2c3d')).toEqual({ serial: '0a1b2c3d', removed: false });
    expect(fleet.list()).toEqual([]);
  });
});

describe('planRootfs (pure)', () => {
  it.each([
    { layout: 'bookworm' as const, networkManager: true, sshUnit: '/usr/lib/systemd/system/ssh.service' },
    { layout: 'legacy' as const, networkManager: false, sshUnit: null },
  ])('$layout, NetworkManager $networkManager', ({ layout, networkManager, sshUnit }) => {
    const actions = planRootfs({
      name: 'rpi4',
      serverIp: '10.0.0.1',
      bootExportPath: '/tftpboot/9f55bbfd',
      layout,
      networkManager,
      sshUnit,
    });
    const paths = actions.map((a) => ('path' in a ? a.path : a.dir));
    const fstab = actions.find((a) => a.kind === 'write' && a.path === 'etc/fstab');
    expect(fstab && 'content' in fstab ? fstab.content : '').toContain(layout === 'bookworm' ? ' /boot/firmware nfs ' : ' /boot nfs ');
    expect(paths.includes('etc/NetworkManager/conf.d/90-iot-tofu-nfsroot.conf')).toBe(networkManager);
    expect(paths.includes('etc/systemd/system/multi-user.target.wants/ssh.service')).toBe(sshUnit !== null);
    for (const unit of MASKED_UNITS)
      expect(actions).toContainEqual({ kind: 'symlink', path: `etc/systemd/system/${unit}`, target: '/dev/null' });
    expect(() => planRootfs({ name: 'bad name', serverIp: '10.0.0.1', bootExportPath: '/x', layout, networkManager })).toThrow(
      expect.objectContaining({ code: 'INVALID_NAME' }),
    );
  });
});

describe('neighbour table', () => {
  it('parseNeighbours keeps usable IPv4 entries', () => {
    const json = JSON.stringify([
      { dst: '10.77.0.57', dev: 'eth0', lladdr: 'B8:27:EB:55:BB:FD', state: ['REACHABLE'] },
      { dst: '10.77.0.58', dev: 'eth0', lladdr: 'dc:a6:32:00:00:01', state: ['STALE'] },
      { dst: '10.77.0.59', dev: 'eth0', state: ['FAILED'] },
      { dst: '10.77.0.60', dev: 'eth0', lladdr: 'dc:a6:32:00:00:02', state: ['INCOMPLETE'] },
      { dst: 'fd00::1', dev: 'eth0', lladdr: 'dc:a6:32:00:00:03', state: ['STALE'] },
    ]);
    expect(parseNeighbours(json)).toEqual([
      { ip: '10.77.0.57', mac: 'b8:27:eb:55:bb:fd' },
      { ip: '10.77.0.58', mac: 'dc:a6:32:00:00:01' },
    ]);
    expect(parseNeighbours('not json')).toEqual([]);
  });

  it('fills in the IP of a registered Pi from ip neigh, without persisting when asked', async () => {
    const neigh = JSON.stringify([{ dst: '10.77.0.57', dev: 'eth0', lladdr: 'b8:27:eb:55:bb:fd', state: ['REACHABLE'] }]);
    const { runner: real } = recordingRunner({ fakeExportfs: true });
    const { dir, fleet, options } = await makeFleet({
      runner: async (file, args, o) => (file === 'ip' ? { stdout: neigh, stderr: '' } : real(file, args, o)),
    });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', ownFilesystem: true });
    expect(await fleet.learnFromNeighbours({ persist: false })).toBe(1);
    expect(fleet.get('9f55bbfd')).toMatchObject({ ip: '10.77.0.57', mac: 'b8:27:eb:55:bb:fd', macSource: 'learned' });
    await fleet.close();
    expect(existsSync(join(options.stateDir, 'seen.json'))).toBe(false);
    expect(dir).toBeTruthy();
  });
});

describe('exports owned by others', () => {
  it('a broken foreign exports file does not fail an add; health reports it until exportfs runs clean', async () => {
    let foreign = true;
    const { fleet, options } = await makeFleet({
      runner: async (file, args) => {
        if (file === 'exportfs' && args[0] === '-ra' && foreign) {
          throw new CommandFailedError(file, args, 1, 'exportfs: /etc/exports.d/someone-else.exports:2: unknown keyword "bogusopt"\n\n');
        }
        return { stdout: '', stderr: '' };
      },
      clock: () => new Date(9000),
    });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', ownFilesystem: true });
    expect(readFileSync(options.exportsFile!, 'utf8')).toContain(join(options.nfsRoot, '9f55bbfd'));
    expect((await fleet.health()).foreignExportsIssues).toEqual({
      at: new Date(9000).toISOString(),
      messages: ['/etc/exports.d/someone-else.exports:2: unknown keyword "bogusopt"'],
    });
    foreign = false;
    await fleet.remove('9f55bbfd');
    expect((await fleet.health()).foreignExportsIssues).toBeUndefined();
  });
});

describe('memory for unregistered Pis is bounded (spoofed DISCOVERs)', () => {
  const hex8 = (i: number) => (0x10000000 + i).toString(16);
  const macOf = (i: number) => `dc:a6:32:${hex8(i).slice(2, 4)}:${hex8(i).slice(4, 6)}:${hex8(i).slice(6, 8)}`;

  it('keeps timelines of registered Pis and only the most recent unregistered ones', async () => {
    const { fleet } = await makeFleet({ unregisteredLimit: 10 });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', ownFilesystem: true });
    fleet.recordTimeline('9f55bbfd', { type: 'pi-seen', at: 1 });
    fleet.recordTimeline('0badf00d', { type: 'pi-seen', at: 1 });
    for (let i = 0; i < 1000; i++) fleet.recordTimeline(hex8(i), { type: 'pi-seen', at: 2 + i });
    expect(fleet.timeline('9f55bbfd')).toHaveLength(1);
    expect(fleet.timeline('0badf00d')).toEqual([]);
    expect(fleet.timeline(hex8(989))).toEqual([]);
    for (let i = 990; i < 1000; i++) expect(fleet.timeline(hex8(i))).toHaveLength(1);
    // Recording again makes an unregistered serial recent; registering one takes it out of the pool.
    fleet.recordTimeline(hex8(990), { type: 'offer-sent', at: 3000 });
    await fleet.add({ serial: hex8(991), owner: 'jo', name: 'later', ownFilesystem: true });
    for (let i = 0; i < 9; i++) fleet.recordTimeline(hex8(2000 + i), { type: 'pi-seen', at: 4000 + i });
    expect(fleet.timeline(hex8(990))).toHaveLength(2);
    expect(fleet.timeline(hex8(991))).toHaveLength(1);
    expect(fleet.timeline(hex8(992))).toEqual([]);
  });

  it('seen.json written while an earlier write is under way ends with the newest facts (no lost update)', async () => {
    // A 1 ms debounce keeps timer flushes in flight while facts arrive; close() flushes last.
    const { fleet, options } = await makeFleet({ unregisteredLimit: 100, seenFlushMs: 1 });
    for (let i = 0; i < 60; i++) {
      fleet.recordSeen({ mac: macOf(7000 + i), at: 7000 + i });
      await new Promise((resolve) => setTimeout(resolve, i % 3));
    }
    await fleet.close();
    const file = JSON.parse(readFileSync(join(options.stateDir, 'seen.json'), 'utf8')) as { byMac: Record<string, unknown> };
    expect(Object.keys(file.byMac)).toHaveLength(60);
  });

  it('keeps learned facts of registered Pis and a bounded list of discovered ones, also across a restart', async () => {
    const { fleet, options } = await makeFleet({ unregisteredLimit: 10 });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', mac: 'dc:a6:32:99:99:99', ownFilesystem: true });
    fleet.recordSeen({ serial: '9f55bbfd', mac: 'dc:a6:32:99:99:99', ip: '10.77.0.57', at: 1 });
    for (let i = 0; i < 1000; i++) fleet.recordSeen({ serial: hex8(i), mac: macOf(i), at: 2 + i });
    for (let i = 0; i < 50; i++) fleet.recordSeen({ mac: macOf(5000 + i), at: 5000 + i });
    const discovered = fleet.discovered();
    expect(discovered).toHaveLength(10);
    expect(discovered.map((d) => d.mac).sort()).toEqual(Array.from({ length: 10 }, (_, i) => macOf(5040 + i)).sort());
    expect(fleet.get('9f55bbfd')).toMatchObject({ ip: '10.77.0.57', macSource: 'learned' });
    await fleet.close();
    // A seen.json written with a larger limit is trimmed on load.
    const reopened = await Fleet.open({ ...options, unregisteredLimit: 3 });
    expect(reopened.discovered().map((d) => d.mac)).toEqual([macOf(5047), macOf(5048), macOf(5049)].sort());
    expect(reopened.get('9f55bbfd')).toMatchObject({ ip: '10.77.0.57' });
    await reopened.close();
  });
});

describe('chooseSetupSource (pure)', () => {
  it.each([
    [{ image: '/a.img' }, { source: { kind: 'image', image: '/a.img' } }],
    [{ bootTarball: '/b.tar', rootTarball: '/r.tar' }, { source: { kind: 'tarballs', boot: '/b.tar', root: '/r.tar' } }],
    [{ bootDir: '/b', rootfsDir: '/r' }, { source: { kind: 'dirs', boot: '/b', root: '/r' } }],
    [{}, { problem: 'not-exactly-one' }],
    [{ image: '/a.img', bootDir: '/b', rootfsDir: '/r' }, { problem: 'not-exactly-one' }],
    [{ image: '/a.img', rootTarball: '/r.tar' }, { problem: 'not-exactly-one' }],
    [{ bootTarball: '/b.tar' }, { problem: 'tarball-pair' }],
    [{ rootTarball: '/r.tar' }, { problem: 'tarball-pair' }],
    [{ rootfsDir: '/r' }, { problem: 'dir-pair' }],
    [{ image: '' }, { problem: 'not-exactly-one' }],
  ])('%j → %j', (fields, expected) => {
    expect(chooseSetupSource(fields)).toEqual(expected);
  });
});
