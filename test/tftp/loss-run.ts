/**
 * Downloads through a lossy LAN (issue 19 item 9): a server namespace and a client namespace,
 * each dropping `lossPercent` of arriving UDP with an nftables `numgen random` rule (this kernel
 * has no netem), our server (bench/tftp/serve-defaults.ts: the daemon's defaults) and tftpd-hpa
 * side by side on two addresses of the server namespace, and real clients run one download at a
 * time against each in turn. A client that does not exit within `hangMs` is killed and counted as
 * hung. Used by test/tftp/loss.test.ts and bench/tftp/loss.ts.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
  downloads: number;
  bytes: number;
  ours: Record<string, LossTally>;
  tftpdHpa: Record<string, LossTally>;
}

const OURS = '10.77.9.1';
const HPA = '10.77.9.3';
const CLIENT = '10.77.9.2';

export async function runLossyDownloads(options: { lossPercent: number; downloads: number; bytes: number; clients: LossClient[]; hangMs: number; serve?: string; progress?: (line: string) => void }): Promise<LossResult> {
  const work = mkdtempSync(join(tmpdir(), 'tofu-loss-'));
  chmodSync(work, 0o755);
  const root = join(work, 'root');
  const data = randomBytes(options.bytes);
  const sha = createHash('sha256').update(data).digest('hex');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(root, { mode: 0o755 });
  writeFileSync(join(root, 'kernel.img'), data, { mode: 0o644 });
  const lab = await Lab.create([
    { name: 'srv', address: `${OURS}/24` },
    { name: 'cli', address: `${CLIENT}/24` },
  ]);
  try {
    await lab.run('srv', 'ip', ['addr', 'add', `${HPA}/24`, 'dev', 'eth0']);
    for (const host of ['srv', 'cli']) {
      const rules = `table inet loss {\n chain in {\n  type filter hook input priority 0;\n  meta l4proto udp numgen random mod 100 < ${Math.round(options.lossPercent)} drop\n }\n}\n`;
      const applied = await lab.run(host, 'nft', ['-f', '-'], { input: rules });
      if (applied.code !== 0) throw new Error(`nft failed: ${applied.stderr}`);
    }
    const ours = lab.spawn('srv', process.execPath, [...tsNodeArgs, options.serve ?? join(repoRoot, 'bench/tftp/serve-defaults.ts'), root, OURS, '69'], { cwd: repoRoot });
    await waitForOutput(ours, /listening/, 30_000);
    lab.spawn('srv', 'in.tftpd', ['--foreground', '--listen', '--address', `${HPA}:69`, '--secure', root]);
    await new Promise((r) => setTimeout(r, 500));
    const tally = () => Object.fromEntries(options.clients.map((c) => [c, { ok: 0, corrupt: 0, failed: 0, hung: 0, ms: [] as number[], errors: [] as string[] }])) as Record<string, LossTally>;
    const result: LossResult = { lossPercent: options.lossPercent, downloads: options.downloads, bytes: options.bytes, ours: tally(), tftpdHpa: tally() };
    for (let i = 0; i < options.downloads; i++) {
      for (const client of options.clients) {
        for (const [server, into] of [[OURS, result.ours], [HPA, result.tftpdHpa]] as const) {
          const out = join(work, `got-${client}-${server}-${i}`);
          const [command, args] = clientCommand(client, server, out);
          const started = Date.now();
          const run = await lab.run('cli', command, args, { timeoutMs: options.hangMs });
          const t = into[client]!;
          const said = `${run.stdout}${run.stderr}`.trim().split('\n').slice(process.env.TOFU_ATFTP_TRACE ? -14 : -2).join(' | ').slice(0, process.env.TOFU_ATFTP_TRACE ? 2000 : 200);
          if (run.signal) t.hung++;
          else if (run.code !== 0) t.failed++;
          if (run.signal || run.code !== 0) t.errors.push(said);
          else {
            let got = '';
            try {
              got = createHash('sha256').update(readFileSync(out)).digest('hex');
            } catch {
              // no file
            }
            if (got === sha) {
              t.ok++;
              t.ms.push(Date.now() - started);
            } else t.corrupt++;
          }
          rmSync(out, { force: true });
          options.progress?.(`${i + 1}/${options.downloads} ${client} ${server === OURS ? 'ours' : 'tftpd-hpa'}: ${run.signal ? 'hung' : run.code === 0 ? 'done' : `exit ${run.code}`} in ${Date.now() - started} ms`);
        }
      }
    }
    return result;
  } finally {
    await lab.close();
    rmSync(work, { recursive: true, force: true });
  }
}

function clientCommand(client: LossClient, server: string, out: string): [string, string[]] {
  switch (client) {
    case 'atftp':
      return ['atftp', [...(process.env.TOFU_ATFTP_TRACE ? ['--trace', '--verbose'] : []), '--option', 'blksize 1024', '--option', 'tsize 0', '-g', '-r', 'kernel.img', '-l', out, server, '69']];
    case 'tftp-hpa':
      return ['tftp', ['-m', 'binary', server, '-c', 'get', 'kernel.img', out]];
    case 'curl':
      return ['curl', ['-sS', '--tftp-blksize', '1468', '-o', out, `tftp://${server}/kernel.img`]];
    case 'busybox':
      return ['busybox', ['tftp', '-b', '1468', '-g', '-r', 'kernel.img', '-l', out, server]];
  }
}
