import { describe, expect, it } from 'vitest';
import { FLEET_KEYS, resolveFleetConfig, type FleetConfig } from '@iot-tofu/fleet';
import {
  ConfigError,
  DEFAULT_CONFIG,
  defaultServerIp,
  envName,
  nonInternalIPv4s,
  resolveConfig,
  type ConfigLayers,
} from '../src/config.js';

const host = { ipv4s: ['192.168.10.10'], cwd: '/srv/here' };

describe('resolveConfig: layers merge defaults < file < env < flags', () => {
  it('starts from the docs/design.md defaults and the only non-internal IPv4', () => {
    expect(resolveConfig({}, host)).toEqual({ ...DEFAULT_CONFIG, serverIp: '192.168.10.10' });
  });

  const cases: Array<[string, ConfigLayers, Partial<ReturnType<typeof resolveConfig>>]> = [
    ['file sets a key', { file: { path: '/etc/iot-tofu/config.json', data: { tftpPort: 1069 } } }, { tftpPort: 1069 }],
    ['env beats file', { file: { path: '/c.json', data: { tftpPort: 1069 } }, env: { IOT_TOFU_TFTP_PORT: '2069' } }, { tftpPort: 2069 }],
    ['flag beats env', { env: { IOT_TOFU_TFTP_PORT: '2069' }, flags: { tftpPort: '3069' } }, { tftpPort: 3069 }],
    ['undefined flag keeps lower layer', { env: { IOT_TOFU_API_PORT: '0' }, flags: { apiPort: undefined } }, { apiPort: 0 }],
    ['empty env var is ignored', { env: { IOT_TOFU_TFTP_ROOT: '' } }, { tftpRoot: '/tftpboot' }],
    ['--no-dhcp', { flags: { dhcp: false } }, { dhcp: false }],
    ['noDhcp in a file maps onto dhcp', { file: { path: '/c.json', data: { noDhcp: true } } }, { dhcp: false }],
    ['boolean env words', { env: { IOT_TOFU_TFTP: 'off' } }, { tftp: false }],
    [
      'relative file paths are relative to the file',
      { file: { path: '/etc/tofu/c.json', data: { tftpRoot: 'tftp' } } },
      { tftpRoot: '/etc/tofu/tftp' },
    ],
    ['relative flag paths are relative to cwd', { flags: { stateDir: 'state' } }, { stateDir: '/srv/here/state' }],
    ['server ip from a flag wins over autodetection', { flags: { serverIp: '10.0.0.5' } }, { serverIp: '10.0.0.5' }],
    [
      'pxe table from the file',
      { file: { path: '/c.json', data: { pxe: { bios: 'undionly.kpxe', ipxeScript: 'http://x/boot.ipxe' } } } },
      { pxe: { bios: 'undionly.kpxe', ipxeScript: 'http://x/boot.ipxe' } },
    ],
    ['pxe table from env JSON', { env: { IOT_TOFU_PXE: '{"uefiX64":"ipxe.efi"}' } }, { pxe: { uefiX64: 'ipxe.efi' } }],
    ['dhcpAnswer', { flags: { dhcpAnswer: 'any-pi' } }, { dhcpAnswer: 'any-pi' }],
    ['option66 from the file', { file: { path: '/c.json', data: { option66: '10.0.0.9' } } }, { option66: '10.0.0.9' }],
    ['threeSpaceMenu true', { file: { path: '/c.json', data: { threeSpaceMenu: true } } }, { threeSpaceMenu: true }],
    [
      'threeSpaceMenu list, normalised and deduplicated',
      {
        file: {
          path: '/c.json',
          data: { threeSpaceMenu: ['00000000ABCDEF01', 'abcdef01', 'B8-27-EB-55-BB-FD', 'b827eb55bbfd', '0x9F55BBFD'] },
        },
      },
      { threeSpaceMenu: ['abcdef01', 'b8:27:eb:55:bb:fd', '9f55bbfd'] },
    ],
    [
      'threeSpaceMenu from a comma list in the environment',
      { env: { IOT_TOFU_THREE_SPACE_MENU: '9f55bbfd, dc:a6:32:01:36:c2' } },
      { threeSpaceMenu: ['9f55bbfd', 'dc:a6:32:01:36:c2'] },
    ],
    [
      'threeSpaceMenu from a JSON list in the environment',
      { env: { IOT_TOFU_THREE_SPACE_MENU: '["9f55bbfd"]' } },
      { threeSpaceMenu: ['9f55bbfd'] },
    ],
    [
      'threeSpaceMenu off in the environment',
      { file: { path: '/c.json', data: { threeSpaceMenu: true } }, env: { IOT_TOFU_THREE_SPACE_MENU: 'off' } },
      { threeSpaceMenu: false },
    ],
    ['admission is adaptive by default', {}, { admissionBudget: 'auto' }],
    ['admissionBudget fixed from the file', { file: { path: '/c.json', data: { admissionBudget: 40 } } }, { admissionBudget: 40 }],
    ['admissionBudget off from the environment', { env: { IOT_TOFU_ADMISSION_BUDGET: '0' } }, { admissionBudget: 0 }],
    [
      'admissionBudget auto from a flag beats the file',
      { file: { path: '/c.json', data: { admissionBudget: 40 } }, flags: { admissionBudget: 'auto' } },
      { admissionBudget: 'auto' },
    ],
    ['admissionBudget AUTO in any case', { env: { IOT_TOFU_ADMISSION_BUDGET: ' Auto ' } }, { admissionBudget: 'auto' }],
    ['admissionBudget number as text from a flag', { flags: { admissionBudget: '148' } }, { admissionBudget: 148 }],
    ['tftpThreads auto by default', {}, { tftpThreads: 'auto' }],
    ['tftpThreads 0 from the file', { file: { path: '/c.json', data: { tftpThreads: 0 } } }, { tftpThreads: 0 }],
    ['tftpThreads from the environment', { env: { IOT_TOFU_TFTP_THREADS: '2' } }, { tftpThreads: 2 }],
    [
      'tftpThreads auto from a flag beats the file',
      { file: { path: '/c.json', data: { tftpThreads: 3 } }, flags: { tftpThreads: 'AUTO' } },
      { tftpThreads: 'auto' },
    ],
    ['neighbour scans off', { file: { path: '/c.json', data: { neighbourScanInterval: 0 } } }, { neighbourScanInterval: 0 }],
    [
      'dockerDisk from the shared config file (the key pxetools reads too)',
      { file: { path: '/c.json', data: { dockerDisk: '8G' } } },
      { dockerDisk: '8G' },
    ],
    ['dockerDisk 0 = none, from a flag', { flags: { dockerDisk: '0' } }, { dockerDisk: '0' }],
    [
      'the config key itself is not a setting',
      { file: { path: '/c.json', data: { config: '/x' } }, flags: { config: '/c.json' } },
      { tftpPort: 69 },
    ],
  ];
  it.each(cases)('%s', (_name, layers, expected) => {
    expect(resolveConfig(layers, host)).toMatchObject(expected);
  });
});

