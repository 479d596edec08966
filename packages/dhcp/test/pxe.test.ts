import { DecodeError } from '@iot-tofu/errors';
import { describe, expect, it } from 'vitest';
import {
  DhcpEncodeError,
  decodeClientArch,
  decodePxeMenu,
  decodePxeVendorOptions,
  encodePxeVendorOptions,
  offersRaspberryPiBoot,
  parsePxeVendorClass,
  raspberryPiBootOption,
  skipDiscoveryOption,
} from '../src/index.js';

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');

describe('PXE option 43 builders', () => {
  it('builds the 32-byte dnsmasq "Raspberry Pi Boot" blob (docs/pi-netboot-protocol.md 2.3)', () => {
    const blob = raspberryPiBootOption();
    expect(blob.length).toBe(32);
    expect(hex(blob)).toBe('060103' + '0a0400505845' + '0914000011' + Buffer.from('Raspberry Pi Boot').toString('hex') + 'ff');
  });

  it('three-space variant: 43 length 0x23 with sub-option 9 length 0x17', () => {
    const blob = raspberryPiBootOption({ threeSpaces: true });
    expect(blob.length).toBe(0x23);
    expect(blob[10]).toBe(0x17);
    expect(decodePxeMenu(decodePxeVendorOptions(blob).get(9)!)).toEqual([{ type: 0, text: 'Raspberry Pi Boot   ' }]);
  });

  it('BIOS skip-discovery blob is 06 01 08 ff', () => {
    expect(hex(skipDiscoveryOption())).toBe('060108ff');
  });

  it('refuses an option 43 larger than 255 bytes', () => {
    expect(() =>
      encodePxeVendorOptions([
        [9, new Uint8Array(200)],
        [10, new Uint8Array(100)],
      ]),
    ).toThrow(DhcpEncodeError);
  });

  it('recognises the Pi menu the way a Pi bootloader does (substring of a menu item)', () => {
    expect(offersRaspberryPiBoot(raspberryPiBootOption())).toBe(true);
    expect(offersRaspberryPiBoot(raspberryPiBootOption({ threeSpaces: true }))).toBe(true);
    expect(offersRaspberryPiBoot(skipDiscoveryOption())).toBe(false);
    expect(offersRaspberryPiBoot(undefined)).toBe(false);
    expect(offersRaspberryPiBoot(Uint8Array.of(9, 40, 0))).toBe(false);
  });

  it('sub-option decoder throws DecodeError on truncation, never RangeError', () => {
    const blob = raspberryPiBootOption();
    for (let length = 1; length < blob.length; length++) {
      try {
        decodePxeVendorOptions(blob.subarray(0, length));
      } catch (error) {
        expect(error).toBeInstanceOf(DecodeError);
      }
    }
  });
});

describe('parsePxeVendorClass', () => {
  it.each([
    ['PXEClient:Arch:00000:UNDI:002001', { client: 'PXEClient', arch: 0, undi: { major: 2, minor: 1 } }],
    ['PXEClient:Arch:00007:UNDI:003016', { client: 'PXEClient', arch: 7, undi: { major: 3, minor: 16 } }],
    ['PXEClient', { client: 'PXEClient' }],
    ['HTTPClient:Arch:00016:UNDI:003001', { client: 'HTTPClient', arch: 16, undi: { major: 3, minor: 1 } }],
    ['MSFT 5.0', undefined],
    ['udhcp 1.35.0', undefined],
    [undefined, undefined],
  ])('%s', (text, expected) => {
    expect(parsePxeVendorClass(text)).toEqual(expected);
  });
});

describe('decodeClientArch', () => {
  it.each([
    [Uint8Array.of(0, 0), [0]],
    [Uint8Array.of(0, 7), [7]],
    [Uint8Array.of(0, 11, 0, 7), [11, 7]],
    [Uint8Array.of(0), undefined],
    [Uint8Array.of(0, 7, 1), undefined],
    [undefined, undefined],
  ])('%j → %j', (bytes, expected) => {
    expect(decodeClientArch(bytes)).toEqual(expected);
  });
});
