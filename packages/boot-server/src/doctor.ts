import { readdir, readFile, readlink, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { processAlive, type CommandRunner } from '@iot-tofu/host-io';
import { nfsHealth, type NfsHealth } from '@iot-tofu/nfs-server-lite';
import { nativeSocketStatus } from '@iot-tofu/tftp';
import type { BootServerConfig } from './config.js';
import { SERVICE_USER, UNIT_PATH, below, defaultWhich } from './install.js';
import { redactUrl } from './mqtt/index.js';
import { RUNTIME_FILE, describeMqtt, fetchHealth, mqttHealthOf, type RuntimeFile } from './status.js';

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface DoctorCheck {
  name: string;
  status: CheckStatus;
  detail: string;
}

/**
 * What a Raspberry Pi 4/5 bootloader must say for our layout (Raspberry Pi documentation,
 * "Raspberry Pi bootloader configuration"): BOOT_ORDER is read right to left, 1 = SD card,
 * 2 = network, f = start over; TFTP_PREFIX=0 makes the Pi ask for `<serial>/start4.elf`, the
 * folder `pxetools --add` creates under the TFTP root.
 */
export const EEPROM_SETTINGS = [
  { line: 'BOOT_ORDER=0xf21', why: 'SD card first, then network boot, then start over (0xf2: network only)' },
  {
    line: 'TFTP_PREFIX=0',
    why: 'TFTP folder = the serial (8 hex digits), the <tftpRoot>/<serial>/ folders pxetools makes (0 is the default)',
  },
] as const;

/** The bootloader advice as text lines (also in --json). */
export function eepromAdvice(): string[] {
  return [
    'Raspberry Pi 4 / 5 bootloader (EEPROM), once per Pi, booted from an SD card with Raspberry Pi OS:',
    '  sudo -E rpi-eeprom-config --edit      # then set these lines, save, reboot',
    ...EEPROM_SETTINGS.map((s) => `    ${s.line.padEnd(18)} # ${s.why}`),
    '  check afterwards: rpi-eeprom-config | grep -E "BOOT_ORDER|TFTP_PREFIX"',
    'Raspberry Pi 3B: network boot is an OTP bit, set once: program_usb_boot_mode=1 in config.txt, boot, then remove the line',
    'Raspberry Pi 3B+: network boot is on from the factory; nothing to set',
  ];
}

/** One socket line of /proc/net/{udp,tcp}{,6}. */
export interface ProcSocket {
  protocol: 'udp' | 'tcp';
  address: string;
  port: number;
  /** Kernel state, hex: 07 = unconnected UDP, 0A = TCP LISTEN. */
  state: string;
  inode: number;
}

function hexIPv4(hex: string): string {
  // Four bytes in host order (little-endian on x86 and ARM).
  const bytes = [0, 2, 4, 6].map((i) => Number.parseInt(hex.slice(i, i + 2), 16)).reverse();
  return bytes.join('.');
}

function hexIPv6(hex: string): string {
  // Four 32-bit words, each in host order.
  const words = [0, 8, 16, 24].map((i) =>
    hex
      .slice(i, i + 8)
      .match(/../g)!
      .reverse()
      .join(''),
  );
  const groups = words
    .join('')
    .match(/..../g)!
    .map((g) => g.replace(/^0+(?=.)/, ''));
  const text = groups.join(':');
  return text === '0:0:0:0:0:0:0:0' ? '::' : text.replace(/(^|:)0(:0)+(:|$)/, '::');
}

/** Parses /proc/net/udp, udp6, tcp or tcp6 (pure). Lines that do not parse are skipped. */
export function parseProcNet(text: string, protocol: 'udp' | 'tcp'): ProcSocket[] {
  const sockets: ProcSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10) continue;
    const [address, port] = fields[1]!.split(':');
    if (!address || !port) continue;
    const inode = Number.parseInt(fields[9]!, 10);
    if (!Number.isInteger(inode)) continue;
    sockets.push({
      protocol,
      address: address.length === 8 ? hexIPv4(address) : hexIPv6(address),
      port: Number.parseInt(port, 16),
      state: fields[3]!.toUpperCase(),
      inode,
    });
  }
  return sockets;
}

