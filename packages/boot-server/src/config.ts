import { isIPv4 } from 'node:net';
import {
  PI_ANSWER_MODES,
  PXE_BOOT_FILE_KEYS,
  ProxyConfigError,
  validatePoolConfig,
  type LeasePoolConfig,
  type PiAnswerMode,
  type PxeBootFiles,
} from '@iot-tofu/dhcp';
import {
  ConfigError,
  FLEET_DEFAULTS,
  FLEET_KEYS,
  VALUE_CHECKS,
  defaultServerIp,
  mergeLayers,
  refuse,
  type ConfigLayers,
  type KeySpec,
} from '@iot-tofu/fleet';
import { normalizeMac, parseSerial } from '@iot-tofu/rpi';
import type { AdmissionBudget } from './admission.js';
import { MQTT_CONFIG_KEYS } from './mqtt/config-keys.js';

/** Which Raspberry Pis get a proxy offer: dhcp's PiAnswerMode (the wire-facing types live there). */
export const DHCP_ANSWERS = PI_ANSWER_MODES;

/** proxy: beside the site's DHCP server (default); full: we are the segment's DHCP server (issue 12). */
export type DhcpMode = 'proxy' | 'full';
export const DHCP_MODES: readonly DhcpMode[] = ['proxy', 'full'];

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
export const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The one typed configuration object of the daemon (docs/design.md "Interfaces"). */
export interface BootServerConfig {
  /** Our address in replies and the address TFTP binds to. */
  serverIp: string;
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  dhcpPort: number;
  pxePort: number;
  tftpPort: number;
  dhcp: boolean;
  tftp: boolean;
  dhcpAnswer: PiAnswerMode;
  apiListen: string;
  /** 0 = no API. */
  apiPort: number;
  logLevel: LogLevel;
  /** Boot files for non-Pi PXE firmware (docs/design.md): dhcp's PxeBootFiles. */
  pxe: PxeBootFiles;
  exportsFile: string;
  /** Who may mount the NFS roots; undefined = the server's subnet (fleet decides). */
  exportsClients?: string;
  /**
   * Size of the docker disk a Pi added without one named gets (API `POST /api/v1/pis`), e.g. `8G`;
   * `0` = none. The same key pxetools reads from the shared config file.
   */
  dockerDisk?: string;
  /**
   * Boot-storm admission: at most this many Pis booting at once (offer to kernel); a Pi beyond it
   * gets no offer until a slot frees and its bootloader re-sends the DISCOVER. `"auto"` = a capacity
   * steered by observed kernel transfer times; a number = that fixed budget; 0 = admit everyone.
   */
  admissionBudget: AdmissionBudget;
  /**
   * TFTP transfer threads besides the main thread: `"auto"` = one per spare core (at most 3), a
   * number = that many, 0 = every transfer on the main thread.
   */
  tftpThreads: number | 'auto';
  /** Seconds after an offer without any TFTP request before the timeline records "no TFTP after offer". */
  tftpAfterOfferTimeout: number;
  /** Seconds between reads of the kernel's neighbour table (IPs of registered Pis); 0 = never. */
  neighbourScanInterval: number;
  /** Option 66 (TFTP server, dotted quad) in Pi offers, for a TFTP server other than us; unset = none. */
  option66?: string;
  /**
   * Menu text "Raspberry Pi Boot   " (three spaces) for old Pi 3B ROMs: true for every Pi, or the
   * Pis it is for, by serial (8 lower-case hex digits) or MAC (lower-case, colons). Default false.
   */
  threeSpaceMenu: boolean | string[];
  /** `proxy` (default): proxyDHCP beside the LAN's DHCP server; `full`: addresses and boot options from us. */
  dhcpMode: DhcpMode;
  /** Full mode: dynamic pool `first-last` (inclusive), e.g. `10.77.0.100-10.77.0.199`. Required in full mode. */
  dhcpRange?: string;
  /** Full mode: option 1 of the LAN (e.g. 255.255.255.0). Required in full mode. */
  dhcpNetmask?: string;
  /** Full mode: option 3 (default gateway); unset = none (an isolated boot LAN). */
  dhcpRouter?: string;
  /** Full mode: option 6, in order; empty = none. */
  dhcpDns: string[];
  /** Full mode: lease time in seconds (default 3600, at least 60). */
  dhcpLeaseTime: number;
  /** Full mode: ping a fresh address before offering it (default true; dnsmasq does the same). */
  dhcpConflictCheck: boolean;
  /** MQTT broker for boot events (issue 15, README "MQTT"), e.g. mqtt://broker:1883; unset = off. */
  mqttUrl?: string;
  /** Topic segment iot-tofu/<region>/…; unset = the host name's first label. */
  region?: string;
}

