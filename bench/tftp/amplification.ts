/**
 * Spoofed-source amplification (issue 19): one RRQ whose "client" never answers (as a victim of a
 * forged source would not), and every byte the server then sends to it, as IP bytes out / IP
 * bytes in (UDP payload + 28). Ours (daemon defaults), dnsmasq and tftpd-hpa in the same run, on
 * three addresses of one namespace; a plain RRQ and one with options (blksize, tsize → OACK).
 *   sudo node --conditions=@iot-tofu/source --import tsx bench/tftp/amplification.ts [WAIT_S]
 * TOFU_SERVE=FILE runs another server launcher as "ours" (an older checkout's, for a before figure).
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, repoRoot, tsNodeArgs, waitForOutput } from '../../test/lab/index.js';

const waitS = Math.min(Number(process.argv[2] ?? process.env.WAIT_S ?? '60'), 120);
const SERVERS = { ours: '10.77.8.1', dnsmasq: '10.77.8.3', 'tftpd-hpa': '10.77.8.4' } as const;
const VICTIM = '10.77.8.2';

if (process.argv[2] === '--victim') {
  // Inside the client namespace: one RRQ per (server, kind), count what comes back, print JSON.
  const [, , , servers, wait] = process.argv;
  const targets = JSON.parse(servers!) as Record<string, string>;
  const { encodeTftpPacket } = await import('@iot-tofu/tftp');
  const requests = {
    plain: encodeTftpPacket({ type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: {} }),
    options: encodeTftpPacket({ type: 'rrq', filename: 'kernel8.img', mode: 'octet', options: { blksize: '1468', tsize: '0' } }),
  };
  const results: Record<string, { sentBytes: number; receivedBytes: number; packets: number; ratio: number }> = {};
  await Promise.all(
    Object.entries(targets).flatMap(([name, address]) =>
      Object.entries(requests).map(async ([kind, rrq]) => {
        const socket = createSocket('udp4');
        await new Promise<void>((resolve) => socket.bind(0, VICTIM, resolve));
        let receivedBytes = 0;
        let packets = 0;
        socket.on('message', (msg) => {
          receivedBytes += msg.length + 28;
          packets++;
        });
        socket.send(rrq, 69, address);
        await new Promise((r) => setTimeout(r, Number(wait) * 1000));
        socket.close();
        const sentBytes = rrq.length + 28;
        results[`${name}/${kind}`] = { sentBytes, receivedBytes, packets, ratio: Math.round((receivedBytes / sentBytes) * 10) / 10 };
      }),
    ),
  );
  process.stdout.write(`${JSON.stringify(results)}\n`);
  process.exit(0);
}

const work = mkdtempSync(join(tmpdir(), 'tofu-amp-'));
chmodSync(work, 0o755);
const root = join(work, 'root');
mkdirSync(root, { mode: 0o755 });
writeFileSync(join(root, 'kernel8.img'), randomBytes(1_000_000), { mode: 0o644 });
const lab = await Lab.create([
  { name: 'srv', address: `${SERVERS.ours}/24` },
  { name: 'cli', address: `${VICTIM}/24` },
]);
try {
  for (const address of [SERVERS.dnsmasq, SERVERS['tftpd-hpa']])
    await lab.run('srv', 'ip', ['addr', 'add', `${address}/24`, 'dev', 'eth0']);
  const ours = lab.spawn(
    'srv',
    process.execPath,
    [...tsNodeArgs, process.env.TOFU_SERVE ?? join(repoRoot, 'bench/tftp/serve-defaults.ts'), root, SERVERS.ours, '69'],
    { cwd: repoRoot },
  );
  await waitForOutput(ours, /listening/, 30_000);
  lab.spawn('srv', 'dnsmasq', [
    '--conf-file=/dev/null',
    '--no-daemon',
    '--port=0',
    `--listen-address=${SERVERS.dnsmasq}`,
    '--bind-interfaces',
    '--enable-tftp',
    `--tftp-root=${root}`,
    '--log-facility=-',
    '--pid-file=',
  ]);
  lab.spawn('srv', 'in.tftpd', ['--foreground', '--listen', '--address', `${SERVERS['tftpd-hpa']}:69`, '--secure', root]);
  await new Promise((r) => setTimeout(r, 1000));
  const run = await lab.run(
    'cli',
    process.execPath,
    [...tsNodeArgs, join(repoRoot, 'bench/tftp/amplification.ts'), '--victim', JSON.stringify(SERVERS), String(waitS)],
    { cwd: repoRoot, timeoutMs: (waitS + 30) * 1000 },
  );
  if (run.code !== 0) throw new Error(run.stderr);
  const results = JSON.parse(run.stdout) as Record<string, { ratio: number }>;
  const vs = (kind: string, peer: string) => Math.round((results[`ours/${kind}`]!.ratio / results[`${peer}/${kind}`]!.ratio) * 100) / 100;
  process.stdout.write(
    `${JSON.stringify({ waitS, results, oursOver: { dnsmasqPlain: vs('plain', 'dnsmasq'), tftpdHpaPlain: vs('plain', 'tftpd-hpa'), dnsmasqOptions: vs('options', 'dnsmasq'), tftpdHpaOptions: vs('options', 'tftpd-hpa') } })}\n`,
  );
} finally {
  await lab.close();
  rmSync(work, { recursive: true, force: true });
}