export interface PortHolder {
  pid?: number;
  command?: string;
}

/** inode → the process that has the socket open, by walking /proc/<pid>/fd (all of them only as root). */
async function socketOwners(procRoot: string, inodes: ReadonlySet<number>): Promise<Map<number, PortHolder>> {
  const owners = new Map<number, PortHolder>();
  if (inodes.size === 0) return owners;
  const pids = (await readdir(procRoot).catch(() => [] as string[])).filter((name) => /^\d+$/.test(name));
  for (const pid of pids) {
    const fds = await readdir(join(procRoot, pid, 'fd')).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(join(procRoot, pid, 'fd', fd)).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (!match || !inodes.has(Number(match[1])) || owners.has(Number(match[1]))) continue;
      const command = (await readFile(join(procRoot, pid, 'comm'), 'utf8').catch(() => '')).trim();
      owners.set(Number(match[1]), { pid: Number(pid), ...(command ? { command } : {}) });
    }
    if (owners.size === inodes.size) break;
  }
  return owners;
}

/** The sockets bound to `port` (UDP: any; TCP: listening), with their owning process where visible. */
export async function portHolders(procRoot: string, protocol: 'udp' | 'tcp', port: number): Promise<Array<ProcSocket & PortHolder>> {
  const sockets: ProcSocket[] = [];
  for (const file of protocol === 'udp' ? ['udp', 'udp6'] : ['tcp', 'tcp6']) {
    const text = await readFile(join(procRoot, 'net', file), 'utf8').catch(() => '');
    sockets.push(...parseProcNet(text, protocol).filter((s) => s.port === port && (protocol === 'udp' || s.state === '0A')));
  }
  const owners = await socketOwners(procRoot, new Set(sockets.map((s) => s.inode)));
  return sockets.map((s) => ({ ...s, ...owners.get(s.inode) }));
}

export interface DoctorOptions {
  /** The resolved config (serverIp may be missing: that is one of the checks). */
  config: Omit<BootServerConfig, 'serverIp'> & { serverIp?: string };
  configFile?: string;
  /** Why the server IP could not be chosen, when it could not. */
  serverIpProblem?: string;
  /** Filesystem root the service was installed into (default '/'). */
  root?: string;
  procRoot?: string;
  runner?: CommandRunner;
  which?: (program: string) => Promise<string | undefined>;
  /** nfsd state; default nfsHealth() with the runner. */
  nfs?: () => Promise<NfsHealth>;
}

export interface DoctorReport {
  checks: DoctorCheck[];
  eeprom: { settings: Array<{ line: string; why: string }>; advice: string[] };
  /** True when no check failed. */
  ok: boolean;
}

async function isDir(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isDirectory(),
    () => false,
  );
}

async function isFile(path: string): Promise<boolean> {
  return stat(path).then(
    (s) => s.isFile(),
    () => false,
  );
}

/** What the running daemon's /healthz said, or why it said nothing. */
export type DaemonHealth = { running: false } | { running: true; health?: Record<string, unknown>; healthError?: string };

/**
 * The MQTT check (pure): the running daemon's link when it reports one (connected ok, reconnecting
 * a warning: boots are served, events queue and the oldest drop), else what the config asks for.
 */
export function mqttCheck(mqttUrl: string | undefined, daemon: DaemonHealth): { status: CheckStatus; detail: string } {
  const broker = mqttUrl ? redactUrl(mqttUrl) : undefined;
  const mqtt = daemon.running ? mqttHealthOf(daemon.health) : undefined;
  if (daemon.running && daemon.healthError) return { status: 'warn', detail: `the daemon's API did not answer (${daemon.healthError})` };
  if (!mqtt && !broker) return { status: 'ok', detail: 'off (no mqttUrl)' };
  if (!mqtt)
    return { status: 'ok', detail: `${broker} (${daemon.running ? 'the running daemon does not report its link' : 'daemon not running'})` };
  if (mqtt.state === 'off') {
    if (broker) return { status: 'warn', detail: `the running daemon has no broker: restart it to publish to ${broker}` };
    return { status: 'ok', detail: describeMqtt(mqtt) };
  }
  const where = broker ? ` to ${broker}` : '';
  if (mqtt.state === 'connected') return { status: 'ok', detail: `${describeMqtt(mqtt)}${where}` };
  const why = 'the broker does not answer; boots are still served, events wait in a bounded queue (oldest dropped)';
  return { status: 'warn', detail: `${describeMqtt(mqtt)}${where}: ${why}` };
}