// The shared resolver (fleet keys, environment names, the config file, server address) lives in
// @iot-tofu/fleet (config.ts); the daemon extends its key table with the keys below.
export { ConfigError, defaultServerIp, envName, nonInternalIPv4s } from '@iot-tofu/fleet';
export type { ConfigLayers } from '@iot-tofu/fleet';

export interface ConfigHost {
  /** The non-internal IPv4 addresses of this machine (see nonInternalIPv4s). */
  ipv4s: readonly string[];
  /** Base for relative paths given on the command line or in the environment. */
  cwd: string;
}

export const DEFAULT_CONFIG: Readonly<Omit<BootServerConfig, 'serverIp'>> = Object.freeze({
  ...FLEET_DEFAULTS,
  dhcpPort: 67,
  pxePort: 4011,
  tftpPort: 69,
  dhcp: true,
  tftp: true,
  dhcpAnswer: 'registered',
  apiListen: '127.0.0.1',
  apiPort: 8067,
  logLevel: 'info',
  pxe: {},
  // bench/results/boot-storm: without a gate 50 Pi 4s on 100 Mbit/s mostly miss the 30 s per-file
  // limit (dnsmasq 7/50 booted). A budget sized from the link rate fails where the bottleneck is
  // elsewhere (lan1000, N = 200: 148 slots saturated two cores, 3/200 booted), so the default steers
  // on what the Pi cares about, kernel transfer time, and needs no link rate.
  admissionBudget: 'auto',
  // bench/tftp: one event loop tops out at one core on lock-step TFTP (0.83x dnsmasq at 50
  // downloads); with a thread per spare core it passes dnsmasq.
  tftpThreads: 'auto',
  tftpAfterOfferTimeout: 10,
  neighbourScanInterval: 60,
  threeSpaceMenu: false,
  dhcpMode: 'proxy',
  dhcpDns: [],
  dhcpLeaseTime: 3600,
  dhcpConflictCheck: true,
});

/** The daemon's own kinds of value (the fleet's ip, path, string and size checks come from VALUE_CHECKS). */
type Kind = 'port' | 'bool' | 'answer' | 'level' | 'count' | 'budget' | 'threads' | 'pxe' | 'pis' | 'mode' | 'range' | 'ips';
const own = (kind: Kind): KeySpec => ({
  parse: (value, at) => parseTyped(at.key, kind, value, at.source),
  ...(kind === 'pxe' ? { envIsJson: true } : {}),
});

/** Every config key and how it is checked: the fleet keys, then the daemon's (environment: IOT_TOFU_ + SNAKE_CASE). */
const KEYS: Readonly<Record<string, KeySpec>> = {
  ...FLEET_KEYS,
  dhcpPort: own('port'),
  pxePort: own('port'),
  tftpPort: own('port'),
  dhcp: own('bool'),
  tftp: own('bool'),
  dhcpAnswer: own('answer'),
  apiListen: VALUE_CHECKS.ip,
  apiPort: own('port'),
  logLevel: own('level'),
  pxe: own('pxe'),
  admissionBudget: own('budget'),
  tftpThreads: own('threads'),
  tftpAfterOfferTimeout: own('count'),
  neighbourScanInterval: own('count'),
  option66: VALUE_CHECKS.ip,
  threeSpaceMenu: own('pis'),
  dhcpMode: own('mode'),
  dhcpRange: own('range'),
  dhcpNetmask: VALUE_CHECKS.ip,
  dhcpRouter: VALUE_CHECKS.ip,
  dhcpDns: own('ips'),
  dhcpLeaseTime: own('count'),
  dhcpConflictCheck: own('bool'),
  ...MQTT_CONFIG_KEYS,
};

