/**
 * Downloads through a lossy LAN (issue 19 item 9): a server namespace and a client namespace, our
 * server (bench/tftp/serve-defaults.ts: the daemon's defaults) and tftpd-hpa side by side on two
 * addresses of the server namespace, and real clients downloading from each. Used by
 * test/tftp/loss.test.ts and bench/tftp/loss.ts.
 *
 * The kernel here has no sch_netem, so both impairments are nftables rules in each namespace
 * (`lossRules`): `numgen random` drops `lossPercent` of arriving UDP in the input hook, and a
 * netdev egress chain on eth0 sends `dupPercent` of leaving UDP twice (`dup to "eth0"`; the copy
 * does not pass the egress hook again). Each copy then meets the receiver's loss on its own.
 *
 * Every download is its own client process, bounded by `hangMs` (killed and counted as hung
 * past it). Each server's downloads come from their own client namespace: a client port that the
 * kernel hands out again must not receive a lingering transfer of the other server (tftpd-hpa
 * retransmits a lost final ACK's DATA for up to 63 s, and atftp takes the first packet that
 * arrives as its server's). `parallel` downloads run at once per server, the same for both servers, so a run of
 * many downloads takes minutes, not an hour (tftpd-hpa needs 10-60 s per download at 15 % loss).
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, repoRoot, tsNodeArgs, waitForOutput } from '../lab/index.js';

export type LossClient = 'atftp' | 'tftp-hpa' | 'curl' | 'busybox';
export interface LossTally {
  ok: number;
  corrupt: number;
  failed: number;
  hung: number;
  ms: number[];
  /** Last lines of what failed or hung runs printed. */
  errors: string[];
}
export interface LossResult {
  lossPercent: number;
  dupPercent: number;
  downloads: number;
  parallel: number;
  bytes: number;
  ours: Record<string, LossTally>;
  tftpdHpa: Record<string, LossTally>;
}
export interface LossOptions {
  lossPercent: number;
  /** Share of leaving UDP sent twice (default 0). */
  dupPercent?: number;
  /** Downloads per client kind and server. */
  downloads: number;
  /** Downloads running at once per server (default 1). */
  parallel?: number;
  bytes: number;
  clients: LossClient[];
  hangMs: number;
  /** Launcher run as "ours" (default bench/tftp/serve-defaults.ts). */
  serve?: string;
  progress?: (line: string) => void;
}

const OURS = '10.77.9.1';
const HPA = '10.77.9.3';
const CLIENT = '10.77.9.2';
const HPA_CLIENT = '10.77.9.4';

/** The nftables ruleset of one namespace: loss on arrival, duplication on departure. */
export function lossRules(lossPercent: number, dupPercent: number): string {
  // 'dup' is an nft keyword: the table is named 'twice'.
  const drop = `table inet loss {\n chain in {\n  type filter hook input priority 0;\n  meta l4proto udp numgen random mod 100 < ${Math.round(lossPercent)} drop\n }\n}\n`;
  const dup = `table netdev twice {\n chain out {\n  type filter hook egress device "eth0" priority 0;\n  meta l4proto udp numgen random mod 100 < ${Math.round(dupPercent)} dup to "eth0"\n }\n}\n`;
  return dupPercent > 0 ? drop + dup : drop;
}

