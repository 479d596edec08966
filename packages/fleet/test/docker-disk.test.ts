import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, lstatSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DOCKER_DISK_FSCK_UNIT, DOCKER_DISK_MOUNT_UNIT, CONTAINERD_MOUNT_UNIT } from '@iot-tofu/rpi';
import { Fleet, checkSshKeys, parseDiskSize, type FleetOptions, type FleetStep } from '../src/index.js';
import { needs, which } from '@iot-tofu/test-kit';
import { makeBaseTrees, recordingRunner, tempDir, tempRoots } from './helpers.js';

/**
 * Issue 11: a docker disk per Pi (sparse ext4 image in its NFS root, units that mount it on the Pi),
 * first-login files, resize, and that a failure after the image was made leaves no half-made Pi.
 * Real e2fsprogs and systemd-analyze; no loop device, no mount.
 */
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const SERIAL = '0a1b2c3d';
const MiB = 1024 * 1024;
const HASH = '$6$c70VpvPsVNCG0YR5$l5vWWLsLko9Kj65gcQ8qvMkuOoRkEagI90qi3F/Y7rm8eNYZHW8CY6BOIKwMH7a3YYzZYL90zf304cAHLFaZE0';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk5d0N5j1b2bq5kX7oVb8tS0W5y3mQ3lJ0mYc8l8v7W jo@laptop';