describe('resolveConfig: one clear error naming the key', () => {
  const bad: Array<[ConfigLayers, RegExp]> = [
    [
      { flags: { tftpPort: 'sixty-nine' } },
      /tftpPort: expected a whole number.*"sixty-nine".*command line --tftp-port|command line --tftp-port.*tftpPort/,
    ],
    [{ flags: { tftpPort: 70000 } }, /tftpPort: expected a port number/],
    [{ env: { IOT_TOFU_SERVER_IP: '10.0.0' } }, /environment IOT_TOFU_SERVER_IP.*serverIp: expected an IPv4 address/],
    [
      { file: { path: '/c.json', data: { dhcpAnswer: 'everyone' } } },
      /config file \/c\.json.*dhcpAnswer: expected one of registered, any-pi, none/,
    ],
    [{ file: { path: '/c.json', data: { tftproot: '/x' } } }, /tftproot: unknown key/],
    [{ file: { path: '/c.json', data: [1, 2] } }, /must hold one JSON object/],
    [{ file: { path: '/c.json', data: { pxe: { efi: 'x' } } } }, /pxe\.efi: unknown key/],
    [{ file: { path: '/c.json', data: { pxe: 'x' } } }, /pxe: expected an object/],
    [{ flags: { logLevel: 'loud' } }, /logLevel: expected one of fatal/],
    [{ env: { IOT_TOFU_DHCP: 'maybe' } }, /dhcp: expected true or false/],
    [{ env: { IOT_TOFU_PXE: '{' } }, /IOT_TOFU_PXE: expected a JSON object/],
    [{ flags: { tftpRoot: '' } }, /tftpRoot: expected a path/],
    [
      { file: { path: '/c.json', data: { option66: 'tftp.example' } } },
      /config file \/c\.json.*option66: expected an IPv4 address, got "tftp\.example"/,
    ],
    [
      { file: { path: '/c.json', data: { threeSpaceMenu: 'yes please' } } },
      /threeSpaceMenu\[0\]: expected a Pi serial \(8 or 16 hex digits\) or a MAC, got "yes please"/,
    ],
    [
      { file: { path: '/c.json', data: { threeSpaceMenu: ['9f55bbfd', 'pi-kitchen'] } } },
      /config file \/c\.json.*threeSpaceMenu\[1\]: expected a Pi serial.*"pi-kitchen"/,
    ],
    [{ file: { path: '/c.json', data: { threeSpaceMenu: { all: true } } } }, /threeSpaceMenu: expected true, false or a list/],
    [
      { env: { IOT_TOFU_THREE_SPACE_MENU: '[9f55' } },
      /environment IOT_TOFU_THREE_SPACE_MENU.*threeSpaceMenu: expected true, false, a JSON list/,
    ],
    [{ flags: { neighbourScanInterval: -1 } }, /neighbourScanInterval: expected a whole number/],
    [
      { flags: { tftpThreads: 'many' } },
      /command line --tftp-threads.*tftpThreads: expected "auto" or a whole number of threads from 0 to 64/,
    ],
    [
      { file: { path: '/c.json', data: { tftpThreads: 65 } } },
      /config file \/c\.json.*tftpThreads: expected "auto" or a whole number of threads/,
    ],
    [{ env: { IOT_TOFU_TFTP_THREADS: '-1' } }, /environment IOT_TOFU_TFTP_THREADS.*tftpThreads: expected/],
    [
      { flags: { admissionBudget: 'adaptive' } },
      /command line --admission-budget.*admissionBudget: expected "auto" or a whole number ≥ 0 \(0 = off\), got "adaptive"/,
    ],
    [
      { file: { path: '/c.json', data: { admissionBudget: -3 } } },
      /config file \/c\.json.*admissionBudget: expected "auto" or a whole number/,
    ],
    [{ file: { path: '/c.json', data: { admissionBudget: 2.5 } } }, /admissionBudget: expected "auto" or a whole number/],
    [{ env: { IOT_TOFU_ADMISSION_BUDGET: 'NaN' } }, /environment IOT_TOFU_ADMISSION_BUDGET.*admissionBudget: expected "auto"/],
    [{ file: { path: '/c.json', data: { dockerDisk: '8X' } } }, /config file \/c\.json.*dockerDisk: docker disk size "8X" is not a size/],
    [{ env: { IOT_TOFU_DOCKER_DISK: '1M' } }, /environment IOT_TOFU_DOCKER_DISK.*dockerDisk: .*below the minimum/],
  ];
  it.each(bad)('%j', (layers, message) => {
    let thrown: unknown;
    try {
      resolveConfig(layers, host);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).code).toBe('CONFIG_INVALID');
    expect((thrown as Error).message).toMatch(message);
    expect((thrown as Error).message).not.toContain('\n');
  });
});

