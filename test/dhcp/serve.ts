/**
 * Test-only boot server: our ProxyDhcpServer plus (optionally) the project's TftpServer, run inside
 * a lab namespace with `[process.execPath, ...tsNodeArgs, 'test/dhcp/serve.ts', JSON config]`.
 * Prints one JSON line per event on stdout and `{"event":"ready",…}` once every socket is bound;
 * SIGTERM closes everything.
 */
import { ProxyDhcpServer, type PiAnswerMode, type PxeBootFiles } from '@iot-tofu/dhcp';
import { FileSource, TftpServer } from '@iot-tofu/tftp';

export interface ServeConfig {
  serverIp: string;
  answer: PiAnswerMode;
  registeredMacs?: string[];
  registeredSerials?: string[];
  pxe?: PxeBootFiles;
  pi3RepeatDelayMs?: number;
  option66?: string;
  /** Serve TFTP from this root on serverIp:69. */
  tftpRoot?: string;
  dhcpPort?: number;
  pxePort?: number;
  rateLimit?: false;
  /** Print offer-sent/pi-seen/ignored events (off for floods). */
  quiet?: boolean;
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServeConfig;
const print = (event: string, payload: object = {}) => process.stdout.write(`${JSON.stringify({ event, ...payload })}\n`);

const macs = new Set(config.registeredMacs ?? []);
const serials = new Set(config.registeredSerials ?? []);
const dhcp = new ProxyDhcpServer({
  serverIp: config.serverIp,
  ...(config.dhcpPort === undefined ? {} : { dhcpPort: config.dhcpPort }),
  ...(config.pxePort === undefined ? {} : { pxePort: config.pxePort }),
  ...(config.rateLimit === false ? { rateLimit: false as const } : {}),
  policy: {
    serverIp: config.serverIp,
    answer: config.answer,
    isRegistered: ({ mac, serial }) => macs.has(mac) || (serial !== undefined && serials.has(serial)),
    pxe: config.pxe ?? {},
    pi3RepeatDelayMs: config.pi3RepeatDelayMs ?? 0,
    ...(config.option66 === undefined ? {} : { option66: config.option66 }),
  },
});
if (!config.quiet) {
  dhcp.on('pi-seen', (e) => print('pi-seen', e));
  dhcp.on('offer-sent', (e) => print('offer-sent', e));
  dhcp.on('ignored', (e) => print('ignored', e));
}
dhcp.on('dropped', (e) => print('dropped', e));

let tftp: TftpServer | undefined;
if (config.tftpRoot) {
  tftp = new TftpServer({ address: config.serverIp, port: 69, source: new FileSource({ root: config.tftpRoot, sharedFolder: null }) });
  tftp.on('file-served', (e) => print('file-served', e));
}

const sockets = await dhcp.start();
const tftpAddress = tftp ? await tftp.start() : undefined;
print('ready', { sockets, tftp: tftpAddress });

let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  print('stats', { dhcp: dhcp.stats, tftp: tftp?.stats });
  await Promise.all([dhcp.close(), tftp?.close()]);
  process.exit(0);
}
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