function holderText(h: PortHolder): string {
  if (h.pid === undefined) return 'another process (run doctor as root to name it)';
  return `${h.command ?? 'process'} (pid ${h.pid})`;
}

/** Checks what a region's boot server needs, one line each; never throws for a broken machine. */
export async function runDoctor(options: DoctorOptions): Promise<DoctorReport> {
  const { config } = options;
  const root = options.root ?? '/';
  const procRoot = options.procRoot ?? '/proc';
  const which = options.which ?? defaultWhich;
  const checks: DoctorCheck[] = [];
  const add = (name: string, status: CheckStatus, detail: string) => checks.push({ name, status, detail });

  add('config', 'ok', options.configFile ?? 'no config file: defaults (boot-server install writes /etc/iot-tofu/config.json)');
  if (options.serverIpProblem) add('server-ip', 'fail', `${options.serverIpProblem}: set serverIp in the config file or pass --server-ip`);
  else add('server-ip', 'ok', config.serverIp ?? '');

  // The service as `install` left it.
  const unit = await readFile(below(root, `/${UNIT_PATH}`), 'utf8').catch(() => undefined);
  if (unit === undefined) add('service', 'warn', `no ${below(root, `/${UNIT_PATH}`)}: run sudo boot-server install`);
  else {
    const user = /^User=(.+)$/m.exec(unit)?.[1] ?? 'root';
    const passwd = await readFile(below(root, '/etc/passwd'), 'utf8').catch(() => '');
    const known = passwd.split('\n').some((line) => line.startsWith(`${user}:`));
    if (user === 'root')
      add('service', 'warn', 'the unit runs the daemon as root: run sudo boot-server install again for the hardened unit');
    else if (!known) add('service', 'fail', `the unit runs as ${user}, but no such user exists: run sudo boot-server install again`);
    else add('service', 'ok', `unit installed, runs as ${user}${user === SERVICE_USER ? '' : ' (not the default iot-tofu)'}`);
  }

  // Which daemon runs (its own sockets are not a conflict).
  let daemonPid: number | undefined;
  let runtime: RuntimeFile | undefined;
  try {
    runtime = JSON.parse(await readFile(join(config.stateDir, RUNTIME_FILE), 'utf8')) as RuntimeFile;
    if (processAlive(runtime.pid)) daemonPid = runtime.pid;
  } catch {
    // not running
  }
  add(
    'daemon',
    daemonPid ? 'ok' : 'warn',
    daemonPid ? `running (pid ${daemonPid})` : 'not running (systemctl start iot-tofu-boot-server, or boot-server start)',
  );
  let daemon: DaemonHealth = { running: false };
  if (daemonPid && runtime) {
    const live = runtime;
    daemon = await fetchHealth(live).then(
      (health) => ({ running: true, ...(health ? { health } : {}) }),
      (error: unknown) => ({ running: true, healthError: (error as Error).message }),
    );
  }
  // The installed package's own TFTP transfer path (this process loads the same binary the daemon does).
  const sockets = nativeSocketStatus();
  if (sockets.loaded) add('tftp-sockets', 'ok', `native addon (${sockets.path})`);
  else add('tftp-sockets', 'warn', `node:dgram, ${sockets.reason}: transfers work, at a higher CPU cost per block`);
  const mqtt = mqttCheck(config.mqttUrl, daemon);
  add('mqtt', mqtt.status, mqtt.detail);

  const ports: Array<{ name: string; protocol: 'udp' | 'tcp'; port: number; hint: string }> = [];
  if (config.dhcp) {
    ports.push({
      name: 'dhcp',
      protocol: 'udp',
      port: config.dhcpPort,
      hint: 'another DHCP server (dnsmasq?) owns it: stop it, or run boot-server with --no-dhcp (TFTP and the API only)',
    });
    ports.push({ name: 'pxe', protocol: 'udp', port: config.pxePort, hint: 'another PXE server owns it: stop it, or run with --no-dhcp' });
  }
  if (config.tftp)
    ports.push({
      name: 'tftp',
      protocol: 'udp',
      port: config.tftpPort,
      hint: 'another TFTP server (tftpd-hpa, dnsmasq?) owns it: stop and disable it, or run with --no-tftp',
    });
  if (config.apiPort > 0)
    ports.push({ name: 'api', protocol: 'tcp', port: config.apiPort, hint: 'another program listens there: choose another --api-port' });
  for (const p of ports) {
    const label = `port ${p.port}/${p.protocol} (${p.name})`;
    if (p.port === 0) {
      add(label, 'ok', 'any free port');
      continue;
    }
    const holders = await portHolders(procRoot, p.protocol, p.port);
    const foreign = holders.filter((h) => h.pid === undefined || h.pid !== daemonPid);
    if (holders.length === 0) add(label, 'ok', 'free');
    else if (foreign.length === 0) add(label, 'ok', `boot-server (pid ${daemonPid})`);
    else add(label, 'fail', `held by ${[...new Set(foreign.map(holderText))].join(', ')}: ${p.hint}`);
  }

  for (const [key, path, hint] of [
    ['tftpRoot', config.tftpRoot, 'boot-server install creates it'],
    ['nfsRoot', config.nfsRoot, 'boot-server install creates it'],
    ['stateDir', config.stateDir, 'boot-server install creates it, owned by the service user'],
  ] as const) {
    if (await isDir(path)) add(key, 'ok', path);
    else add(key, 'warn', `${path} missing: ${hint}`);
  }

  const nfs = await (options.nfs ?? (() => nfsHealth(options.runner ? { runner: options.runner } : {})))();
  if (!nfs.nfsdRunning) add('nfsd', 'fail', `${nfs.nfsdDetail}: apt-get install nfs-kernel-server && systemctl enable --now nfs-server`);
  else if (nfs.servesV3 === false) add('nfsd', 'fail', nfs.nfsdDetail);
  else add('nfsd', 'ok', nfs.nfsdDetail);

  const [exportfs] = await Promise.all([which('exportfs')]);
  const exportsDir = dirname(config.exportsFile);
  const ours = nfs.exported.filter((e) => e.path === config.nfsRoot || e.path.startsWith(`${config.nfsRoot}/`));
  if (!exportfs) add('exports', 'fail', 'exportfs not found: apt-get install nfs-kernel-server');
  else if (!(await isDir(exportsDir))) add('exports', 'fail', `${exportsDir} missing (nfs-kernel-server creates it)`);
  else if (nfs.exportfsError) add('exports', 'warn', `exportfs -v failed: ${nfs.exportfsError.split('\n')[0]}`);
  else if (!(await isFile(config.exportsFile)))
    add('exports', 'warn', `${config.exportsFile} not written yet (the first pxetools --add writes it)`);
  else add('exports', 'ok', `${config.exportsFile}; ${ours.length} root(s) under ${config.nfsRoot} exported now`);

  return {
    checks,
    eeprom: { settings: EEPROM_SETTINGS.map((s) => ({ ...s })), advice: eepromAdvice() },
    ok: !checks.some((c) => c.status === 'fail'),
  };
}

/** Human-readable report: one check a line, then the bootloader settings. */
export function renderDoctor(report: DoctorReport): string {
  const width = Math.max(...report.checks.map((c) => c.name.length));
  const lines = report.checks.map(
    (c) => `${(c.status === 'ok' ? 'ok' : c.status.toUpperCase()).padEnd(5)} ${c.name.padEnd(width)}  ${c.detail}`,
  );
  return `${lines.join('\n')}\n\n${report.eeprom.advice.join('\n')}\n`;
}