describe('default server IP', () => {
  it('needs exactly one candidate', () => {
    expect(defaultServerIp(['10.1.1.1', '10.1.1.1'])).toBe('10.1.1.1');
    expect(() => defaultServerIp([])).toThrow(/serverIp: no non-internal IPv4/);
    expect(() => defaultServerIp(['10.1.1.1', '10.2.2.2'])).toThrow(/serverIp: several IPv4 addresses \(10\.1\.1\.1, 10\.2\.2\.2\)/);
  });
  it('is not needed when given', () => {
    expect(resolveConfig({ flags: { serverIp: '127.0.0.1' } }, { ipv4s: [], cwd: '/' }).serverIp).toBe('127.0.0.1');
  });
  it('reads os.networkInterfaces() shapes (node 18 numeric family too)', () => {
    expect(
      nonInternalIPv4s({
        lo: [{ family: 'IPv4', internal: true, address: '127.0.0.1' }],
        eth0: [
          { family: 'IPv4', internal: false, address: '10.77.0.2' },
          { family: 'IPv6', internal: false, address: 'fe80::1' },
        ],
        eth1: [{ family: 4, internal: false, address: '10.78.0.2' }],
        down: undefined,
      }),
    ).toEqual(['10.77.0.2', '10.78.0.2']);
  });
  it('names environment variables after the keys', () => {
    expect(envName('serverIp')).toBe('IOT_TOFU_SERVER_IP');
    expect(envName('tftpAfterOfferTimeout')).toBe('IOT_TOFU_TFTP_AFTER_OFFER_TIMEOUT');
  });
});

describe('one resolver: boot-server extends the fleet keys pxetools reads', () => {
  it('the fleet keys come out the same from both, for the same file, environment and flags', () => {
    const layers: ConfigLayers = {
      file: { path: '/etc/iot-tofu/config.json', data: { tftpRoot: 'tftp', serverIp: '10.0.0.1', dockerDisk: '8G', tftpPort: 1069 } },
      env: { IOT_TOFU_NFS_ROOT: '/env/nfs', IOT_TOFU_EXPORTS_CLIENTS: '10.0.0.0/24' },
      flags: { stateDir: 'state' },
    };
    const fleet = resolveFleetConfig(layers, host);
    const daemon = resolveConfig(layers, host);
    for (const key of Object.keys(FLEET_KEYS) as Array<keyof FleetConfig>) expect([key, daemon[key]]).toEqual([key, fleet[key]]);
    expect(fleet).toMatchObject({ tftpRoot: '/etc/iot-tofu/tftp', stateDir: '/srv/here/state', dockerDisk: '8G', serverIp: '10.0.0.1' });
  });
});
