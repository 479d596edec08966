import { execFileSync } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Lab, repoRoot, tsNodeArgs } from '../lab/index.js';
import { needs } from '../needs.js';
import { Fleet } from '../../packages/fleet/src/index.js';
import { tempDir } from '../../packages/fleet/test/helpers.js';

/**
 * `pxetools --list` fills the IP column from the server's neighbour table: a Pi that talked to
 * the server (here: a namespace host with a Pi 3 MAC that pings it) shows its address, without
 * any nmap sweep (docs/pxetools-compat.md E4).
 */
describe('pxetools --list and the neighbour table (netns)', { timeout: 120_000, ...needs('netns', 'ping') }, () => {
  let lab: Lab;
  let dir: string;
  let configFile: string;

  beforeAll(async () => {
    dir = tempDir('neigh');
    chmodSync(dir, 0o755);
    const roots = { tftpRoot: join(dir, 'tftpboot'), nfsRoot: join(dir, 'nfs'), stateDir: join(dir, 'state') };
    configFile = join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({ ...roots, exportsFile: join(dir, 'exports'), serverIp: '10.77.0.2', exportsClients: '10.77.0.0/24' }),
    );
    const fleet = await Fleet.open({
      ...roots,
      exportsFile: join(dir, 'exports'),
      serverIp: '10.77.0.2',
      exportsClients: '10.77.0.0/24',
      runner: async () => ({ stdout: '', stderr: '' }),
    });
    await fleet.add({ serial: '9f55bbfd', owner: 'jo', name: 'rpi3', ownFilesystem: true });
    await fleet.add({ serial: '0a1b2c3d', owner: 'jo', name: 'quiet', ownFilesystem: true });
    await fleet.close();
    lab = await Lab.create([
      { name: 'srv', address: '10.77.0.2/24' },
      { name: 'pi', address: '10.77.0.57/24' },
    ]);
    // The Pi 3's MAC is the one derived from its serial.
    execFileSync('ip', ['-n', lab.ns('pi'), 'link', 'set', 'eth0', 'address', 'b8:27:eb:55:bb:fd']);
  });

  afterAll(async () => {
    await lab?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('shows the IP of a Pi that talked to the server, Not found for one that did not', async () => {
    const ping = await lab.run('pi', 'ping', ['-c', '1', '-W', '2', '10.77.0.2']);
    expect(ping.code).toBe(0);
    const list = await lab.run('srv', process.execPath, [...tsNodeArgs, 'packages/pxetools/src/cli.ts', '--list', '--config', configFile], {
      cwd: repoRoot,
      timeoutMs: 60_000,
    });
    expect(list.stderr).toBe('');
    expect(list.stdout).toBe(
      'Serial      Owner    Name    MAC                IP\n' +
        '----------  -------  ------  -----------------  ----------\n' +
        '0x0a1b2c3d  jo       quiet   b8:27:eb:1b:2c:3d  Not found\n' +
        '0x9f55bbfd  jo       rpi3    b8:27:eb:55:bb:fd  10.77.0.57\n',
    );
  });
});
