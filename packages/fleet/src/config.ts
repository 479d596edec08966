import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';
import { networkInterfaces } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { IotTofuError } from '@iot-tofu/errors';
import { parseDiskSize } from './docker-disk.js';

// The one resolver of the shared config file (docs/design.md "Interfaces"): pxetools reads the fleet
// keys from it, boot-server extends the same key table with its own keys. One place for the file's
// default path, the environment names, the fleet defaults and how the server address is found.

/** Where pxetools and boot-server look for their shared JSON config unless --config or IOT_TOFU_CONFIG names one. */
export const DEFAULT_CONFIG_FILE = '/etc/iot-tofu/config.json';
/** The environment variable naming the config file. */
export const CONFIG_FILE_ENV = 'IOT_TOFU_CONFIG';

/** The fleet keys of the shared config file. */
export interface FleetConfig {
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  exportsFile: string;
  /** Who may mount the NFS roots; undefined = the server's subnet (the fleet decides). */
  exportsClients?: string;
  /** Our address: what Pis mount their roots from; undefined = detect (see defaultServerIp). */
  serverIp?: string;
  /** Docker disk size for a Pi added without one named ('8G'; '0' = none). */
  dockerDisk?: string;
}

export const FLEET_DEFAULTS: Readonly<FleetConfig> = Object.freeze({
  tftpRoot: '/tftpboot',
  nfsRoot: '/nfs',
  stateDir: '/var/lib/iot-tofu',
  exportsFile: '/etc/exports.d/iot-tofu.exports',
});

/** A config value was refused: names the key and where the value came from. */
export class ConfigError extends IotTofuError {
  readonly key: string;
  constructor(key: string, message: string, source?: string) {
    super('CONFIG_INVALID', `invalid config${source ? ` (${source})` : ''}: ${key}: ${message}`);
    this.key = key;
  }
}

/** `serverIp` → `IOT_TOFU_SERVER_IP`: every key's environment variable. */
export function envName(key: string): string {
  return `IOT_TOFU_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;
}

/** `serverIp` → `--server-ip`: every key's command-line flag. */
export function flagName(key: string): string {
  return `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
}

/** Where a value came from: for messages, and the base of relative paths. */
export interface ValueSource {
  key: string;
  /** `config file /etc/iot-tofu/config.json`, `environment IOT_TOFU_NFS_ROOT`, `command line --nfs-root`. */
  source: string;
  /** Relative paths resolve against the config file's folder (file) or the working directory (env, flags). */
  baseDir: string;
}

/** Checks one value (JSON from the file, text from the environment, commander's value from a flag). */
export interface KeySpec {
  parse(value: unknown, at: ValueSource): unknown;
  /** The environment value is JSON (an object key such as pxe). */
  envIsJson?: boolean;
}

/** Throws the one-line error for a refused value. */
export function refuse(at: ValueSource, what: string, value: unknown): never {
  throw new ConfigError(at.key, `${what}, got ${JSON.stringify(value)}`, at.source);
}

/** The value checks the fleet keys use; boot-server's own keys reuse them where they fit. */
export const VALUE_CHECKS = {
  ip: {
    parse: (value, at) =>
      typeof value === 'string' && isIPv4(value.trim()) ? value.trim() : refuse(at, 'expected an IPv4 address', value),
  },
  path: {
    parse: (value, at) => {
      if (typeof value !== 'string' || value.trim() === '' || value.includes('\0')) return refuse(at, 'expected a path', value);
      return isAbsolute(value) ? resolve(value) : resolve(at.baseDir, value);
    },
  },
  string: {
    parse: (value, at) => (typeof value === 'string' && value.trim() !== '' ? value : refuse(at, 'expected a non-empty string', value)),
  },
  size: {
    // The fleet's rule for disk sizes (8G, 512M, 0 = none); a number is taken as bytes.
    parse: (value, at) => {
      const text = typeof value === 'number' ? String(value) : value;
      if (typeof text !== 'string') return refuse(at, 'expected a size such as 8G, 512M or 0', value);
      try {
        parseDiskSize(text);
      } catch (error) {
        return refuse(at, (error as Error).message, value);
      }
      return text.trim();
    },
  },
} satisfies Record<string, KeySpec>;

/** The fleet keys and how each is checked. */
export const FLEET_KEYS: Readonly<Record<keyof FleetConfig, KeySpec>> = {
  serverIp: VALUE_CHECKS.ip,
  tftpRoot: VALUE_CHECKS.path,
  nfsRoot: VALUE_CHECKS.path,
  stateDir: VALUE_CHECKS.path,
  exportsFile: VALUE_CHECKS.path,
  exportsClients: VALUE_CHECKS.string,
  dockerDisk: VALUE_CHECKS.size,
};

/** The layers as they come in: untrusted shapes, checked by mergeLayers. */
export interface ConfigLayers {
  /** Parsed JSON of the config file, and the file name (for messages and relative paths). */
  file?: { path: string; data: unknown };
  env?: Readonly<Record<string, string | undefined>>;
  /** CLI flags as commander produced them (camelCase keys, undefined when not given). */
  flags?: Readonly<Record<string, unknown>>;
}

export interface MergeOptions {
  /** Base for relative paths given on the command line or in the environment. */
  cwd: string;
  /** A file key outside the table: an error (the daemon knows every key) or skipped (pxetools reads the fleet keys only). */
  unknownFileKeys: 'reject' | 'ignore';
  /** File and flag keys that are not config (e.g. `config`, the file's own name). */
  ignoredKeys?: ReadonlySet<string>;
  /** Negated names accepted in the file (`noDhcp` → `dhcp`, inverted). */
  negated?: Readonly<Record<string, string>>;
}

