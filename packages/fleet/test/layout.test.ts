import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Fleet, type FleetOptions } from '../src/index.js';
import { migrateCmdline, migrateFstab, layout1Cmdline } from '../src/boot-folder.js';
import { needs } from '@iot-tofu/test-kit';
import { BASE_BOOT_FILES, VERB_NEEDS, recordingRunner, tempDir, tempRoots } from './helpers.js';

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A Pi OS-like base as two plain folders (no owners or xattrs: this test is about boot folders). */
function plainBase(dir: string): { boot: string; root: string } {
  const boot = join(dir, 'boot');
  const root = join(dir, 'root');
  mkdirSync(join(boot, 'overlays'), { recursive: true });
  for (const f of [...BASE_BOOT_FILES, 'initramfs8']) writeFileSync(join(boot, f), `${f} of the base\n`);
  writeFileSync(join(boot, 'overlays', 'vc4-kms-v3d-pi4.dtbo'), 'overlay');
  writeFileSync(join(boot, 'config.txt'), 'auto_initramfs=1\ndtoverlay=vc4-kms-v3d\narm_64bit=1\n');
  writeFileSync(
    join(boot, 'cmdline.txt'),
    'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot cfg80211.ieee80211_regdom=DE\n',
  );
  for (const d of ['etc', 'boot/firmware']) mkdirSync(join(root, d), { recursive: true });
  writeFileSync(join(root, 'etc/hostname'), 'raspberrypi\n');
  return { boot, root };
}

async function world() {
  const dir = tempDir('layout');
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const { runner } = recordingRunner({ fakeExportfs: true });
  const options: FleetOptions = {
    ...tempRoots(dir),
    runner,
    isRoot: () => true,
  };
  const open = async (extra: Partial<FleetOptions> = {}) => {
    const fleet = await Fleet.open({ ...options, ...extra });
    cleanups.push(() => fleet.close());
    return fleet;
  };
  return { dir, options, open, base: plainBase(join(dir, 'src')) };
}

