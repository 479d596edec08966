import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stopProcess } from '../lab/index.js';
import { needs } from '../needs.js';
import { forgedBurstThenPi, prepareServerDir, startForgedServer } from '../../bench/storm/forged-lab.js';
import { createStormLab, type StormLab } from '../../bench/storm/topology.js';

/**
 * Issue 19 item 7 on the wire: the daemon (proxyDHCP + TFTP, any-pi mode) beside dnsmasq as the
 * site DHCP server; 200 forged Pi 4 DISCOVERs (Pi OUI, PXEClient, options 93/94/97) that never
 * fetch, re-sent every 4 s like waiting Pis; then one simulated Pi 4. Timings are the bench's
 * (bench/storm/forged-wire.ts, bench/results/gate-forged.md); these bounds hold on a loaded machine.
 */
describe('admission gate against forged Pi DISCOVERs (netns)', { timeout: 240_000, ...needs('netns', 'dnsmasq') }, () => {
  let storm: StormLab;
  let dir: string;
  let configFile: string;
  let daemon: ChildProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'forged-discover-'));
    storm = await createStormLab({ poolSize: 8, workDir: join(dir, 'lab') });
    configFile = await prepareServerDir(join(dir, 'srv'));
  });
  afterEach(async () => {
    if (daemon) await stopProcess(daemon);
    daemon = undefined;
  });
  afterAll(async () => {
    await storm?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('a registered Pi gets its first offer on its first DISCOVER', async () => {
    daemon = await startForgedServer(storm, { kind: 'daemon' }, join(dir, 'srv'), configFile);
    const offer = await forgedBurstThenPi(storm, { forged: 200, pattern: 'repeat', realPi: 'registered', realAfterMs: 200 });
    expect(offer.discover).toBe(1);
  });

  it('an unregistered Pi in any-pi mode is offered by its third DISCOVER (the gate without its newcomer lane: 10-13)', async () => {
    daemon = await startForgedServer(storm, { kind: 'daemon' }, join(dir, 'srv'), configFile);
    const offer = await forgedBurstThenPi(storm, { forged: 200, pattern: 'repeat', realPi: 'unregistered', realAfterMs: 1500 });
    expect(offer.discover).not.toBeNull();
    expect(offer.discover).toBeLessThanOrEqual(3);
  });
});