export async function runLossyDownloads(options: LossOptions): Promise<LossResult> {
  const dupPercent = options.dupPercent ?? 0;
  const parallel = Math.max(1, options.parallel ?? 1);
  const work = mkdtempSync(join(tmpdir(), 'tofu-loss-'));
  chmodSync(work, 0o755);
  const root = join(work, 'root');
  const data = randomBytes(options.bytes);
  const sha = createHash('sha256').update(data).digest('hex');
  mkdirSync(root, { mode: 0o755 });
  writeFileSync(join(root, 'kernel.img'), data, { mode: 0o644 });
  const lab = await Lab.create([
    { name: 'srv', address: `${OURS}/24` },
    { name: 'cli', address: `${CLIENT}/24` },
    { name: 'clh', address: `${HPA_CLIENT}/24` },
  ]);
  try {
    await lab.run('srv', 'ip', ['addr', 'add', `${HPA}/24`, 'dev', 'eth0']);
    for (const host of ['srv', 'cli', 'clh']) {
      const applied = await lab.run(host, 'nft', ['-f', '-'], { input: lossRules(options.lossPercent, dupPercent) });
      if (applied.code !== 0) throw new Error(`nft failed: ${applied.stderr}`);
    }
    const ours = lab.spawn(
      'srv',
      process.execPath,
      [...tsNodeArgs, options.serve ?? join(repoRoot, 'bench/tftp/serve-defaults.ts'), root, OURS, '69'],
      { cwd: repoRoot },
    );
    await waitForOutput(ours, /listening/, 30_000);
    lab.spawn('srv', 'in.tftpd', ['--foreground', '--listen', '--address', `${HPA}:69`, '--secure', root]);
    await new Promise((r) => setTimeout(r, 500));
    const tally = () =>
      Object.fromEntries(
        options.clients.map((c) => [c, { ok: 0, corrupt: 0, failed: 0, hung: 0, ms: [] as number[], errors: [] as string[] }]),
      ) as Record<string, LossTally>;
    const result: LossResult = {
      lossPercent: options.lossPercent,
      dupPercent,
      downloads: options.downloads,
      parallel,
      bytes: options.bytes,
      ours: tally(),
      tftpdHpa: tally(),
    };

    let seq = 0;
    const download = async (client: LossClient, server: string, into: Record<string, LossTally>): Promise<void> => {
      const out = join(work, `got-${seq++}`);
      const [command, args] = clientCommand(client, server, out);
      const started = Date.now();
      const run = await lab.run(server === OURS ? 'cli' : 'clh', command, args, { timeoutMs: options.hangMs });
      const t = into[client]!;
      const said = `${run.stdout}${run.stderr}`.trim().split('\n').slice(-2).join(' | ').slice(0, 200);
      if (run.signal) t.hung++;
      else if (run.code !== 0) t.failed++;
      if (run.signal || run.code !== 0) t.errors.push(said);
      else if (sha256Of(out) === sha) {
        t.ok++;
        t.ms.push(Date.now() - started);
      } else t.corrupt++;
      rmSync(out, { force: true });
      const verdict = run.signal ? 'hung' : run.code === 0 ? 'done' : `exit ${run.code}`;
      options.progress?.(`${client} ${server === OURS ? 'ours' : 'tftpd-hpa'}: ${verdict} in ${Date.now() - started} ms`);
    };
    for (const client of options.clients) {
      // Both servers at once, `parallel` downloads each: the same network dice, the same load.
      const lane = async (server: string, into: Record<string, LossTally>): Promise<void> => {
        let next = 0;
        const worker = async () => {
          while (next < options.downloads) {
            next++;
            await download(client, server, into);
          }
        };
        await Promise.all(Array.from({ length: Math.min(parallel, options.downloads) }, worker));
      };
      await Promise.all([lane(OURS, result.ours), lane(HPA, result.tftpdHpa)]);
    }
    return result;
  } finally {
    await lab.close();
    rmSync(work, { recursive: true, force: true });
  }
}

function sha256Of(file: string): string {
  try {
    return createHash('sha256').update(readFileSync(file)).digest('hex');
  } catch {
    return ''; // no file
  }
}

function clientCommand(client: LossClient, server: string, out: string): [string, string[]] {
  switch (client) {
    case 'atftp':
      return ['atftp', ['--option', 'blksize 1024', '--option', 'tsize 0', '-g', '-r', 'kernel.img', '-l', out, server, '69']];
    case 'tftp-hpa':
      return ['tftp', ['-m', 'binary', server, '-c', 'get', 'kernel.img', out]];
    case 'curl':
      return ['curl', ['-sS', '--tftp-blksize', '1468', '-o', out, `tftp://${server}/kernel.img`]];
    case 'busybox':
      return ['busybox', ['tftp', '-b', '1468', '-g', '-r', 'kernel.img', '-l', out, server]];
  }
}