describe("a Pi's /boot/firmware is its whole boot folder (layout 2)", needs(...VERB_NEEDS), () => {
  it('add copies every base boot file; what the Pi writes there stays its own', async () => {
    const w = await world();
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    const added = await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi4', base: 'lite' });
    const tftp = join(w.options.tftpRoot, '9f55bbfd');
    expect(readdirSync(tftp).sort()).toEqual([...readdirSync(w.base.boot), 'name', 'owner'].sort());
    expect(added.cmdline).toBe(
      `console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=10.77.0.2:${w.options.nfsRoot}/9f55bbfd,vers=3,tcp rw ip=dhcp rootwait quiet cfg80211.ieee80211_regdom=DE cgroup_enable=cpuset cgroup_enable=memory`,
    );
    expect(readFileSync(join(tftp, 'cmdline.txt'), 'utf8')).toBe(`${added.cmdline}\n`);
    expect(readFileSync(join(w.options.nfsRoot, '9f55bbfd', 'etc/fstab'), 'utf8')).toContain(
      `10.77.0.2:${tftp} /boot/firmware nfs defaults,_netdev,vers=3,proto=tcp,nolock 0 0\n`,
    );
    // A kernel upgrade on the Pi rewrites its copy; the base and other Pis keep theirs.
    writeFileSync(join(tftp, 'kernel8.img'), 'upgraded on the Pi\n');
    await fleet.add({ serial: '0a1b2c3d', owner: 'jo', name: 'other', base: 'lite' });
    expect(readFileSync(join(w.options.tftpRoot, '0a1b2c3d', 'kernel8.img'), 'utf8')).toBe('kernel8.img of the base\n');
    expect(readFileSync(join(w.options.tftpRoot, 'base', 'kernel8.img'), 'utf8')).toBe('kernel8.img of the base\n');
  });

  it('the next root run brings a layout-1 fleet up to date, keeping what the Pi wrote', async () => {
    const w = await world();
    const first = await w.open();
    await first.setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    for (const serial of ['11111111', '22222222']) await first.add({ serial, owner: 'jo', name: `pi${serial[0]}`, base: 'lite' });
    await first.close();
    // Make it look like a fleet of the first release: only cmdline/owner/name, NFSv4.1 options.
    const registryFile = join(w.options.stateDir, 'registry.json');
    const registry = JSON.parse(readFileSync(registryFile, 'utf8')) as Record<string, unknown>;
    delete registry.layout;
    writeFileSync(registryFile, JSON.stringify(registry));
    const edited = `${layout1Cmdline('10.77.0.2', `${w.options.nfsRoot}/22222222`).trimEnd()} dwc_otg.fiq_fix=1\n`;
    for (const serial of ['11111111', '22222222']) {
      const tftp = join(w.options.tftpRoot, serial);
      for (const name of readdirSync(tftp))
        if (!['cmdline.txt', 'owner', 'name'].includes(name)) rmSync(join(tftp, name), { recursive: true });
      writeFileSync(
        join(tftp, 'cmdline.txt'),
        serial === '11111111' ? layout1Cmdline('10.77.0.2', `${w.options.nfsRoot}/${serial}`) : edited,
      );
      writeFileSync(
        join(w.options.nfsRoot, serial, 'etc/fstab'),
        `proc /proc proc defaults 0 0\n10.77.0.2:${tftp} /boot/firmware nfs defaults,_netdev,vers=4.1,proto=tcp 0 0\n`,
      );
    }
    writeFileSync(join(w.options.tftpRoot, '22222222', 'config.txt'), 'gpu_mem=16\n'); // its own edit

    // Not root: nothing is touched (a plain `pxetools --list`).
    await w.open({ isRoot: () => false });
    expect(readdirSync(join(w.options.tftpRoot, '11111111')).sort()).toEqual(['cmdline.txt', 'name', 'owner']);

    await w.open();
    const one = join(w.options.tftpRoot, '11111111');
    const two = join(w.options.tftpRoot, '22222222');
    expect(readdirSync(one).sort()).toEqual([...readdirSync(w.base.boot), 'name', 'owner'].sort());
    expect(readFileSync(join(one, 'cmdline.txt'), 'utf8')).toContain(
      `nfsroot=10.77.0.2:${w.options.nfsRoot}/11111111,vers=3,tcp rw ip=dhcp rootwait quiet cfg80211.ieee80211_regdom=DE`,
    );
    // The operator's edits survive; only the NFS options change.
    expect(readFileSync(join(two, 'cmdline.txt'), 'utf8')).toBe(edited.replace(',vers=4.1,proto=tcp', ',vers=3,tcp'));
    expect(readFileSync(join(two, 'config.txt'), 'utf8')).toBe('gpu_mem=16\n');
    expect(readFileSync(join(two, 'start4.elf'), 'utf8')).toBe('start4.elf of the base\n');
    expect(readFileSync(join(w.options.nfsRoot, '11111111', 'etc/fstab'), 'utf8')).toBe(
      `proc /proc proc defaults 0 0\n10.77.0.2:${one} /boot/firmware nfs defaults,_netdev,vers=3,proto=tcp,nolock 0 0\n`,
    );
    expect(JSON.parse(readFileSync(registryFile, 'utf8'))).toMatchObject({ layout: 2 });
  });
});

