/**
 * Boot-storm benchmark (issue 6): N simulated Pis powered on together against each server, on a
 * shaped link, all inside network namespaces. `npm run bench` (full) or `npm run bench:quick`.
 *
 *   --quick                 lan100 only, N = 1 and 10 (under two minutes)
 *   --profiles a,b          lan100,lan1000,lossy
 *   --servers a,b           ours,ours-daemon,ours-nogate,ours-dgram,ours-script,dnsmasq,dnsmasq-max,tftpd-hpa
 *   --n 1,10,50             Pis powered on together
 *   --ours script|daemon    which "ours" to run (default: the daemon when it exists; the script also runs as ours-script)
 *   --gate adaptive|fixed:K|off   admission gate of the script variant
 *   --admission-budget K    the daemon's --admission-budget for ours (default: the daemon's own, auto)
 *   --rto-ms MS             first TFTP retransmission timeout of ours (default 50; library default 1000)
 *   --layout shared,copies  per-serial folders as hard links to one copy (shared, default) and/or
 *                           each Pi with its own copy (copies: same bytes, distinct inodes); with
 *                           both, every server runs on each and its name gets a [layout] suffix
 *   --initramfs             Pi OS with its initramfs: config.txt auto_initramfs=1, initramfs8 12 MB (~24 MB per boot)
 *   --threads 0|auto|N      transfer threads of the library script (ours-script; default 0)
 *   --out PATH              results base path (default bench/results/boot-storm[-quick])
 *
 * Results: <out>.json, <out>.md, <out>.svg; one summary line per profile and N on stdout.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { simulatedIdentities } from '@iot-tofu/rpi-sim';
import { canUseNetns, havePeers, repoRoot } from '../test/lab/index.js';
import { runOnce, WIRE_OVERHEAD, type RunResult } from './storm/measure.js';
import { summaryLines, writeReport, type BenchReport } from './storm/report.js';
import { SERVERS, daemonEntry, ours, type ServerUnderTest } from './storm/servers.js';
import { PROFILES, applyProfile, createStormLab, type LinkProfile } from './storm/topology.js';
import { BOOT_FILE_SIZES, INITRAMFS_FILE_SIZES, buildBootTree, bytesPerBoot, type TreeLayout } from './storm/tree.js';

const USAGE = `usage: boot-storm.ts [--quick] [--profiles lan100,lan1000,lossy] [--n 1,10,50,100,200]
  [--servers ours,ours-script,ours-nogate,ours-dgram,dnsmasq,dnsmasq-max,tftpd-hpa] [--ours daemon|script]
  [--gate adaptive|off|fixed:K] [--admission-budget auto|K] [--rto-ms MS] [--out BASE]
  [--layout shared,copies] [--initramfs] [--threads 0|auto|N]
Results: BASE.{json,md,svg} (default bench/results/boot-storm[-quick]). Needs root, dnsmasq, tftpd-hpa, tc, nftables.
`;

function parseCommandLine() {
  try {
    return parseArgs({ options: OPTIONS });
  } catch (error) {
    process.stderr.write(`boot-storm: ${(error as Error).message}\n${USAGE}`);
    process.exit(64);
  }
}

const OPTIONS = {
  quick: { type: 'boolean', default: false },
  profiles: { type: 'string' },
  servers: { type: 'string' },
  n: { type: 'string' },
  ours: { type: 'string' },
  gate: { type: 'string', default: 'adaptive' },
  'admission-budget': { type: 'string' },
  'rto-ms': { type: 'string', default: '50' },
  layout: { type: 'string', default: 'shared' },
  initramfs: { type: 'boolean', default: false },
  threads: { type: 'string' },
  out: { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

const { values } = parseCommandLine();
if (values.help) {
  process.stdout.write(USAGE);
  process.exit(0);
}

const quick = values.quick ?? false;
const list = (text: string | undefined, fallback: string) =>
  (text ?? fallback)
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
const profileNames = list(values.profiles, quick ? 'lan100' : 'lan100,lan1000,lossy');
const serverNames = list(values.servers, quick ? 'ours,dnsmasq,dnsmasq-max,tftpd-hpa' : 'ours,ours-script,dnsmasq,dnsmasq-max,tftpd-hpa');
const counts = list(values.n, quick ? '1,10' : '1,10,50,100,200').map(Number);
// "ours" is the boot-server daemon with its admission gate (budget sized for the link) when it
// exists; the library script with the bench gate runs as ours-script, or as "ours" with --ours script.
const oursVariant = (values.ours ?? (daemonEntry() ? 'daemon' : 'script')) as 'script' | 'daemon';

function fail(message: string): never {
  process.stderr.write(`boot-storm: ${message}\n`);
  process.exit(64);
}
for (const p of profileNames) if (!(p in PROFILES)) fail(`unknown profile ${p} (lan100, lan1000, lossy)`);
for (const n of counts) if (!Number.isInteger(n) || n < 1 || n > 500) fail(`N must be 1..500, got ${n}`);
if (oursVariant !== 'script' && oursVariant !== 'daemon') fail('--ours must be script or daemon');
const layouts = list(values.layout, 'shared') as TreeLayout[];
for (const l of layouts) if (l !== 'shared' && l !== 'copies') fail(`unknown layout ${l} (shared, copies)`);
const sizes = values.initramfs ? INITRAMFS_FILE_SIZES : BOOT_FILE_SIZES;
/** With several layouts every server runs on each; the layout goes into its name. */
const named = (server: ServerUnderTest, layout: TreeLayout): ServerUnderTest =>
  layouts.length > 1 ? { ...server, name: `${server.name}[${layout}]` } : server;
