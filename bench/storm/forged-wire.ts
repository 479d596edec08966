/**
 * Issue 19 item 7 on the wire, before/after the gate's newcomer lane: for each case, a burst of
 * forged Pi DISCOVERs (forger.ts), then one simulated Pi 4; when did it get its first offer, and
 * on which DISCOVER? Servers: bench/storm/ours.ts with the daemon's gate, newcomer lane off
 * (`before`) and on (`after`, the daemon's default), and the daemon itself. Each case ends by
 * the Pi's 45 s DHCP timeout; the whole run is bounded by its case list (about 10 minutes).
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/forged-wire.ts [--quick | --together N] [--out bench/results/gate-forged]
 * Needs root (network namespaces), dnsmasq. Writes <out>.json and prints the table of <out>.md.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { stopProcess } from '../../test/lab/index.js';
import { forgedBurstThenPi, prepareServerDir, startForgedServer } from './forged-lab.js';
import type { FirstOffer, ForgedRun, ForgedServer } from './forged-lab.js';
import { createStormLab } from './topology.js';

const { values } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    // N runs with the Pi started together with the forger (its DISCOVER within ~1 s of the burst, the lane's weak spot).
    together: { type: 'string', default: '0' },
    out: { type: 'string', default: 'bench/results/gate-forged' },
  },
});

const servers: Record<string, ForgedServer> = {
  before: { kind: 'script', newcomerSlots: 0 },
  after: { kind: 'script', newcomerSlots: 2 },
  daemon: { kind: 'daemon' },
};
const togetherRun: ForgedRun = { forged: 200, pattern: 'repeat', realPi: 'unregistered', realAfterMs: 0 };
const together = Array.from({ length: Math.min(20, Number(values.together)) }, () => togetherRun);
const cases: ForgedRun[] =
  values.together !== '0'
    ? together
    : values.quick
      ? [{ forged: 200, pattern: 'repeat', realPi: 'unregistered', realAfterMs: 1500 }]
      : [
          { forged: 200, pattern: 'once', realPi: 'unregistered', realAfterMs: 200 },
          { forged: 200, pattern: 'once', realPi: 'unregistered', realAfterMs: 1500 },
          { forged: 200, pattern: 'repeat', realPi: 'unregistered', realAfterMs: 200 },
          { forged: 200, pattern: 'repeat', realPi: 'unregistered', realAfterMs: 1500 },
          { forged: 200, pattern: 'rotate', realPi: 'unregistered', realAfterMs: 1500 },
          { forged: 200, pattern: 'repeat', realPi: 'registered', realAfterMs: 200 },
        ];

interface Row extends ForgedRun {
  caseIndex: number;
  server: string;
  result: FirstOffer;
  load1: number;
}

const dir = mkdtempSync(join(tmpdir(), 'gate-forged-'));
const storm = await createStormLab({ poolSize: 8, workDir: join(dir, 'lab') });
const rows: Row[] = [];
try {
  const configFile = await prepareServerDir(join(dir, 'srv'));
  for (const [caseIndex, run] of cases.entries()) {
    // The registered case only means something to a server that knows the fleet: the daemon.
    for (const [name, server] of Object.entries(servers)) {
      if (run.realPi === 'registered' && server.kind !== 'daemon') continue;
      const child = await startForgedServer(storm, server, join(dir, 'srv'), configFile);
      try {
        const result = await forgedBurstThenPi(storm, run);
        const row = { ...run, caseIndex, server: name, result, load1: Number(loadavg()[0]?.toFixed(2)) };
        rows.push(row);
        process.stdout.write(`${JSON.stringify(row)}\n`);
      } finally {
        await stopProcess(child);
      }
    }
  }
} finally {
  await storm.close();
  rmSync(dir, { recursive: true, force: true });
}

const out = values.out ?? 'bench/results/gate-forged';
writeFileSync(`${out}.json`, `${JSON.stringify({ bench: 'bench/storm/forged-wire.ts', date: new Date().toISOString(), rows }, null, 1)}\n`);
const cell = (r: FirstOffer | undefined) => {
  if (!r) return '–';
  const at = r.afterBurstMs === undefined ? '' : `, Pi at +${(r.afterBurstMs / 1000).toFixed(1)} s`;
  if (r.firstOfferMs === null) return `none in ${r.discovers} DISCOVERs${at}`;
  return `${(r.firstOfferMs / 1000).toFixed(1)} s (DISCOVER ${r.discover}${at})`;
};
const lines = [
  '| forgers | real Pi | powered on after the burst | before (no lane) | after (lane) | daemon |',
  '|---|---|---|---|---|---|',
  ...cases.map((c, i) => {
    const of = (server: string) => rows.find((r) => r.server === server && r.caseIndex === i)?.result;
    const cells = ['before', 'after', 'daemon'].map((server) => cell(of(server)));
    return `| ${c.forged} ${c.pattern} | ${c.realPi} | ${c.realAfterMs} ms | ${cells.join(' | ')} |`;
  }),
];

process.stdout.write(`${lines.join('\n')}\n`);