/**
 * defaults < JSON file < IOT_TOFU_* environment < flags, each value checked by its key's spec.
 * Pure: file contents, environment and flags come in as arguments. Throws ConfigError naming
 * the key and where its value came from.
 */
export function mergeLayers(
  keys: Readonly<Record<string, KeySpec>>,
  defaults: object,
  layers: ConfigLayers,
  options: MergeOptions,
): Record<string, unknown> {
  const merged: Record<string, unknown> = structuredClone({ ...defaults });
  const ignored = options.ignoredKeys ?? new Set<string>();
  if (layers.file) {
    const { path, data } = layers.file;
    const source = `config file ${path}`;
    if (typeof data !== 'object' || data === null || Array.isArray(data))
      throw new ConfigError('(file)', 'the config file must hold one JSON object', source);
    const baseDir = resolve(options.cwd, path, '..');
    for (const [rawKey, value] of Object.entries(data)) {
      if (ignored.has(rawKey)) continue;
      const negated = options.negated?.[rawKey];
      const key = negated ?? rawKey;
      const spec = Object.hasOwn(keys, key) ? keys[key] : undefined;
      if (!spec) {
        if (options.unknownFileKeys === 'ignore') continue;
        throw new ConfigError(rawKey, `unknown key (known: ${Object.keys(keys).join(', ')})`, source);
      }
      const parsed = spec.parse(value, { key, source, baseDir });
      merged[key] = negated ? !(parsed as boolean) : parsed;
    }
  }
  for (const [key, spec] of Object.entries(keys)) {
    const name = envName(key);
    const text = layers.env?.[name];
    if (text === undefined || text === '') continue;
    const source = `environment ${name}`;
    let value: unknown = text;
    if (spec.envIsJson) {
      try {
        value = JSON.parse(text);
      } catch {
        throw new ConfigError(name, 'expected a JSON object');
      }
    }
    merged[key] = spec.parse(value, { key, source, baseDir: options.cwd });
  }
  for (const [key, value] of Object.entries(layers.flags ?? {})) {
    if (value === undefined || ignored.has(key)) continue;
    const spec = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (!spec) throw new ConfigError(key, 'unknown option', 'command line');
    merged[key] = spec.parse(value, { key, source: `command line ${flagName(key)}`, baseDir: options.cwd });
  }
  return merged;
}

/**
 * The fleet keys from the shared file, the environment and the flags (pxetools). Keys of the
 * daemon in the same file are skipped here (boot-server checks them); serverIp stays undefined
 * unless given (detectServerIp when it is needed).
 */
export function resolveFleetConfig(layers: ConfigLayers, host: { cwd: string }): FleetConfig {
  return mergeLayers(FLEET_KEYS, FLEET_DEFAULTS, layers, {
    cwd: host.cwd,
    unknownFileKeys: 'ignore',
    ignoredKeys: new Set(['config']),
  }) as unknown as FleetConfig;
}

/** The only non-internal IPv4 of the machine, or a ConfigError explaining why there is none. */
export function defaultServerIp(ipv4s: readonly string[]): string {
  const unique = [...new Set(ipv4s)];
  if (unique.length === 1 && unique[0]) return unique[0];
  if (unique.length === 0) throw new ConfigError('serverIp', 'no non-internal IPv4 address found on this machine; set --server-ip');
  throw new ConfigError('serverIp', `several IPv4 addresses (${unique.join(', ')}); choose one with --server-ip`);
}

/** Non-internal IPv4 addresses from an os.networkInterfaces() result. */
export function nonInternalIPv4s(
  interfaces: Readonly<Record<string, ReadonlyArray<{ family: string | number; internal: boolean; address: string }> | undefined>>,
): string[] {
  const out: string[] = [];
  for (const list of Object.values(interfaces)) {
    for (const entry of list ?? []) {
      if ((entry.family === 'IPv4' || entry.family === 4) && !entry.internal) out.push(entry.address);
    }
  }
  return out;
}

/** This machine's server address when none is configured: its only non-internal IPv4. */
export function detectServerIp(interfaces = networkInterfaces()): string {
  return defaultServerIp(nonInternalIPv4s(interfaces));
}

/** The config file to read: --config, else IOT_TOFU_CONFIG, else the default; `named` when the user chose it. */
export function configFilePath(
  flag: string | undefined,
  env: Readonly<Record<string, string | undefined>>,
): { path: string; named: boolean } {
  const named = flag || env[CONFIG_FILE_ENV];
  return { path: named || DEFAULT_CONFIG_FILE, named: Boolean(named) };
}

/**
 * Reads the config file: `data` is its JSON object ({} for an empty file, e.g. --config /dev/null).
 * A missing file is `exists: false` and {} unless `mustExist` (a file the daemon was told to use).
 */
export async function readConfigFile(
  path: string,
  options: { mustExist?: boolean } = {},
): Promise<{ path: string; exists: boolean; data: Record<string, unknown> }> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !options.mustExist) return { path, exists: false, data: {} };
    throw new ConfigError('config', `cannot read ${path}: ${code ?? (error as Error).message}`);
  }
  let data: unknown;
  try {
    data = text.trim() === '' ? {} : JSON.parse(text);
  } catch (error) {
    throw new ConfigError('config', `${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof data !== 'object' || data === null || Array.isArray(data))
    throw new ConfigError('(file)', 'the config file must hold one JSON object', `config file ${path}`);
  return { path, exists: true, data: data as Record<string, unknown> };
}
