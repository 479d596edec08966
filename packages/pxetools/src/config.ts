import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { isIPv4 } from 'node:net';
import { IotTofuError } from '@iot-tofu/errors';

/** Where pxetools and boot-server look for their shared JSON config unless --config says otherwise. */
export const DEFAULT_CONFIG_FILE = '/etc/iot-tofu/config.json';

/** The fleet keys of the shared config file (docs/design.md "Interfaces"). */
export interface FleetConfig {
  tftpRoot: string;
  nfsRoot: string;
  stateDir: string;
  exportsFile: string;
  exportsClients?: string;
  serverIp?: string;
  /** Docker disk size for --add without --docker-disk ('8G'; '0' = none); checked by the fleet. */
  dockerDisk?: string;
}

export const FLEET_DEFAULTS: FleetConfig = {
  tftpRoot: '/tftpboot',
  nfsRoot: '/nfs',
  stateDir: '/var/lib/iot-tofu',
  exportsFile: '/etc/exports.d/iot-tofu.exports',
};

const PATH_KEYS = ['tftpRoot', 'nfsRoot', 'stateDir', 'exportsFile'] as const;

export class CliConfigError extends IotTofuError {
  constructor(message: string) {
    super('CONFIG_INVALID', message);
  }
}

/** The whole config file as an object ({} when missing); other keys are kept for rewriting. */
export async function readConfigFile(path: string): Promise<Record<string, unknown>> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliConfigError(`cannot read config file ${path}: ${(error as Error).message}`);
  }
  try {
    const data: unknown = JSON.parse(text);
    if (typeof data !== 'object' || data === null || Array.isArray(data)) throw new Error('not a JSON object');
    return data as Record<string, unknown>;
  } catch (error) {
    throw new CliConfigError(`config file ${path} is not valid JSON: ${(error as Error).message}`);
  }
}

const envName = (key: string) => `IOT_TOFU_${key.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

/** defaults < file < IOT_TOFU_* environment < flags, for the fleet keys only. Pure. */
export function resolveFleetConfig(file: Record<string, unknown>, env: Readonly<Record<string, string | undefined>>, flags: Partial<FleetConfig>, source: string): FleetConfig {
  const out: FleetConfig = { ...FLEET_DEFAULTS };
  const take = (key: keyof FleetConfig, value: unknown, where: string) => {
    if (value === undefined || value === '') return;
    if (key === 'dockerDisk' && typeof value === 'number') value = String(value);
    if (typeof value !== 'string') throw new CliConfigError(`${where}: ${key} must be a string`);
    if ((PATH_KEYS as readonly string[]).includes(key) && !value.startsWith('/')) throw new CliConfigError(`${where}: ${key} must be an absolute path, got ${JSON.stringify(value)}`);
    if (key === 'serverIp' && !isIPv4(value)) throw new CliConfigError(`${where}: serverIp must be an IPv4 address, got ${JSON.stringify(value)}`);
    out[key] = value;
  };
  const keys: Array<keyof FleetConfig> = ['tftpRoot', 'nfsRoot', 'stateDir', 'exportsFile', 'exportsClients', 'serverIp', 'dockerDisk'];
  for (const key of keys) take(key, file[key], `config file ${source}`);
  for (const key of keys) take(key, env[envName(key)], `environment ${envName(key)}`);
  for (const key of keys) take(key, flags[key], `option --${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`);
  return out;
}

/** The only non-internal IPv4 of this machine (same rule as boot-server), or a clear error. */
export function detectServerIp(interfaces = networkInterfaces()): string {
  const found = new Set<string>();
  for (const list of Object.values(interfaces)) for (const e of list ?? []) if (e.family === 'IPv4' && !e.internal) found.add(e.address);
  const all = [...found];
  if (all.length === 1 && all[0]) return all[0];
  if (all.length === 0) throw new CliConfigError('no non-internal IPv4 address on this machine; set serverIp with pxetools setup --server-ip IP');
  throw new CliConfigError(`several IPv4 addresses (${all.join(', ')}); choose one with pxetools setup --server-ip IP`);
}