const servers: ServerUnderTest[] = serverNames.map((name) => {
  if (name === 'ours') return ours(oursVariant);
  const server = SERVERS[name as keyof typeof SERVERS];
  if (!server) fail(`unknown server ${name} (ours, ${Object.keys(SERVERS).join(', ')})`);
  return server;
});
if (!canUseNetns()) fail('needs root and iproute2 (network namespaces)');
if (!havePeers('dnsmasq', 'in.tftpd', 'tc', 'nft', 'ss')) fail('needs dnsmasq, tftpd-hpa, tc, nftables and ss (see .ci/apt-packages.txt)');

const model = 'pi4' as const;
const B = bytesPerBoot(model, sizes);
const maxN = Math.max(...counts);
const cacheDir = '/var/tmp/iot-tofu-storm';
const workDir = join(cacheDir, `run-${process.pid}`);
const tftpRoot = join(cacheDir, `tftp-${process.pid}`);
const pis = simulatedIdentities(maxN, model);

/** Generous bound per run: twice the link-bound time plus 40 s (a Pi's file limit and back-off). */
const limitFor = (profile: LinkProfile, n: number) =>
  Math.ceil(((2 * n * B * WIRE_OVERHEAD) / (profile.rateBitsPerSecond / 8)) * 1000 + 40_000);

/**
 * A fixed daemon budget sized for a link (the `ours-fixed` variant): as many big transfers as can
 * each finish a whole boot in ~15 s (half the Pi's 30 s per-file limit) when sharing the link:
 * R × 15 s / B. `ours` runs the daemon's default (`auto`, steered by kernel transfer times) unless
 * --admission-budget is given.
 */
const linkBudgetFor = (profile: LinkProfile) => Math.max(2, Math.floor(((profile.rateBitsPerSecond / 8) * 15) / (B * WIRE_OVERHEAD)));