/** `"auto"` (any case, padded), or a whole number from 0 to `max` (as a number or its text); else undefined. */
function autoOrCount(value: unknown, max: number): 'auto' | number | undefined {
  if (typeof value === 'string' && value.trim().toLowerCase() === 'auto') return 'auto';
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  return typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= max ? n : undefined;
}

/** More transfer threads than this only add memory: the link is the limit long before. */
const MAX_TFTP_THREADS = 64;

/** Keys other tools keep in the same file (pxetools) or that only make sense on the command line. */
const IGNORED_FILE_KEYS = new Set(['config']);
/** `--no-dhcp` in camelCase is `noDhcp`; accept it in files and map it onto `dhcp`. */
const NEGATED: Readonly<Record<string, string>> = { noDhcp: 'dhcp', noTftp: 'tftp' };

/**
 * Merges defaults < JSON file < IOT_TOFU_* environment < CLI flags into one validated config.
 * Pure: the file contents, environment, flags and host facts all come in as arguments.
 * Throws ConfigError naming the offending key and where it came from.
 */
export function resolveConfig(layers: ConfigLayers, host: ConfigHost): BootServerConfig {
  const merged = mergeLayers(KEYS, DEFAULT_CONFIG, layers, {
    cwd: host.cwd,
    unknownFileKeys: 'reject',
    ignoredKeys: IGNORED_FILE_KEYS,
    negated: NEGATED,
  });
  if (merged.serverIp === undefined) merged.serverIp = defaultServerIp(host.ipv4s);
  const config = merged as unknown as BootServerConfig;
  if (config.dhcpMode === 'full') checkFullMode(config);
  return config;
}

/** `10.77.0.100-10.77.0.199` → its two ends (the range key is already validated). */
/** The address pool full mode serves, from the config keys: what is checked here is what runs. */
export function leasePoolConfig(config: BootServerConfig & { dhcpRange: string; dhcpNetmask: string }): LeasePoolConfig {
  const { start, end } = parseDhcpRange(config.dhcpRange);
  return {
    rangeStart: start,
    rangeEnd: end,
    netmask: config.dhcpNetmask,
    serverIp: config.serverIp,
    leaseTimeSec: config.dhcpLeaseTime,
    ...(config.dhcpRouter ? { router: config.dhcpRouter } : {}),
  };
}

export function parseDhcpRange(range: string): { start: string; end: string } {
  const [start = '', end = ''] = range.split('-');
  return { start, end };
}

