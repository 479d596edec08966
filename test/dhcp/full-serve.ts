/**
 * Test-only full-DHCP boot server: our DHCP server in full mode (pool, lease file, ping conflict
 * check, start-up probe) plus (optionally) the project's TftpServer, run inside a lab namespace with
 * `[process.execPath, ...tsNodeArgs, 'test/dhcp/full-serve.ts', JSON config]`. Prints one JSON line
 * per event and `{"event":"ready",…}` once bound; a refused start prints its one-line error on
 * stderr and exits 2; SIGTERM prints the stats and closes everything.
 */
import { LeasePool, LeaseStore, ProxyDhcpServer, pingConflictCheck, type PiAnswerMode, type PxeBootFiles } from '@iot-tofu/dhcp';
import { FileSource, TftpServer } from '@iot-tofu/tftp';

export interface FullServeConfig {
  serverIp: string;
  range: [string, string];
  netmask: string;
  router?: string;
  dns?: string[];
  leaseTimeSec?: number;
  stateDir: string;
  answer: PiAnswerMode;
  registeredMacs?: string[];
  registeredSerials?: string[];
  /** Static addresses by MAC (what the fleet would hand in through staticAddressFor). */
  statics?: Record<string, string>;
  pxe?: PxeBootFiles;
  pi3RepeatDelayMs?: number;
  tftpRoot?: string;
  conflictCheck?: boolean;
  /** Start-up probe wait in ms; 0 = no probe. */
  probeMs?: number;
  quiet?: boolean;
}

const config = JSON.parse(process.argv[2] ?? '{}') as FullServeConfig;
const print = (event: string, payload: object = {}) => process.stdout.write(`${JSON.stringify({ event, ...payload })}\n`);

const macs = new Set(config.registeredMacs ?? []);
const serials = new Set(config.registeredSerials ?? []);
const statics = new Map(Object.entries(config.statics ?? {}));
const reserved = new Set(statics.values());
const leaseTimeSec = config.leaseTimeSec ?? 3600;
const dhcp = new ProxyDhcpServer({
  serverIp: config.serverIp,
  // 4011 as in proxy mode: edk2 asks there for its boot file (PXE "BINL" offer: 60 without 43).
  pxePort: 4011,
  rateLimit: false,
  policy: {
    serverIp: config.serverIp,
    answer: config.answer,
    isRegistered: ({ mac, serial }) => macs.has(mac) || (serial !== undefined && serials.has(serial)),
    pxe: config.pxe ?? {},
    pi3RepeatDelayMs: config.pi3RepeatDelayMs ?? 0,
  },
  full: {
    policy: {
      serverIp: config.serverIp,
      netmask: config.netmask,
      dns: config.dns ?? [],
      leaseTimeSec,
      ...(config.router ? { router: config.router } : {}),
      staticAddressFor: (mac) => statics.get(mac),
    },
    pool: new LeasePool({
      rangeStart: config.range[0],
      rangeEnd: config.range[1],
      netmask: config.netmask,
      serverIp: config.serverIp,
      leaseTimeSec,
      ...(config.router ? { router: config.router } : {}),
      isReserved: (address) => reserved.has(address),
    }),
    store: LeaseStore.inStateDir(config.stateDir),
    conflictCheck: config.conflictCheck === false ? false : pingConflictCheck({ onError: (address, detail) => print('check-error', { address, detail }) }),
    probe: config.probeMs === 0 ? false : { ...(config.probeMs ? { timeoutMs: config.probeMs } : {}) },
  },
});
if (!config.quiet) {
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
