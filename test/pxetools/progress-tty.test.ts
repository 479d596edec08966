// pxetools progress as a person sees it (issue 13): under script(1) stderr is a terminal and `add`
// draws its bar in place; piped, the same add writes plain lines; with --json stderr stays quiet
// and stdout is pure JSON. exportfs is a stand-in that succeeds (progress is what is tested here).
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';
import { makeBaseTrees, tempDir } from '../../packages/fleet/test/helpers.js';

const CLI = 'packages/pxetools/src/cli.ts';

describe('pxetools progress on a terminal, in a pipe and with --json', { timeout: 180_000, ...needs('root', 'script', 'setpriv') }, () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  beforeAll(() => {
    dir = tempDir('progress');
    chmodSync(dir, 0o755);
    const fakeBin = join(dir, 'fakebin');
    mkdirSync(fakeBin);
    writeFileSync(join(fakeBin, 'exportfs'), '#!/bin/sh\nexit 0\n', { mode: 0o755 });
    const config = join(dir, 'config.json');
    writeFileSync(
      config,
      JSON.stringify({
        tftpRoot: join(dir, 'tftpboot'),
        nfsRoot: join(dir, 'nfs'),
        stateDir: join(dir, 'state'),
        exportsFile: join(dir, 'exports.d', 'iot-tofu.exports'),
        exportsClients: '10.77.0.0/24',
        serverIp: '10.77.0.2',
      }),
    );
    env = { ...process.env, IOT_TOFU_CONFIG: config, PATH: `${fakeBin}:${process.env.PATH ?? ''}` };
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const pxetools = (args: string[], tty = false) => {
    const argv = [process.execPath, ...tsNodeArgs, CLI, ...args];
    const quoted = argv.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
    const child = tty
      ? spawn('script', ['-qec', quoted, '/dev/null'], { cwd: repoRoot, env, stdio: ['pipe', 'pipe', 'pipe'] })
      : spawn(argv[0]!, argv.slice(1), { cwd: repoRoot, env, stdio: ['ignore', 'pipe', 'pipe'] });
    if (tty) child.stdin?.end();
    return collect(child, 120_000);
  };

  it('setup, then add on a terminal (bar), piped (lines), with --json (silent)', async () => {
    const trees = makeBaseTrees(join(dir, 'src'), { special: false });
    // Some bytes to copy, so the bar has something to count.
    writeFileSync(join(trees.root, 'usr/bin/big'), Buffer.alloc(3 * 1024 * 1024, 7));
    const setup = await pxetools(['setup', '--base', 'lite', '--boot-dir', trees.boot, '--rootfs-dir', trees.root]);
    expect(setup.code, setup.stderr).toBe(0);

    const onTty = await pxetools(['--add', 'aaaa0001', '--owner', 'jo', '--name', 'pi1', '--base', 'lite'], true);
    expect(onTty.code, onTty.stdout + onTty.stderr).toBe(0);
    // script(1) merges the terminal's output into its stdout.
    expect(onTty.stdout).toMatch(/\rCopying root \[#{30}\] 100% \d+ (KB|MB)\/\d+ (KB|MB)\x1b\[K/);
    expect(onTty.stdout).toContain('Should be working');

    const piped = await pxetools(['--add', 'aaaa0002', '--owner', 'jo', '--name', 'pi2', '--base', 'lite']);
    expect(piped.code, piped.stderr).toBe(0);
    expect(piped.stderr).toMatch(/^Copying root: 100% \(\d+ (KB|MB) of \d+ (KB|MB)\)$/m);
    expect(piped.stderr).not.toMatch(/[\r\x1b]/);
    expect(piped.stdout).not.toContain('Copying root');

    const json = await pxetools(['--add', 'aaaa0003', '--owner', 'jo', '--name', 'pi3', '--base', 'lite', '--json']);
    expect(json.code, json.stderr).toBe(0);
    expect(json.stderr).toBe('');
    expect(JSON.parse(json.stdout)).toMatchObject({ serial: 'aaaa0003', owner: 'jo', name: 'pi3' });
  });
});