/** Full mode needs a pool that fits serverIp's subnet; the error names the key (dhcpRange, dhcpNetmask, …). */
function checkFullMode(config: BootServerConfig): void {
  const source = 'dhcpMode full';
  if (config.dhcpRange === undefined)
    throw new ConfigError('dhcpRange', 'required with dhcpMode full (e.g. "10.77.0.100-10.77.0.199")', source);
  if (config.dhcpNetmask === undefined) throw new ConfigError('dhcpNetmask', 'required with dhcpMode full (e.g. "255.255.255.0")', source);
  try {
    validatePoolConfig(leasePoolConfig({ ...config, dhcpRange: config.dhcpRange, dhcpNetmask: config.dhcpNetmask }));
  } catch (error) {
    if (error instanceof ProxyConfigError) throw new ConfigError(error.key, error.message.slice(error.key.length + 2), source);
    throw error;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function parseTyped(key: string, kind: Kind, value: unknown, source: string): unknown {
  const fail = (what: string): never => refuse({ key, source, baseDir: '' }, what, value);
  switch (kind) {
    case 'port':
    case 'count': {
      const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
      if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) return fail('expected a whole number ≥ 0');
      if (kind === 'port' && n > 65535) return fail('expected a port number 0-65535');
      return n;
    }
    case 'budget':
      return autoOrCount(value, Number.POSITIVE_INFINITY) ?? fail('expected "auto" or a whole number ≥ 0 (0 = off)');
    case 'threads':
      return (
        autoOrCount(value, MAX_TFTP_THREADS) ??
        fail(`expected "auto" or a whole number of threads from 0 to ${MAX_TFTP_THREADS} (0 = main thread only)`)
      );
    case 'bool':
      if (typeof value === 'boolean') return value;
      if (typeof value === 'string' && /^(1|true|yes|on)$/i.test(value)) return true;
      if (typeof value === 'string' && /^(0|false|no|off)$/i.test(value)) return false;
      return fail('expected true or false');
    case 'answer':
      if (typeof value !== 'string' || !(DHCP_ANSWERS as readonly string[]).includes(value)) {
        return fail(`expected one of ${DHCP_ANSWERS.join(', ')}`);
      }
      return value;
    case 'level':
      if (typeof value !== 'string' || !(LOG_LEVELS as readonly string[]).includes(value)) {
        return fail(`expected one of ${LOG_LEVELS.join(', ')}`);
      }
      return value;
    case 'pxe':
      return parsePxe(value, source);
    case 'pis':
      return parsePiSelection(key, value, source);
    case 'mode':
      if (typeof value !== 'string' || !(DHCP_MODES as readonly string[]).includes(value.trim()))
        return fail(`expected one of ${DHCP_MODES.join(', ')}`);
      return value.trim();
    case 'range': {
      const match = typeof value === 'string' ? /^\s*([\d.]+)\s*[-,]\s*([\d.]+)\s*$/.exec(value) : null;
      if (!match || !isIPv4(match[1]!) || !isIPv4(match[2]!)) return fail('expected FIRST-LAST, two IPv4 addresses');
      return `${match[1]}-${match[2]}`;
    }
    case 'ips': {
      let list: unknown = value;
      if (typeof value === 'string')
        list = value.trim().startsWith('[')
          ? safeJson(value)
          : value
              .split(',')
              .map((entry) => entry.trim())
              .filter(Boolean);
      if (!Array.isArray(list) || !list.every((entry) => typeof entry === 'string' && isIPv4(entry.trim())))
        return fail('expected a list of IPv4 addresses (JSON list or comma-separated)');
      return (list as string[]).map((entry) => entry.trim());
    }
  }
}

/**
 * `true`/`false`, or a list of serials and MACs (JSON array in files; in the environment also a
 * comma-separated list). Entries come out normalised: 8-digit serials, lower-case colon MACs.
 */
function parsePiSelection(key: string, value: unknown, source: string): boolean | string[] {
  if (typeof value === 'boolean') return value;
  let list = value;
  if (typeof value === 'string') {
    if (/^(1|true|yes|on)$/i.test(value.trim())) return true;
    if (/^(0|false|no|off)$/i.test(value.trim())) return false;
    try {
      list = value.trim().startsWith('[')
        ? JSON.parse(value)
        : value
            .split(',')
            .map((entry) => entry.trim())
            .filter(Boolean);
    } catch {
      throw new ConfigError(key, `expected true, false, a JSON list or a comma-separated list, got ${JSON.stringify(value)}`, source);
    }
  }
  if (!Array.isArray(list))
    throw new ConfigError(key, `expected true, false or a list of Pi serials and MACs, got ${JSON.stringify(value)}`, source);
  return [
    ...new Set(
      list.map((entry: unknown, index) => {
        if (typeof entry === 'string') {
          const text = entry.trim();
          if (/^(0x)?([0-9a-f]{8}|[0-9a-f]{16})$/i.test(text)) return parseSerial(text).short;
          try {
            return normalizeMac(text);
          } catch {
            // fall through to the error below
          }
        }
        throw new ConfigError(
          `${key}[${index}]`,
          `expected a Pi serial (8 or 16 hex digits) or a MAC, got ${JSON.stringify(entry)}`,
          source,
        );
      }),
    ),
  ];
}

function parsePxe(value: unknown, source: string): PxeBootFiles {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError('pxe', `expected an object with ${PXE_BOOT_FILE_KEYS.join(', ')}, got ${JSON.stringify(value)}`, source);
  }
  const out: PxeBootFiles = {};
  for (const [key, entry] of Object.entries(value)) {
    if (!(PXE_BOOT_FILE_KEYS as readonly string[]).includes(key)) {
      throw new ConfigError(`pxe.${key}`, `unknown key (known: ${PXE_BOOT_FILE_KEYS.join(', ')})`, source);
    }
    if (typeof entry !== 'string' || entry.trim() === '' || entry.length > 127) {
      throw new ConfigError(`pxe.${key}`, `expected a TFTP path or URL (1-127 characters), got ${JSON.stringify(entry)}`, source);
    }
    out[key as keyof PxeBootFiles] = entry;
  }
  return out;
}
