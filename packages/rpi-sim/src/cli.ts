import { writeFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { PI_MODELS, isPiModel, type PiModel } from '@iot-tofu/rpi';
import { behaviourFor } from './behaviour.js';
import { NetworkLink } from './network-link.js';
import { runBootStorm, simulatedIdentities, type StormResult } from './storm.js';
import { formatEvent } from './timeline.js';

export interface CliIo {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

const integer = (min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
  return n;
};
const ipv4 = (value: string) => {
  const parts = value.split('.');
  if (parts.length !== 4 || !parts.every((p) => /^\d{1,3}$/.test(p) && Number(p) <= 255))
    throw new InvalidArgumentError('expected an IPv4 address like 10.77.0.2');
  return value;
};
const model = (value: string): PiModel => {
  if (!isPiModel(value)) throw new InvalidArgumentError(`expected one of ${PI_MODELS.join(', ')}`);
  return value;
};

/** Adds `offset` to the last octets of a dotted quad (10.77.1.250 + 10 = 10.77.2.4). */
export function addToIpv4(address: string, offset: number): string {
  const value = address.split('.').reduce((sum, part) => sum * 256 + Number(part), 0) + offset;
  return [24, 16, 8, 0].map((shift) => Math.floor(value / 2 ** shift) % 256).join('.');
}

/** `rpi-sim`: boots simulated Pis against a real network and prints their timelines. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<number> {
  const program = new Command('rpi-sim')
    .description('Simulated Raspberry Pi network bootloaders: power on N Pis together and watch them boot over DHCP + TFTP.')
    .option('--pis <n>', 'how many Pis to power on together', integer(1, 5000), 1)
    .addOption(new Option('--model <model>', 'Pi model').argParser(model).default('pi4'))
    .option('--server <ip>', 'TFTP server to use whatever the offer says (EEPROM TFTP_IP)', ipv4)
    .option('--static-ip <first>', 'skip DHCP: Pi i uses <first>+i (the address must exist here; needs --server)', ipv4)
    .option('--first-index <n>', 'index of the first Pi (serials and MACs derive from it)', integer(0, 65535), 0)
    .option('--limit <seconds>', 'stop the run after this long; Pis not booted by then never booted', integer(1, 86_400), 300)
    .option('--spread <ms>', 'spread the power-on of the Pis over this many ms', integer(0, 600_000), 0)
    .option('--max-attempts <n>', 'boot attempts per Pi before it gives up (NET_BOOT_MAX_RETRIES + 1)', integer(1, 1000))
    .option('--file-timeout <ms>', 'TFTP_FILE_TIMEOUT', integer(5000, 600_000))
    .option('--tftp-port <port>', 'TFTP server port', integer(1, 65535), 69)
    .option('--dhcp-client-port <port>', 'DHCP client port to send from / listen on', integer(1, 65535), 68)
    .option('--dhcp-server-port <port>', 'DHCP server port', integer(1, 65535), 67)
    .option('--json <file>', 'write the full result (summary + every timeline) as JSON; - for stdout')
    .option('--quiet', 'print only the summary')
    .exitOverride()
    .configureOutput({ writeOut: io.stdout, writeErr: io.stderr });

  try {
    program.parse(argv, { from: 'user' });
  } catch (error) {
    const code = (error as { exitCode?: number }).exitCode;
    return code === 0 ? 0 : 64;
  }
  const opts = program.opts<{
    pis: number;
    model: PiModel;
    server?: string;
    staticIp?: string;
    firstIndex: number;
    limit: number;
    spread: number;
    maxAttempts?: number;
    fileTimeout?: number;
    tftpPort: number;
    dhcpClientPort: number;
    dhcpServerPort: number;
    json?: string;
    quiet?: boolean;
  }>();
  if (opts.staticIp && !opts.server) {
    io.stderr('rpi-sim: --static-ip needs --server (a Pi without DHCP only knows its TFTP server from TFTP_IP)\n');
    return 64;
  }

  const pis = simulatedIdentities(opts.pis, opts.model, opts.firstIndex);
  const indexOf = new Map(pis.map((p, i) => [p.serial, i]));
  const link = new NetworkLink({
    tftpPort: opts.tftpPort,
    dhcp: { port: opts.dhcpClientPort, serverPort: opts.dhcpServerPort },
    ...(opts.staticIp && opts.server
      ? { staticAddress: (pi) => ({ address: addToIpv4(opts.staticIp!, indexOf.get(pi.serial) ?? 0), tftpServer: opts.server! }) }
      : {}),
  });
  try {
    await link.start();
  } catch (error) {
    io.stderr(`rpi-sim: ${(error as Error).message}\n`);
    return 69;
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  let result: StormResult;
  try {
    result = await runBootStorm({
      pis,
      link,
      limitMs: opts.limit * 1000,
      powerOnSpreadMs: opts.spread,
      signal: stop.signal,
      ...(opts.server ? { tftpServer: opts.server } : {}),
      ...(opts.maxAttempts ? { maxAttempts: opts.maxAttempts } : {}),
      ...(opts.fileTimeout ? { behaviour: (pi) => behaviourFor(pi.model, { fileTimeoutMs: opts.fileTimeout! }) } : {}),
      onReport: (report) => {
        if (opts.quiet || opts.json === '-') return;
        const status = report.bootMs === undefined ? 'never booted' : `booted in ${(report.bootMs / 1000).toFixed(2)} s`;
        io.stdout(`${report.name} serial ${report.serial} mac ${report.mac}: ${status}, ${report.failures.length} failed attempts\n`);
        for (const event of report.timeline) io.stdout(`  ${formatEvent(event)}\n`);
      },
    });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    link.close();
  }
  const s = result.summary;
  const ms = (v: number | null) => (v === null ? '-' : `${(v / 1000).toFixed(2)} s`);
  const summary =
    `summary: ${s.booted}/${s.pis} booted, ${s.neverBooted} never booted, ${s.failedAttempts} failed attempts ` +
    `(dhcp-timeout ${s.failuresByReason['dhcp-timeout']}, file-timeout ${s.failuresByReason['file-timeout']}, file-error ${s.failuresByReason['file-error']}), ` +
    `boot p50 ${ms(s.bootMs.p50)} p99 ${ms(s.bootMs.p99)} max ${ms(s.bootMs.max)}, ` +
    `${(s.usefulBytes / 1e6).toFixed(1)} MB useful, ${(s.wastedBytes / 1e6).toFixed(1)} MB wasted, ${link.droppedDhcp} stray DHCP datagrams, run ${ms(s.elapsedMs)}\n`;
  if (opts.json) {
    const text = `${JSON.stringify({ summary: s, droppedDhcp: link.droppedDhcp, reports: result.reports }, null, 1)}\n`;
    if (opts.json === '-') io.stdout(text);
    else writeFileSync(opts.json, text);
  }
  if (opts.json === '-') io.stderr(summary);
  else io.stdout(summary);
  return s.neverBooted === 0 ? 0 : 2;
}
