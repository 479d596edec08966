/**
 * Test-only boot server: our DHCP server in proxy mode (beside a site DHCP server) or in full mode
 * (pool, lease file, ping conflict check, start-up probe), plus (optionally) the project's
 * TftpServer, run inside a lab namespace with
 *   `[process.execPath, ...tsNodeArgs, 'test/dhcp/serve.ts', JSON config]`   (see serveArgs in lab.ts)
 * Prints one JSON line per event on stdout and `{"event":"ready",…}` once every socket is bound; a
 * refused start prints its one-line error on stderr and exits 2; SIGTERM prints the stats and
 * closes everything.
 */
import { LeasePool, LeaseStore, ProxyDhcpServer, pingConflictCheck } from '@iot-tofu/dhcp';
import type { FullModeOptions, PiAnswerMode, PxeBootFiles } from '@iot-tofu/dhcp';
import { FileSource, TftpServer } from '@iot-tofu/tftp';

interface CommonServeConfig {
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
  /** Print pi-seen/offer-sent/ignored/lease events (off for floods). */
  quiet?: boolean;
}

/** Proxy mode: Pi and PXE boot offers only; a site DHCP server hands out the addresses. */
export interface ProxyServeConfig extends CommonServeConfig {
  mode?: 'proxy';
}

/** Full mode: our server is the segment's only DHCP server (docs/design.md, full-DHCP mode). */
export interface FullServeConfig extends CommonServeConfig {
  mode: 'full';
  range: [string, string];
  netmask: string;
  router?: string;
  dns?: string[];
  leaseTimeSec?: number;
  stateDir: string;
  /** Static addresses by MAC (what the fleet would hand in through staticAddressFor). */
  statics?: Record<string, string>;
  conflictCheck?: boolean;
  /** Start-up probe wait in ms; 0 = no probe. */
  probeMs?: number;
}

export type ServeConfig = ProxyServeConfig | FullServeConfig;

function fullMode(config: FullServeConfig, print: (event: string, payload: object) => void): FullModeOptions {
  const statics = new Map(Object.entries(config.statics ?? {}));
  const reserved = new Set(statics.values());
  const leaseTimeSec = config.leaseTimeSec ?? 3600;
  const router = config.router ? { router: config.router } : {};
  const checkError = (address: string, detail: string) => print('check-error', { address, detail });
  return {
    policy: {
      serverIp: config.serverIp,
      netmask: config.netmask,
      dns: config.dns ?? [],
      leaseTimeSec,
      ...router,
      staticAddressFor: (mac) => statics.get(mac),
    },
    pool: new LeasePool({
      rangeStart: config.range[0],
      rangeEnd: config.range[1],
      netmask: config.netmask,
      serverIp: config.serverIp,
      leaseTimeSec,
      ...router,
      isReserved: (address) => reserved.has(address),
    }),
    store: LeaseStore.inStateDir(config.stateDir),
    conflictCheck: config.conflictCheck === false ? false : pingConflictCheck({ onError: checkError }),
    probe: config.probeMs === 0 ? false : { ...(config.probeMs ? { timeoutMs: config.probeMs } : {}) },
  };
}

const config = JSON.parse(process.argv[2] ?? '{}') as ServeConfig;
const print = (event: string, payload: object = {}) => process.stdout.write(`${JSON.stringify({ event, ...payload })}\n`);

const macs = new Set(config.registeredMacs ?? []);
const serials = new Set(config.registeredSerials ?? []);
// Full mode is never throttled (bench/dhcp-full.ts floods it: the pool is what is measured).
const rateLimit = config.rateLimit === false || config.mode === 'full' ? { rateLimit: false as const } : {};
const dhcp = new ProxyDhcpServer({
  serverIp: config.serverIp,
  ...(config.dhcpPort === undefined ? {} : { dhcpPort: config.dhcpPort }),
  // Full mode keeps 4011 as in proxy mode: edk2 asks there for its boot file (PXE "BINL" offer).
  ...(config.pxePort === undefined ? {} : { pxePort: config.pxePort }),
  ...rateLimit,
  policy: {
    serverIp: config.serverIp,
    answer: config.answer,
    isRegistered: ({ mac, serial }) => macs.has(mac) || (serial !== undefined && serials.has(serial)),
    pxe: config.pxe ?? {},
    pi3RepeatDelayMs: config.pi3RepeatDelayMs ?? 0,
    ...(config.option66 === undefined ? {} : { option66: config.option66 }),
  },
  ...(config.mode === 'full' ? { full: fullMode(config, print) } : {}),
});
if (!config.quiet) {
  dhcp.on('pi-seen', (e) => print('pi-seen', e));
  dhcp.on('offer-sent', (e) => print('offer-sent', e));
  dhcp.on('ignored', (e) => print('ignored', e));
  dhcp.on('lease', (e) => print('lease', e));
}
dhcp.on('dropped', (e) => print('dropped', e));

let tftp: TftpServer | undefined;
if (config.tftpRoot) {
  tftp = new TftpServer({ address: config.serverIp, port: 69, source: new FileSource({ root: config.tftpRoot, sharedFolder: null }) });
  tftp.on('file-served', (e) => print('file-served', e));
}

try {
  const sockets = await dhcp.start();
  const tftpAddress = tftp ? await tftp.start() : undefined;
  print('ready', { sockets, tftp: tftpAddress });
} catch (error) {
  process.stderr.write(`${(error as Error).message}\n`);
  await Promise.all([dhcp.close(), tftp?.close()]);
  process.exit(2);
}

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