const started = new Date();
process.stdout.write(
  `boot-storm: ${profileNames.join(',')} × ${servers.map((s) => s.name).join(',')} × N=${counts.join(',')} × layout ${layouts.join(',')}; ${model}, ${(B / 1e6).toFixed(2)} MB per boot; ours = ${oursVariant}${oursVariant === 'script' ? ` (gate ${values.gate})` : ''}\n`,
);
mkdirSync(workDir, { recursive: true });
let builtLayout: TreeLayout | undefined;
const useLayout = (layout: TreeLayout) => {
  if (builtLayout === layout) return;
  buildBootTree({ root: tftpRoot, cacheDir, pis, sizes, layout });
  builtLayout = layout;
};
useLayout(layouts[0]!);
const storm = await createStormLab({ poolSize: maxN + 16, workDir });
const runs: RunResult[] = [];
const singlePiMs: Record<string, number> = {};
const report = (): BenchReport => ({
  startedAt: started.toISOString(),
  finishedAt: new Date().toISOString(),
  quick,
  machine: { cpus: cpus().length, node: process.versions.node, kernel: release() },
  model,
  bytesPerBoot: B,
  servers: layouts
    .flatMap((layout) => servers.map((s) => named(s, layout)))
    .map((s) => ({
      name: s.name,
      description:
        layouts.length > 1
          ? `${s.description}; ${s.name.endsWith('[copies]') ? 'each Pi its own copy of the boot files' : 'boot files hard-linked (one inode per file)'}`
          : s.description,
    })),
  singlePiMs,
  runs,
});
const outBase = values.out ?? join(repoRoot, 'bench/results', quick ? 'boot-storm-quick' : 'boot-storm');

let interrupted = false;
const onSignal = () => {
  interrupted = true;
  process.stderr.write('boot-storm: interrupted, finishing the current run and tearing down\n');
};
process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);

try {
  const firstIndex = 0;
  for (const profileName of profileNames) {
    const profile = PROFILES[profileName as LinkProfile['name']];
    await applyProfile(storm.lab, profile);
    for (const n of counts) {
      for (const [layout, server] of layouts.flatMap((l) => servers.map((s) => [l, named(s, l)] as const))) {
        if (interrupted) break;
        useLayout(layout);
        const t0 = Date.now();
        const run = await runOnce({
          lab: storm.lab,
          server,
          context: {
            lab: storm.lab,
            tftpRoot,
            workDir,
            gate: values.gate ?? 'adaptive',
            admissionBudget: values['admission-budget'],
            linkBudget: linkBudgetFor(profile),
            oursRtoMs: Number(values['rto-ms']),
            ...(values.threads === undefined ? {} : { oursThreads: values.threads }),
          },
          profile,
          pis: n,
          model,
          bytesPerBoot: B,
          limitMs: limitFor(profile, n),
          firstIndex,
        });
        runs.push(run);
        if (n === 1 && run.summary.bootMs.p50 !== null)
          singlePiMs[profile.name] = Math.min(singlePiMs[profile.name] ?? Infinity, run.summary.bootMs.p50);
        const s = run.summary;
        process.stdout.write(
          `  ${profile.name} N=${n} ${server.name}: ${s.booted}/${n} booted, ${s.failedAttempts} failed attempts, p50 ${((s.bootMs.p50 ?? NaN) / 1000).toFixed(1)} s p99 ${((s.bootMs.p99 ?? NaN) / 1000).toFixed(1)} s, ` +
            `goodput ${Math.round(run.goodputOfLink * 100)}% of link, CPU ${run.cpuSeconds.toFixed(1)} s, RSS ${run.peakRssMiB.toFixed(0)} MiB (${((Date.now() - t0) / 1000).toFixed(0)} s)\n`,
        );
        writeReport(report(), outBase); // keep partial results if the session is cut off
      }
      for (const line of summaryLines({ singlePiMs, runs: runs.filter((r) => r.profile === profile.name && r.pis === n) })) {
        process.stdout.write(`${line}\n`);
      }
    }
  }
} finally {
  await storm.close();
  rmSync(workDir, { recursive: true, force: true });
  rmSync(tftpRoot, { recursive: true, force: true });
}
const files = writeReport(report(), outBase);
const elapsed = (Date.now() - started.getTime()) / 1000;
process.stdout.write(
  `boot-storm: ${runs.length} runs in ${elapsed.toFixed(0)} s; T_min uses ${(B / 1e6).toFixed(2)} MB per boot; wrote ${files.map((f) => f.replace(repoRoot, '')).join(', ')}\n`,
);
