import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, statSync, writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs, which } from '../needs.js';
import { makeBaseTrees, tempDir } from '../../packages/fleet/test/helpers.js';
import { execFileRunner } from '@iot-tofu/host-io';
import { Fleet } from '../../packages/fleet/src/index.js';

/**
 * Issue 11 through the CLI: --add with --docker-disk (default from the config's dockerDisk),
 * --ssh-key, --user/--password-hash; --list --json shows the disk; --resize-docker-disk asks
 * (or --yes) and grows it; --remove deletes it. exportfs is a no-op stub on PATH.
 */
const CLI = 'packages/pxetools/src/cli.ts';
const SERIAL = '9f55bbfd';
const MiB = 1024 * 1024;
const HASH = '$6$c70VpvPsVNCG0YR5$l5vWWLsLko9Kj65gcQ8qvMkuOoRkEagI90qi3F/Y7rm8eNYZHW8CY6BOIKwMH7a3YYzZYL90zf304cAHLFaZE0';
const KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHk5d0N5j1b2bq5kX7oVb8tS0W5y3mQ3lJ0mYc8l8v7W jo@laptop';

describe('pxetools docker disk and first login (child process, temp roots)', {
  timeout: 120_000,
  ...needs('root', 'mkfs.ext4', 'e2fsck', 'resize2fs'),
}, () => {
  let dir: string;
  let configFile: string;
  let keyFile: string;
  let env: Record<string, string>;
  let nfsRoot: string;

  const pxetools = async (args: string[]) => {
    const child = spawn(process.execPath, [...tsNodeArgs, CLI, ...args, '--config', configFile], {
      cwd: repoRoot,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return collect(child, 60_000);
  };

  beforeAll(async () => {
    dir = tempDir('pxetools-docker');
    const src = makeBaseTrees(join(dir, 'src'), { bookworm: true });
    writeFileSync(join(src.root, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/bash\npi:x:1000:1000:,,,:/home/pi:/bin/bash\n');
    mkdirSync(join(src.root, 'usr/sbin'), { recursive: true });
    copyFileSync(which('e2fsck')!, join(src.root, 'usr/sbin/e2fsck'));
    const fakeBin = join(dir, 'fakebin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'exportfs'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    env = { PATH: `${fakeBin}:${process.env.PATH ?? ''}` };
    nfsRoot = join(dir, 'nfs');
    const roots = {
      tftpRoot: join(dir, 'tftpboot'),
      nfsRoot,
      stateDir: join(dir, 'state'),
      exportsFile: join(dir, 'exports.d', 'iot-tofu.exports'),
      exportsClients: '10.77.0.0/24',
      serverIp: '10.77.0.2',
    };
    const real = await Fleet.open({
      ...roots,
      isRoot: () => true,
      runner: (file, a, o) => (file === 'exportfs' ? Promise.resolve({ stdout: '', stderr: '' }) : execFileRunner(file, a, o)),
    });
    await real.setup({ base: 'lite', source: { kind: 'dirs', boot: src.boot, root: src.root } });
    await real.close();
    configFile = join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ ...roots, dockerDisk: '40M' }));
    keyFile = join(dir, 'id_ed25519.pub');
    writeFileSync(keyFile, `${KEY}\n`);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('add uses the config default, list --json shows it, resize asks then grows it, remove deletes it', async () => {
    const add = await pxetools([
      '--add',
      SERIAL,
      '--owner',
      'jo',
      '--name',
      'rpi4',
      '--base',
      'lite',
      '--ssh-key',
      keyFile,
      '--user',
      'jo',
      '--password-hash',
      HASH,
      '--json',
    ]);
    expect(add.code, add.stderr).toBe(0);
    const image = join(nfsRoot, SERIAL, 'var/lib/iot-tofu/docker.img');
    expect(JSON.parse(add.stdout)).toMatchObject({
      serial: SERIAL,
      dockerDisk: { path: image, bytes: 40 * MiB },
      firstLogin: { user: 'jo', sshKeys: 1 },
    });
    expect(statSync(image).size).toBe(40 * MiB);

    const list = await pxetools(['--list', '--json']);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ dockerDisk: unknown }>).map((p) => p.dockerDisk)).toEqual([
      { path: image, bytes: 40 * MiB },
    ]);

    // Not on a terminal and no --yes: refused, nothing changed (the Pi might be running).
    const refused = await pxetools(['--resize-docker-disk', SERIAL, '64M']);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/pass --yes/);
    expect(statSync(image).size).toBe(40 * MiB);

    const resized = await pxetools(['--resize-docker-disk', SERIAL, '64M', '--yes', '--json']);
    expect(resized.code, resized.stderr).toBe(0);
    expect(JSON.parse(resized.stdout)).toEqual({ serial: SERIAL, fromBytes: 40 * MiB, bytes: 64 * MiB });
    expect(statSync(image).size).toBe(64 * MiB);

    const removed = await pxetools(['--remove', SERIAL, '--yes']);
    expect(removed.code, removed.stderr).toBe(0);
    expect(existsSync(image)).toBe(false);
  });

  it('refuses --user without --password-hash, a plain password and a bad size, before anything is made', async () => {
    for (const args of [
      ['--user', 'jo'],
      ['--user', 'jo', '--password-hash', 'raspberry'],
      ['--docker-disk', 'lots'],
    ]) {
      const run = await pxetools(['--add', SERIAL, '--owner', 'jo', '--name', 'rpi4', '--base', 'lite', ...args]);
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stderr).toMatch(/--password-hash go together|crypt\(3\) hash|docker disk size/);
      expect(run.stderr).not.toContain('raspberry');
      expect(existsSync(join(nfsRoot, SERIAL))).toBe(false);
    }
  });
});