describe('layout-1 migration rules (pure)', () => {
  it('rebuilds an untouched cmdline, patches an edited one, leaves a current one', () => {
    expect(migrateCmdline('A', 'A', 'B')).toBe('B');
    expect(migrateCmdline('x nfsroot=1.2.3.4:/nfs/p,vers=4.1,proto=tcp y', 'A', 'B')).toBe('x nfsroot=1.2.3.4:/nfs/p,vers=3,tcp y');
    expect(migrateCmdline('x nfsroot=1.2.3.4:/nfs/p,vers=3,tcp y', 'A', 'B')).toBeNull();
  });
  it('rewrites only the boot mount line of fstab', () => {
    const fstab =
      'proc /proc proc defaults 0 0\n1.2.3.4:/tftpboot/p /boot nfs defaults,_netdev,vers=4.1,proto=tcp 0 0\n/dev/sda1 /data ext4 defaults 0 2\n';
    expect(migrateFstab(fstab, '/tftpboot/p')).toBe(
      fstab.replace('defaults,_netdev,vers=4.1,proto=tcp', 'defaults,_netdev,vers=3,proto=tcp,nolock'),
    );
    expect(migrateFstab(migrateFstab(fstab, '/tftpboot/p')!, '/tftpboot/p')).toBeNull();
    expect(migrateFstab(fstab, '/tftpboot/other')).toBeNull();
  });
});

describe('base names that are prototype keys are plain names (issue 19 item 5)', needs(...VERB_NEEDS), () => {
  it.each(['constructor', 'toString', 'hasOwnProperty', 'valueOf', '__proto__'])('%s', async (name) => {
    const w = await world();
    const fleet = await w.open();
    await expect(fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'pi', base: name })).rejects.toMatchObject({ code: 'BASE_NOT_FOUND' });
    expect(await fleet.removeBase(name)).toEqual({ name, removed: false });
    if (name === '__proto__') return; // not a valid base name (it starts with '_'), refused by setup
    await fleet.setup({ base: name, source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    expect(fleet.bases().map((b) => b.name)).toEqual([name]);
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'pi', base: name });
    expect(fleet.list()[0]).toMatchObject({ base: name });
  });
});

describe('static addresses for full-DHCP mode (issue 12)', needs(...VERB_NEEDS), () => {
  it('add --ip stores it, list shows it, the DHCP hooks find it by serial or MAC; one address, one Pi', async () => {
    const w = await world();
    const fleet = await w.open();
    await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: w.base.boot, root: w.base.root } });
    await expect(fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'pi', base: 'lite', ip: '10.77.0.300' })).rejects.toMatchObject({
      code: 'INVALID_IP',
    });
    const added = await fleet.add({
      serial: '9f55bbfd',
      owner: 'jo',
      name: 'pi',
      base: 'lite',
      mac: 'dc:a6:32:01:36:c2',
      ip: '10.77.0.50',
    });
    expect(added.pi).toMatchObject({ staticIp: '10.77.0.50', ip: '10.77.0.50' });
    expect(fleet.list()[0]).toMatchObject({ serial: '9f55bbfd', staticIp: '10.77.0.50' });
    expect(fleet.staticAddressFor('aa:bb:cc:dd:ee:ff', '9f55bbfd')).toBe('10.77.0.50');
    expect(fleet.staticAddressFor('dc:a6:32:01:36:c2')).toBe('10.77.0.50');
    expect(fleet.staticAddressFor('aa:bb:cc:dd:ee:ff')).toBeUndefined();
    expect(fleet.isStaticAddress('10.77.0.50')).toBe(true);
    expect(fleet.isStaticAddress('10.77.0.51')).toBe(false);
    await expect(fleet.add({ serial: '0a1b2c3d', owner: 'jo', name: 'other', base: 'lite', ip: '10.77.0.50' })).rejects.toMatchObject({
      code: 'IP_TAKEN',
      message: expect.stringContaining('9f55bbfd'),
    });
    // The refused add left nothing behind.
    expect(fleet.list().map((p) => p.serial)).toEqual(['9f55bbfd']);
    expect(readdirSync(w.options.tftpRoot).filter((n) => n === '0a1b2c3d')).toEqual([]);
    await fleet.remove('9f55bbfd');
    expect(fleet.isStaticAddress('10.77.0.50')).toBe(false);
  });
});
