import { networkInterfaces } from 'node:os';
import { configFilePath, nonInternalIPv4s, readConfigFile } from '@iot-tofu/fleet';
import { resolveConfig, type BootServerConfig } from './config.js';

/** Where the daemon and pxetools look for their shared config file when none is named (the fleet's one constant). */
export { DEFAULT_CONFIG_FILE } from '@iot-tofu/fleet';

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
  const { path, named } = configFilePath(input.flags.config as string | undefined, input.env);
  // The default file is optional (a fresh machine has none); a named one must exist.
  const read = await readConfigFile(path, { mustExist: named });
  const file = read.exists ? { path, data: read.data } : undefined;
  const config = resolveConfig(
    { ...(file ? { file } : {}), env: input.env, flags: input.flags },
    { ipv4s: input.ipv4s ?? nonInternalIPv4s(networkInterfaces()), cwd: input.cwd },
  );
  return { config, ...(file ? { file: file.path } : {}) };
}
