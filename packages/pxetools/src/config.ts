import { readConfigFile, resolveFleetConfig, type FleetConfig } from '@iot-tofu/fleet';

/**
 * The CLI's config: the fleet keys from the shared file, the IOT_TOFU_* environment and the flags,
 * resolved by the fleet's one resolver (the same rules, names and defaults boot-server uses), and
 * the whole file as read, so `setup` can rewrite it keeping the daemon's keys. A missing file is
 * an empty one: `setup` creates it.
 */
export async function loadCliConfig(
  configFile: string,
  env: Readonly<Record<string, string | undefined>>,
  flags: Partial<FleetConfig>,
  cwd = process.cwd(),
): Promise<{ config: FleetConfig; file: Record<string, unknown> }> {
  const { data } = await readConfigFile(configFile);
  return { config: resolveFleetConfig({ file: { path: configFile, data }, env, flags }, { cwd }), file: data };
}