async function world(extra: Partial<FleetOptions> = {}, fail?: (file: string, args: readonly string[]) => boolean) {
  const dir = tempDir('docker');
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const src = makeBaseTrees(join(dir, 'src'), { bookworm: true });
  // What a Pi OS root has for first login: root, and the uid-1000 user userconfig renames.
  writeFileSync(join(src.root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n');
  // The fsck unit runs the base's e2fsck; systemd-analyze verify checks it exists in the root.
  mkdirSync(join(src.root, 'root'), { mode: 0o700 });
  mkdirSync(join(src.root, 'usr/sbin'), { recursive: true });
  copyFileSync(which('e2fsck')!, join(src.root, 'usr/sbin/e2fsck'));
  const { runner, calls } = recordingRunner({ fakeExportfs: true, ...(fail ? { fail } : {}) });
  const options: FleetOptions = {
    ...tempRoots(dir),
    runner,
    isRoot: () => true,
    ...extra,
  };
  const fleet = await Fleet.open(options);
  cleanups.push(() => fleet.close());
  await fleet.setup({ base: 'lite', source: { kind: 'dirs', boot: src.boot, root: src.root } });
  return { dir, fleet, options, calls };
}

/** e2fsck -fn (read-only, forced): exit 0 = clean. */
function fsckClean(image: string): { status: number | null; output: string } {
  const r = spawnSync('e2fsck', ['-fn', image], { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function blockCountBytes(image: string): number {
  const text = execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  const count = Number(/^Block count:\s+(\d+)/m.exec(text)![1]);
  const size = Number(/^Block size:\s+(\d+)/m.exec(text)![1]);
  return count * size;
}

function leftovers(options: FleetOptions): string[] {
  const out: string[] = [];
  for (const dir of [options.tftpRoot, options.nfsRoot])
    for (const n of readdirSync(dir)) if (n.startsWith('.') && !n.startsWith('.reflink')) out.push(join(dir, n));
  const intents = join(options.stateDir, 'intents');
  if (existsSync(intents)) out.push(...readdirSync(intents).map((n) => join(intents, n)));
  return out;
}

describe('parseDiskSize (pure)', () => {
  it.each([
    ['0', 0],
    ['8G', 8 * 1024 * MiB],
    ['8GiB', 8 * 1024 * MiB],
    ['512m', 512 * MiB],
    ['33554432', 32 * MiB],
    ['40000000', 39 * MiB], // rounded up to whole MiB
    ['1T', 1024 * 1024 * MiB],
  ])('%s → %d bytes', (text, bytes) => {
    expect(parseDiskSize(text)).toBe(bytes);
  });
  it.each(['', 'G', '8X', '-1G', '8.5G', '1M', '17T'])('%j is refused', (text) => {
    expect(() => parseDiskSize(text)).toThrow(/docker disk size/);
  });
});

describe('checkSshKeys (pure)', () => {
  it('counts public keys, keeps options, drops blanks and comments', () => {
    expect(checkSshKeys(`# mine\n${KEY}\n\nno-pty ${KEY.replace('jo@laptop', 'ci')}\r\n`)).toEqual({
      text: `${KEY}\nno-pty ${KEY.replace('jo@laptop', 'ci')}\n`,
      count: 2,
    });
  });
  it.each(['-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n', 'hello world\n', '# only a comment\n', 'ssh-ed25519 not*base64'])(
    'refuses %j',
    (text) => {
      expect(() => checkSshKeys(text)).toThrow(/private key|no public key|not an SSH public key/);
    },
  );
});

describe('docker disk and first login on a real base (issue 11)', {
  timeout: 120_000,
  ...needs('root', 'mkfs.ext4', 'e2fsck', 'resize2fs', 'dumpe2fs', 'debugfs', 'systemd-analyze'),
}, () => {
  it('add builds a sparse ext4 image e2fsck finds clean, units systemd-analyze verify accepts, userconf.txt and authorized_keys; resize grows it; remove deletes it', async () => {
    const { fleet, options, calls } = await world({ dockerDiskDefault: '48M' });
    const added = await fleet.add({
      serial: SERIAL,
      owner: 'jo',
      name: 'rpi4',
      base: 'lite',
      sshKeys: `${KEY}\n`,
      user: 'jo',
      passwordHash: HASH,
    });
    const root = join(options.nfsRoot, SERIAL);
    const image = join(root, 'var/lib/iot-tofu/docker.img');
    expect(added.pi.dockerDisk).toEqual({ path: image, bytes: 48 * MiB });
    expect(added.pi.firstLogin).toEqual({ user: 'jo', sshKeys: 1 });

    // The image: the default size, sparse, root-only, made on the file (no losetup, no mount).
    const info = statSync(image);
    expect(info.size).toBe(48 * MiB);
    expect(info.blocks * 512).toBeLessThan(info.size / 2);
    expect(info.mode & 0o777).toBe(0o600);
    expect(calls.map((c) => c.file)).not.toContain('losetup');
    expect(calls.map((c) => c.file)).not.toContain('mount');
    const mkfs = calls.find((c) => c.file === 'mkfs.ext4')!;
    expect(mkfs.args).toEqual(expect.arrayContaining(['-F', '-q', '-E', 'lazy_itable_init=1,lazy_journal_init=1']));
    // Made in the add's temp tree, committed by its rename.
    expect(mkfs.args.at(-1)).toMatch(new RegExp(`/\\.${SERIAL}\\.tmp-[0-9a-f]+/var/lib/iot-tofu/docker\\.img$`));
    const clean = fsckClean(image);
    expect(clean.status, clean.output).toBe(0);
    expect(clean.output).toMatch(/docker: \d+\/\d+ files/);
    // The directory bound onto /var/lib/containerd is in the image.
    expect(execFileSync('debugfs', ['-R', 'ls -l /', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })).toContain(
      '.iot-tofu-containerd',
    );

    // Units: in the Pi's root, enabled by wants symlinks, accepted by systemd-analyze verify against that root.
    const units = join(root, 'etc/systemd/system');
    for (const unit of [DOCKER_DISK_MOUNT_UNIT, CONTAINERD_MOUNT_UNIT])
      expect(readlinkSync(join(units, 'local-fs.target.wants', unit))).toBe(`/etc/systemd/system/${unit}`);
    expect(readFileSync(join(units, DOCKER_DISK_FSCK_UNIT), 'utf8')).toContain(
      'ExecStart=/usr/sbin/e2fsck -p /var/lib/iot-tofu/docker.img',
    );
    for (const service of ['docker.service', 'containerd.service'])
      expect(readFileSync(join(units, `${service}.d`, 'iot-tofu-docker-disk.conf'), 'utf8')).toContain(
        'RequiresMountsFor=/var/lib/docker /var/lib/containerd',
      );
    const verify = spawnSync(
      'systemd-analyze',
      ['verify', `--root=${root}`, ...[DOCKER_DISK_FSCK_UNIT, DOCKER_DISK_MOUNT_UNIT, CONTAINERD_MOUNT_UNIT].map((u) => join(units, u))],
      { encoding: 'utf8', cwd: root },
    );
    // Exit 0 and not one warning (unknown keys only warn, so the output must be empty too).
    expect({ status: verify.status, output: `${verify.stdout}${verify.stderr}` }).toEqual({ status: 0, output: '' });

    // cmdline.txt: still one line, with the cgroup switches Docker needs.
    const cmdline = readFileSync(join(options.tftpRoot, SERIAL, 'cmdline.txt'), 'utf8');
    expect(cmdline.split('\n')).toHaveLength(2);
    expect(cmdline).toMatch(/ cgroup_enable=cpuset cgroup_enable=memory\n$/);
    expect(cmdline).not.toContain('cgroup_memory=1');

    // First login: userconf.txt (the hash, root-only: the unprivileged TFTP server cannot read it), keys for the uid-1000 user.
    const userconf = join(options.tftpRoot, SERIAL, 'userconf.txt');
    expect(readFileSync(userconf, 'utf8')).toBe(`jo:${HASH}\n`);
    expect(statSync(userconf).mode & 0o777).toBe(0o600);
    const ssh = join(root, 'home/pi/.ssh');
    expect({ mode: statSync(ssh).mode & 0o777, uid: statSync(ssh).uid, gid: statSync(ssh).gid }).toEqual({
      mode: 0o700,
      uid: 1000,
      gid: 1000,
    });
    const keys = join(ssh, 'authorized_keys');
    expect(readFileSync(keys, 'utf8')).toBe(`${KEY}\n`);
    expect({ mode: statSync(keys).mode & 0o777, uid: statSync(keys).uid }).toEqual({ mode: 0o600, uid: 1000 });
    expect(readlinkSync(join(units, 'multi-user.target.wants/ssh.service'))).toBe('/usr/lib/systemd/system/ssh.service');
    // The registry keeps who, never the hash.
    const registry = readFileSync(join(options.stateDir, 'registry.json'), 'utf8');
    expect(registry).not.toContain('$6$');
    expect(registry).toContain('"user": "jo"');

    // Resize: grows the file and the filesystem (e2fsck -f first), clean afterwards; list shows it.
    await expect(fleet.resizeDockerDisk(SERIAL, '32M')).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    const resized = await fleet.resizeDockerDisk(SERIAL, '80M');
    expect(resized).toEqual({ serial: SERIAL, fromBytes: 48 * MiB, bytes: 80 * MiB });
    expect(statSync(image).size).toBe(80 * MiB);
    expect(blockCountBytes(image)).toBe(80 * MiB);
    expect(fsckClean(image).status).toBe(0);
    const fsck = calls.findIndex((c) => c.file === 'e2fsck' && c.args[0] === '-f');
    expect(fsck).toBeGreaterThan(-1);
    expect(calls.findIndex((c) => c.file === 'resize2fs')).toBeGreaterThan(fsck);
    expect(fleet.get(SERIAL).dockerDisk).toEqual({ path: image, bytes: 80 * MiB });

    // Remove deletes the image with the Pi's tree.
    await fleet.remove(SERIAL);
    expect(existsSync(image)).toBe(false);
    expect(existsSync(root)).toBe(false);
    expect(leftovers(options)).toEqual([]);
  });

  it('keys without a user go to root; no docker disk when the size is 0; a Pi without one cannot be resized', async () => {
    const { fleet, options } = await world();
    const added = await fleet.add({ serial: SERIAL, owner: 'jo', name: 'rpi4', base: 'lite', sshKeys: KEY, dockerDisk: '0' });
    expect(added.pi.dockerDisk).toBeNull();
    const root = join(options.nfsRoot, SERIAL);
    expect(existsSync(join(root, 'var/lib/iot-tofu'))).toBe(false);
    expect(existsSync(join(root, 'etc/systemd/system', DOCKER_DISK_MOUNT_UNIT))).toBe(false);
    expect(readFileSync(join(root, 'root/.ssh/authorized_keys'), 'utf8')).toBe(`${KEY}\n`);
    expect(lstatSync(join(root, 'root/.ssh/authorized_keys')).uid).toBe(0);
    expect(existsSync(join(options.tftpRoot, SERIAL, 'userconf.txt'))).toBe(false);
    await expect(fleet.resizeDockerDisk(SERIAL, '1G')).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
  });

  it.each([
    { passwordHash: 'raspberry', user: 'jo' },
    { user: 'jo' },
    { passwordHash: HASH },
    { user: 'root', passwordHash: HASH },
    { sshKeys: '-----BEGIN OPENSSH PRIVATE KEY-----\n' },
    { dockerDisk: '8X' },
  ])('refuses %j before building anything (a plain password never reaches the disk)', async (extra) => {
    const { fleet, options } = await world();
    await expect(fleet.add({ serial: SERIAL, owner: 'jo', name: 'rpi4', base: 'lite', ...extra })).rejects.toMatchObject({
      code: 'INVALID_REQUEST',
    });
    expect(readdirSync(options.tftpRoot).filter((n) => n === SERIAL)).toEqual([]);
    expect(readFileSync(join(options.stateDir, 'registry.json'), 'utf8')).not.toContain('raspberry');
    expect(leftovers(options)).toEqual([]);
  });

  // A failure after the image was made (each later step), and mkfs itself failing: no half-made Pi.
  it.each<FleetStep | 'mkfs'>(['add:first-login', 'add:commit-dirs', 'add:exports', 'add:registry', 'mkfs'])(
    'a failure at %s leaves no Pi, no image, no temp tree, no intent',
    async (at) => {
      let imageMade = false;
      let armed = true;
      const { fleet, options } = await world(
        {
          beforeStep: (step) => {
            if (step === 'add:first-login' || step === 'add:commit-dirs') {
              // The image exists by now, in the temp tree.
              imageMade = readdirSync(options.nfsRoot).some(
                (n) => n.startsWith(`.${SERIAL}.tmp-`) && existsSync(join(options.nfsRoot, n, 'var/lib/iot-tofu/docker.img')),
              );
            }
            if (step === at && armed) {
              armed = false;
              throw new Error(`injected failure at ${step}`);
            }
          },
        },
        (file) => {
          if (at !== 'mkfs' || file !== 'mkfs.ext4' || !armed) return false;
          armed = false;
          return true;
        },
      );
      const error = await fleet
        .add({ serial: SERIAL, owner: 'jo', name: 'rpi4', base: 'lite', dockerDisk: '32M', user: 'jo', passwordHash: HASH, sshKeys: KEY })
        .catch((e: Error) => e);
      expect(error).toBeInstanceOf(Error);
      expect((error as Error).message).toMatch(at === 'mkfs' ? /mkfs\.ext4 of the docker disk failed/ : /injected failure/);
      if (at !== 'mkfs') expect(imageMade).toBe(true);
      expect(fleet.list()).toEqual([]);
      expect(existsSync(join(options.nfsRoot, SERIAL))).toBe(false);
      expect(existsSync(join(options.tftpRoot, SERIAL))).toBe(false);
      expect(existsSync(options.exportsFile!) ? readFileSync(options.exportsFile!, 'utf8') : '').not.toContain(SERIAL);
      expect(leftovers(options)).toEqual([]);
      // And the next add of the same serial succeeds, image and all.
      const again = await fleet.add({ serial: SERIAL, owner: 'jo', name: 'rpi4', base: 'lite', dockerDisk: '32M' });
      expect(fsckClean(again.pi.dockerDisk!.path).status).toBe(0);
    },
  );
});
