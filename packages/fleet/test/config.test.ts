import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DEFAULT_CONFIG_FILE,
  FLEET_DEFAULTS,
  configFilePath,
  detectServerIp,
  envName,
  flagName,
  readConfigFile,
  resolveFleetConfig,
} from '../src/config.js';

const host = { cwd: '/work' };

describe('resolveFleetConfig: the fleet keys of the shared file', () => {
  it('defaults, then file < environment < flags', () => {
    expect(resolveFleetConfig({}, host)).toEqual(FLEET_DEFAULTS);
    const config = resolveFleetConfig(
      {
        file: {
          path: '/etc/iot-tofu/config.json',
          data: { tftpRoot: '/srv/tftp', nfsRoot: '/srv/nfs', serverIp: '10.0.0.1', dockerDisk: 8 * 1024 ** 3 },
        },
        env: { IOT_TOFU_NFS_ROOT: '/env/nfs', IOT_TOFU_SERVER_IP: '10.0.0.2', IOT_TOFU_EXPORTS_CLIENTS: '' },
        flags: { serverIp: '10.0.0.3', stateDir: undefined },
      },
      host,
    );
    expect(config).toEqual({
      ...FLEET_DEFAULTS,
      tftpRoot: '/srv/tftp',
      nfsRoot: '/env/nfs',
      serverIp: '10.0.0.3',
      dockerDisk: String(8 * 1024 ** 3),
    });
  });

  it("skips the daemon's keys in the same file, and relative paths resolve against the file's folder or the working directory", () => {
    const config = resolveFleetConfig(
      {
        file: { path: '/etc/iot-tofu/config.json', data: { tftpPort: 69, dhcpMode: 'full', tftpRoot: 'tftp', config: 'x' } },
        flags: { nfsRoot: 'nfs' },
      },
      host,
    );
    expect(config).toMatchObject({ tftpRoot: '/etc/iot-tofu/tftp', nfsRoot: '/work/nfs' });
    expect(config).not.toHaveProperty('tftpPort');
  });

  it.each([
    [
      { env: { IOT_TOFU_SERVER_IP: '10.0.0' } },
      /^invalid config \(environment IOT_TOFU_SERVER_IP\): serverIp: expected an IPv4 address, got "10\.0\.0"$/,
    ],
    [
      { file: { path: '/c.json', data: { stateDir: 42 } } },
      /^invalid config \(config file \/c\.json\): stateDir: expected a path, got 42$/,
    ],
    [{ flags: { dockerDisk: '1M' } }, /^invalid config \(command line --docker-disk\): dockerDisk: .*below the minimum/],
    [{ flags: { exportsClients: ' ' } }, /command line --exports-clients.*exportsClients: expected a non-empty string/],
    [{ file: { path: '/c.json', data: [] } }, /config file \/c\.json.*the config file must hold one JSON object/],
  ])('one error naming the key and its source: %j', (layers, message) => {
    let thrown: unknown;
    try {
      resolveFleetConfig(layers, host);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect(thrown).toMatchObject({ code: 'CONFIG_INVALID', message: expect.stringMatching(message) });
  });

  it('names: IOT_TOFU_ + SNAKE_CASE, --kebab-case', () => {
    expect(envName('exportsClients')).toBe('IOT_TOFU_EXPORTS_CLIENTS');
    expect(flagName('serverIp')).toBe('--server-ip');
  });
});

describe('the config file', () => {
  it('--config beats IOT_TOFU_CONFIG beats the default; named when the user chose it', () => {
    expect(configFilePath(undefined, {})).toEqual({ path: DEFAULT_CONFIG_FILE, named: false });
    expect(configFilePath(undefined, { IOT_TOFU_CONFIG: '/e.json' })).toEqual({ path: '/e.json', named: true });
    expect(configFilePath('/f.json', { IOT_TOFU_CONFIG: '/e.json' })).toEqual({ path: '/f.json', named: true });
    expect(configFilePath('', { IOT_TOFU_CONFIG: '' })).toEqual({ path: DEFAULT_CONFIG_FILE, named: false });
  });

  it('missing: empty unless it must exist; empty text: {}; not JSON or not an object: one error', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'iot-tofu-config-'));
    const missing = join(dir, 'missing.json');
    expect(await readConfigFile(missing)).toEqual({ path: missing, exists: false, data: {} });
    await expect(readConfigFile(missing, { mustExist: true })).rejects.toThrow(
      /^invalid config: config: cannot read .*missing\.json: ENOENT$/,
    );
    writeFileSync(join(dir, 'empty.json'), '\n');
    expect(await readConfigFile(join(dir, 'empty.json'))).toMatchObject({ exists: true, data: {} });
    writeFileSync(join(dir, 'broken.json'), '{');
    await expect(readConfigFile(join(dir, 'broken.json'))).rejects.toThrow(/^invalid config: config: .*broken\.json is not valid JSON/);
    writeFileSync(join(dir, 'list.json'), '[1]');
    await expect(readConfigFile(join(dir, 'list.json'))).rejects.toThrow(/must hold one JSON object/);
    writeFileSync(join(dir, 'ok.json'), '{"nfsRoot": "/srv/nfs", "tftpPort": 1069}');
    expect((await readConfigFile(join(dir, 'ok.json'))).data).toEqual({ nfsRoot: '/srv/nfs', tftpPort: 1069 });
  });
});

describe('detectServerIp: the only non-internal IPv4', () => {
  const nic = (address: string, internal = false) => ({
    address,
    family: 'IPv4' as const,
    internal,
    netmask: '255.255.255.0',
    mac: '00:00:00:00:00:00',
    cidr: null,
  });
  it('one address is the answer; none or several is an error that says what to set', () => {
    expect(detectServerIp({ lo: [nic('127.0.0.1', true)], eth0: [nic('10.0.0.5')], eth1: [nic('10.0.0.5')] })).toBe('10.0.0.5');
    expect(() => detectServerIp({ lo: [nic('127.0.0.1', true)] })).toThrow(/serverIp: no non-internal IPv4 address .*--server-ip/);
    expect(() => detectServerIp({ eth0: [nic('10.0.0.5')], eth1: [nic('10.1.0.5')] })).toThrow(
      /serverIp: several IPv4 addresses \(10\.0\.0\.5, 10\.1\.0\.5\); choose one with --server-ip/,
    );
  });
});
