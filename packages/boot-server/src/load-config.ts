import { readFile } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { ConfigError, nonInternalIPv4s, resolveConfig, type BootServerConfig } from './config.js';

/** Where the daemon and pxetools look for their shared config file when none is named. */
export const DEFAULT_CONFIG_FILE = '/etc/iot-tofu/config.json';

export interface LoadConfigInput {
  /** CLI flags (camelCase; only the ones the user gave). `config` names the file. */
  flags: Record<string, unknown>;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Non-internal IPv4s; default from os.networkInterfaces(). */
  ipv4s?: readonly string[];
}

/**
 * The I/O shell around resolveConfig: finds and reads the JSON file (--config, IOT_TOFU_CONFIG, or
 * the default path when it exists), then merges every layer. Errors are ConfigErrors, one line each.
 */
export async function loadConfig(input: LoadConfigInput): Promise<{ config: BootServerConfig; file?: string }> {
  const named = (input.flags.config as string | undefined) ?? input.env.IOT_TOFU_CONFIG;
  const path = named || DEFAULT_CONFIG_FILE;
  let file: { path: string; data: unknown } | undefined;
  let text: string | undefined;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // The default file is optional (a fresh machine has none); a named one must exist.
    if (!(code === 'ENOENT' && !named)) throw new ConfigError('config', `cannot read ${path}: ${code ?? (error as Error).message}`);
  }
  if (text !== undefined) {
    try {
      // An empty file is an empty config (e.g. --config /dev/null to ignore the default file).
      file = { path, data: text.trim() === '' ? {} : JSON.parse(text) };
    } catch (error) {
      throw new ConfigError('config', `${path} is not valid JSON: ${(error as Error).message}`);
    }
  }
  const config = resolveConfig(
    { ...(file ? { file } : {}), env: input.env, flags: input.flags },
    { ipv4s: input.ipv4s ?? nonInternalIPv4s(networkInterfaces()), cwd: input.cwd },
  );
  return { config, ...(file ? { file: file.path } : {}) };
}
