import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManagedExports } from '@iot-tofu/nfs-server-lite';
import { collect, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';
import { makePiImage, tempDir } from '../../packages/fleet/test/helpers.js';
import { Fleet } from '../../packages/fleet/src/index.js';

const CLI = 'packages/pxetools/src/cli.ts';

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

describe('pxetools CLI (child process, temp roots, real exportfs)', {
  timeout: 120_000,
  ...needs('root', 'exportfs', 'sfdisk', 'mkfs.vfat', 'mcopy', 'mkfs.ext4', 'e2fsck', 'xattr', 'setpriv', 'script', 'unshare'),
}, () => {
  let dir: string;
  let configFile: string;
  let exportsFile: string;
  let fakeBin: string;
  let roots: { tftpRoot: string; nfsRoot: string; stateDir: string };

  const pxetools = async (
    args: string[],
    options: { dialog?: Array<[prompt: string, answer: string]>; env?: Record<string, string>; tty?: boolean; asUser?: number } = {},
  ): Promise<Run> => {
    let command = process.execPath;
    let argv = [...tsNodeArgs, CLI, ...args];
    if (options.asUser !== undefined) {
      argv = [`--reuid=${options.asUser}`, `--regid=${options.asUser}`, '--clear-groups', command, ...argv];
      command = 'setpriv';
    }
    if (options.tty) {
      // script(1) gives the CLI a real terminal on stdin, so prompts are shown and answered.
      const quoted = [command, ...argv].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
      argv = ['-qec', quoted, '/dev/null'];
      command = 'script';
    }
    const child = spawn(command, argv, {
      cwd: repoRoot,
      env: { ...process.env, IOT_TOFU_CONFIG: configFile, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    if (options.dialog) {
      // Answer each prompt once it is on the screen, like a person typing.
      const dialog = [...options.dialog];
      let seen = '';
      let from = 0;
      const onData = (data: Buffer) => {
        seen += data.toString();
        const next = dialog[0];
        if (!next) return;
        const at = seen.indexOf(next[0], from);
        if (at < 0) return;
        from = at + next[0].length;
        dialog.shift();
        child.stdin?.write(next[1]);
        if (dialog.length === 0) child.stdin?.end();
      };
      child.stdout?.on('data', onData);
    } else child.stdin?.end();
    const result = await collect(child, 60_000);
    // Without a terminal, progress comes as plain lines on stderr ("Copying root: 50% (…)"): kept
    // apart, so stderr holds what went wrong and nothing else.
    const lines = result.stderr.split(/(?<=\n)/);
    const isProgress = (line: string) => /^[A-Z][\w ]*: \d{1,3}% \(/.test(line);
    lastProgress = lines.filter(isProgress);
    return { code: result.code, stdout: result.stdout, stderr: lines.filter((l) => !isProgress(l)).join('') };
  };
  let lastProgress: string[] = [];

  const snapshot = () => ({
    tftp: existsSync(roots.tftpRoot) ? readdirSync(roots.tftpRoot).sort() : [],
    nfs: existsSync(roots.nfsRoot) ? readdirSync(roots.nfsRoot).sort() : [],
    exports: existsSync(exportsFile) ? readFileSync(exportsFile, 'utf8') : null,
    registry: existsSync(join(roots.stateDir, 'registry.json')) ? readFileSync(join(roots.stateDir, 'registry.json'), 'utf8') : null,
  });

  beforeAll(async () => {
    dir = tempDir('cli');
    chmodSync(dir, 0o755);
    roots = { tftpRoot: join(dir, 'tftpboot'), nfsRoot: join(dir, 'nfs'), stateDir: join(dir, 'state') };
    mkdirSync('/etc/exports.d', { recursive: true });
    exportsFile = `/etc/exports.d/iot-tofu-test-${randomBytes(4).toString('hex')}.exports`;
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...roots, exportsFile, exportsClients: '10.77.0.0/24', serverIp: '10.77.0.2', apiPort: 0 }));
    fakeBin = join(dir, 'fakebin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'exportfs'), '#!/bin/sh\necho "exportfs: injected failure" >&2\nexit 1\n', { mode: 0o755 });
  });

  afterAll(async () => {
    // Our file goes before our folders; ManagedExports' reload tolerates other tests' exports files.
    await new ManagedExports({ file: exportsFile }).removeFile();
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints the upstream usage, byte for byte, for no or unknown arguments (exit 0)', async () => {
    const usage = 'Usage:\n\tpxetools --add serial\n\tpxetools --remove serial\n\tpxetools --list\n';
    for (const args of [[], ['--bogus'], ['frobnicate']]) {
      const run = await pxetools(args);
      expect(run).toEqual({ code: 0, stdout: usage, stderr: '' });
    }
  });

  it('prints the empty upstream table before anything exists', async () => {
    const run = await pxetools(['--list']);
    expect(run).toEqual({ code: 0, stdout: 'Serial    Owner    Name    MAC    IP\n--------  -------  ------  -----  ----\n', stderr: '' });
  });

  it("refuses --add without root with upstream's message", async () => {
    const run = await pxetools(['--add', '9f55bbfd', '--owner', 'jo', '--name', 'rpi4', '--base', 'lite'], { asUser: 65534 });
    expect(run).toEqual({ code: 1, stdout: '', stderr: 'Please run with sudo or as root user\n' });
  });

  it('sets up a base from a synthetic Raspberry Pi OS image and writes the config', async () => {
    const built = makePiImage(join(dir, 'build'), { bookworm: true });
    const run = await pxetools(['setup', '--base', 'lite', '--image', built.image]);
    expect(run.stderr).toBe('');
    expect(lastProgress.at(-1)).toMatch(/: 100% \(/);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^Base lite imported: \d+ files, \d+ MB, bookworm layout, default\nConfig written to .*config\.json\nNow run sudo pxetools --add <serial>\n$/,
    );
    const config = JSON.parse(readFileSync(configFile, 'utf8')) as Record<string, unknown>;
    expect(config).toMatchObject({ ...roots, serverIp: '10.77.0.2', apiPort: 0 });
    const bases = JSON.parse((await pxetools(['bases', '--json'])).stdout) as Array<{ name: string; default: boolean }>;
    expect(bases.map((b) => [b.name, b.default])).toEqual([['lite', true]]);
    expect(existsSync(join(roots.tftpRoot, 'base', 'start4.elf'))).toBe(true);
  });

  it('adds Pis non-interactively, exports them (validated by exportfs) and lists the exact table', async () => {
    const a = await pxetools(['--add', '9f55bbfd', '--owner', 'jo', '--name', 'rpi4', '--base', 'lite']);
    expect(a).toEqual({
      code: 0,
      stdout: 'Serial: 9f55bbfd\n\nSetting up pi...\n\nShould be working, you might have to wait SSH lets you in.\n',
      stderr: '',
    });
    // Leading zeros, 16 digits, upper case: all fine now (docs/pxetools-compat.md E1).
    const b = await pxetools([
      '--add',
      '100000000A1B2C3D',
      '--owner',
      'gordon',
      '--name',
      'pi-two',
      '--base',
      'lite',
      '--mac',
      'DC-A6-32-01-36-C2',
    ]);
    expect(b.code).toBe(0);
    const list = await pxetools(['--list']);
    expect(list).toEqual({
      code: 0,
      stdout:
        'Serial      Owner    Name    MAC                IP\n' +
        '----------  -------  ------  -----------------  ---------\n' +
        '0x0a1b2c3d  gordon   pi-two  dc:a6:32:01:36:c2  Not found\n' +
        '0x9f55bbfd  jo       rpi4    b8:27:eb:55:bb:fd  Not found\n',
      stderr: '',
    });
    const json = JSON.parse((await pxetools(['--list', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(json.map((p) => [p.serial, p.mac, p.macDerived, p.macSource])).toEqual([
      ['0a1b2c3d', 'dc:a6:32:01:36:c2', false, 'configured'],
      ['9f55bbfd', 'b8:27:eb:55:bb:fd', true, 'derived'],
    ]);
    // The real exportfs accepted our file and exports exactly these paths to the region subnet.
    const active = execFileSync('exportfs', ['-v'], { encoding: 'utf8' });
    for (const path of [join(roots.nfsRoot, '9f55bbfd'), join(roots.tftpRoot, '9f55bbfd'), join(roots.nfsRoot, '0a1b2c3d')]) {
      expect(active).toMatch(new RegExp(`${path.replaceAll('/', '\\/')}\\s+10\\.77\\.0\\.0/24\\(.*rw.*no_root_squash`));
    }
    expect(readFileSync(join(roots.tftpRoot, '9f55bbfd', 'owner'), 'utf8')).toBe('jo\n');
    expect(readFileSync(join(roots.nfsRoot, '9f55bbfd', 'etc', 'fstab'), 'utf8')).toContain(
      `10.77.0.2:${roots.tftpRoot}/9f55bbfd /boot/firmware nfs`,
    );
  });

  it('shows what the server learned from traffic instead of the derived MAC', async () => {
    const fleet = await Fleet.open({ ...roots, exportsFile, exportsClients: '10.77.0.0/24', serverIp: '10.77.0.2', seenFlushMs: 10 });
    fleet.recordSeen({ serial: '9f55bbfd', mac: 'd8:3a:dd:00:11:22', ip: '10.77.0.57', model: 'pi4', at: '2026-11-27T00:00:00Z' });
    fleet.recordSeen({ serial: 'cafe0001', mac: 'd8:3a:dd:00:11:99', ip: '10.77.0.58', at: '2026-11-27T00:00:01Z' });
    await fleet.close();
    const list = await pxetools(['--list']);
    expect(list.stdout).toBe(
      'Serial      Owner    Name    MAC                IP\n' +
        '----------  -------  ------  -----------------  ----------\n' +
        '0x0a1b2c3d  gordon   pi-two  dc:a6:32:01:36:c2  Not found\n' +
        '0x9f55bbfd  jo       rpi4    d8:3a:dd:00:11:22  10.77.0.57\n',
    );
    const discovered = JSON.parse((await pxetools(['discovered', '--json'])).stdout) as Array<Record<string, unknown>>;
    expect(discovered).toEqual([
      {
        serial: 'cafe0001',
        mac: 'd8:3a:dd:00:11:99',
        ip: '10.77.0.58',
        model: null,
        firstSeen: '2026-11-27T00:00:01.000Z',
        lastSeen: '2026-11-27T00:00:01.000Z',
      },
    ]);
  });

  it("--own-filesystem mirrors upstream's option 1 and prints where the files go", async () => {
    const run = await pxetools(['--add', 'c0ffee01', '--owner', 'jo', '--name', 'diy', '--own-filesystem']);
    const tftp = join(roots.tftpRoot, 'c0ffee01');
    const nfs = join(roots.nfsRoot, 'c0ffee01');
    expect(run).toEqual({
      code: 0,
      stdout:
        'Serial: c0ffee01\n\nSetting up pi...\n\n' +
        `You opted to prep your own system so please put files in:\n\t${tftp}\n\t${nfs}\n` +
        "I have wrote you a cmdline.txt so don't change it:\n" +
        `console=serial0,115200 console=tty1 root=/dev/nfs nfsroot=10.77.0.2:${nfs},vers=3,tcp rw ip=dhcp rootwait cgroup_enable=cpuset cgroup_enable=memory\n` +
        'Should be working, you might have to wait SSH lets you in.\n',
      stderr: '',
    });
    expect(readdirSync(nfs)).toEqual([]);
    expect((await pxetools(['--remove', 'c0ffee01', '--yes'])).code).toBe(0);
  });

  it.each([
    { label: 'a bad serial', args: ['--add', '12345', '--owner', 'jo', '--name', 'x', '--base', 'lite'], code: 'INVALID_SERIAL' },
    { label: 'a duplicate serial', args: ['--add', '9F55BBFD', '--owner', 'jo', '--name', 'x', '--base', 'lite'], code: 'PI_EXISTS' },
    { label: 'an unknown base', args: ['--add', 'deadbeef', '--owner', 'jo', '--name', 'x', '--base', 'nope'], code: 'BASE_NOT_FOUND' },
    {
      label: 'an invalid host name',
      args: ['--add', 'deadbeef', '--owner', 'jo', '--name', 'bad_name!', '--base', 'lite'],
      code: 'INVALID_NAME',
    },
    // One rule with the API (issue 19 item 6), checked before "Setting up pi..." is printed.
    {
      label: 'an owner with a tab',
      args: ['--add', 'deadbeef', '--owner', 'jo\tsmith', '--name', 'x', '--base', 'lite'],
      code: 'INVALID_OWNER',
    },
    {
      label: 'a 65-character owner',
      args: ['--add', 'deadbeef', '--owner', 'o'.repeat(65), '--name', 'x', '--base', 'lite'],
      code: 'INVALID_OWNER',
    },
    {
      label: 'a serial with a trailing newline',
      args: ['--add', 'deadbeef\n', '--owner', 'jo', '--name', 'x', '--base', 'lite'],
      code: 'INVALID_SERIAL',
    },
    {
      label: 'a one-digit MAC pair',
      args: ['--add', 'deadbeef', '--owner', 'jo', '--name', 'x', '--base', 'lite', '--mac', 'dc:a6:32:1:36:c2'],
      code: 'INVALID_MAC',
    },
    { label: 'a missing owner without a terminal', args: ['--add', 'deadbeef', '--name', 'x', '--base', 'lite'], code: 'USAGE' },
    { label: 'remove without --yes and without a terminal', args: ['--remove', '9f55bbfd'], code: 'USAGE' },
    { label: 'removing a base that Pis use', args: ['remove-base', 'lite', '--yes'], code: 'BASE_IN_USE' },
    {
      label: 'a second base under an existing name',
      args: ['setup', '--base', 'lite', '--boot-dir', '/nonexistent', '--rootfs-dir', '/nonexistent'],
      code: 'BASE_EXISTS',
    },
  ])('fails with one clear line and changes nothing for $label', async ({ args, code }) => {
    const before = snapshot();
    const run = await pxetools(args);
    expect(run.code).toBe(1);
    expect(run.stderr.split('\n')).toHaveLength(2);
    expect(run.stderr).toMatch(new RegExp(`^Error: .*\\(${code}\\)\\n$`));
    expect(run.stdout).not.toContain('Setting up pi');
    expect(snapshot()).toEqual(before);
  });

  it('a failing exportfs makes --add fail and leaves nothing behind', async () => {
    const before = snapshot();
    const run = await pxetools(['--add', 'deadbeef', '--owner', 'jo', '--name', 'pi3', '--base', 'lite'], {
      env: { PATH: `${fakeBin}:${process.env.PATH ?? ''}` },
    });
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^Error: exportfs -ra failed: .*injected failure.*\(EXPORTFS_FAILED\)\n$/);
    expect(snapshot()).toEqual(before);
  });

  it('asks for missing values on a terminal (upstream prompts and base menu)', async () => {
    const run = await pxetools(['--add', 'abcdef01'], {
      tty: true,
      dialog: [
        ['Owner name: ', 'ann\n'],
        ['Pi name: ', 'pi-tty\n'],
        ['Enter an option number: ', '2\n'],
      ],
    });
    expect(run.code).toBe(0);
    const text = run.stdout.replace(/\r\n/g, '\n');
    expect(text).toContain('Serial: abcdef01\nOwner name: ');
    expect(text).toContain('Pi name: ');
    expect(text).toContain('Select a base image:\n\t1. I will prepare my own filesystem\n\t2. lite\nEnter an option number: ');
    // On a terminal the root copy shows a progress bar (stderr shares the terminal here).
    expect(text).toMatch(/Copying root \[#{30}\] 100% \d+ [KMG]?B\/\d+ [KMG]?B/);
    expect(text).toContain('Should be working, you might have to wait SSH lets you in.\n');
    expect(readFileSync(join(roots.tftpRoot, 'abcdef01', 'name'), 'utf8')).toBe('pi-tty\n');
    const removed = await pxetools(['--remove', 'abcdef01'], {
      tty: true,
      dialog: [
        ['Y/N: ', 'y\n'],
        ['Y/N: ', 'N\n'],
      ],
    });
    expect(removed.stdout.replace(/\r\n/g, '\n')).toContain(
      // The terminal echoes what was typed; a lower-case y is not an answer, so the question repeats.
      'ARE YOU SURE YOU WANT TO DELETE abcdef01? Y/N: y\nARE YOU SURE YOU WANT TO DELETE abcdef01? Y/N: N\nAborting\n',
    );
    expect(existsSync(join(roots.nfsRoot, 'abcdef01'))).toBe(true);
  });

  it('refuses to remove a Pi with something mounted inside its root (docs/pxetools-compat.md E6), deleting nothing', async () => {
    const precious = join(dir, 'precious');
    mkdirSync(precious);
    writeFileSync(join(precious, 'keep'), 'keep');
    const home = join(roots.nfsRoot, 'abcdef01', 'home');
    // A private mount namespace: the bind mount exists only for this pxetools run.
    const script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"';
    const run = await collect(
      spawn(
        'unshare',
        [
          '-m',
          '--propagation',
          'private',
          'sh',
          '-c',
          script,
          'sh',
          precious,
          home,
          process.execPath,
          ...tsNodeArgs,
          CLI,
          '--remove',
          'abcdef01',
          '--yes',
        ],
        {
          cwd: repoRoot,
          env: { ...process.env, IOT_TOFU_CONFIG: configFile },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      ),
      60_000,
    );
    expect(run.code).toBe(1);
    expect(run.stderr).toBe(
      `Error: refusing to remove abcdef01: ${home} is mounted inside ${join(roots.nfsRoot, 'abcdef01')}; unmount it first (PI_MOUNTED)\n`,
    );
    expect(readFileSync(join(precious, 'keep'), 'utf8')).toBe('keep');
    expect(existsSync(join(roots.nfsRoot, 'abcdef01', 'etc', 'hostname'))).toBe(true);
  });

  it('removes a Pi with --yes, idempotently, and resets everything', async () => {
    const removed = await pxetools(['--remove', '9f55bbfd', '--yes']);
    expect(removed).toEqual({ code: 0, stdout: `Removing from ${exportsFile}\nRemoved 9f55bbfd\n`, stderr: '' });
    expect(existsSync(join(roots.nfsRoot, '9f55bbfd'))).toBe(false);
    expect(readFileSync(exportsFile, 'utf8')).not.toContain('9f55bbfd');
    expect(await pxetools(['--remove', '9f55bbfd', '--yes'])).toEqual({
      code: 0,
      stdout: '9f55bbfd is not registered; nothing to remove\n',
      stderr: '',
    });
    const reset = await pxetools(['reset', '--yes']);
    expect(reset).toEqual({ code: 0, stdout: 'Reset done: removed 2 Pi(s) and 1 base(s)\n', stderr: '' });
    expect(snapshot()).toMatchObject({ tftp: [], nfs: ['bases'], exports: null });
    expect(readdirSync(join(roots.nfsRoot, 'bases'))).toEqual([]);
    expect(execFileSync('exportfs', ['-v'], { encoding: 'utf8' })).not.toContain(roots.nfsRoot);
  });
});
