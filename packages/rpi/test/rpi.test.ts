import { describe, expect, it } from 'vitest';
import {
  parseSerial,
  InvalidSerialError,
  normalizeMac,
  derivedMacFromSerial,
  hasRaspberryPiOui,
  parsePiGuid,
  encodePiGuid,
  requiredBootFiles,
  bootSequence,
  macPrefixFolder,
  checkOwner,
  OWNER_PATTERN,
  SERIAL_PATTERN,
  MAC_PATTERN,
  HOSTNAME_PATTERN,
} from '../src/index.js';

describe('parseSerial', () => {
  it.each([
    ['9f55bbfd', '9f55bbfd', '9f55bbfd'],
    ['9F55BBFD', '9f55bbfd', '9f55bbfd'],
    ['0a1b2c3d', '0a1b2c3d', '0a1b2c3d'], // upstream E1: leading zero kept
    ['000000009f55bbfd', '000000009f55bbfd', '9f55bbfd'],
    ['100000009F55BBFD', '100000009f55bbfd', '9f55bbfd'],
    ['0x9f55bbfd', '9f55bbfd', '9f55bbfd'],
    ['0X9F55BBFD', '9f55bbfd', '9f55bbfd'],
  ])('%j -> full %s, folder %s', (input, full, short) => {
    expect(parseSerial(input)).toEqual({ full, short });
  });

  // One rule with the API (SERIAL_PATTERN): blanks and newlines are refused, not trimmed.
  it.each([
    '',
    '9f55bbf',
    '9f55bbfd0',
    'g f55bbfd',
    '9f55bbfz',
    '../etc',
    '9f55bbfd/..',
    '1234567890abcdef0',
    '9f55bbfd\n',
    '  9f55bbfd',
    '0x 9f55bbfd',
  ])('rejects %j', (input) => {
    expect(() => parseSerial(input)).toThrow(InvalidSerialError);
    expect(() => parseSerial(input)).toThrow(/Invalid serial number/);
  });
});

describe('MAC helpers', () => {
  it('normalises common spellings', () => {
    expect(normalizeMac('DC-A6-32-01-36-C2')).toBe('dc:a6:32:01:36:c2');
    expect(normalizeMac('dca6320136c2')).toBe('dc:a6:32:01:36:c2');
    // One rule with the API (MAC_PATTERN): no one-digit pairs, no blanks.
    expect(() => normalizeMac('dc:a6:32:1:36:c2')).toThrow(/Invalid MAC/);
    expect(() => normalizeMac(' dc:a6:32:01:36:c2\n')).toThrow(/Invalid MAC/);
    expect(() => normalizeMac('dc:a6:32:01:36')).toThrow(/Invalid MAC/);
  });
  it('derives the upstream pxetools MAC (docs/pxetools-compat.md B1 item 23)', () => {
    expect(derivedMacFromSerial('9f55bbfd')).toBe('b8:27:eb:55:bb:fd');
  });
  it('knows Raspberry Pi OUIs', () => {
    expect(hasRaspberryPiOui('d8:3a:dd:12:34:56')).toBe(true);
    expect(hasRaspberryPiOui('52:54:00:12:34:56')).toBe(false);
  });
  it('names the TFTP_PREFIX=2 folder', () => {
    expect(macPrefixFolder('DC:A6:32:01:36:C2')).toBe('dc-a6-32-01-36-c2');
  });
});

describe('option 97 GUID', () => {
  it('reads the Pi 3B+ serial-x4 layout from the docs/lab.md 2 capture', () => {
    const bytes = Uint8Array.from(Buffer.from('007d2464557d2464557d2464557d246455', 'hex'));
    expect(parsePiGuid(bytes)).toEqual({ kind: 'serial-x4', serial: '5564247d' });
  });
  it('reads the Pi 3B ROM constant', () => {
    expect(parsePiGuid(Uint8Array.of(0, ...new Array<number>(16).fill(0x44)))).toEqual({ kind: 'pi3-rom' });
  });
  it('round-trips the RPi4/RPi5 FourCC layout', () => {
    const guid = { kind: 'fourcc', model: 'pi5', boardRevision: 0xd04170, macLow: '3a:dd:12:34', serial: '0a1b2c3d' } as const;
    const bytes = encodePiGuid(guid);
    expect(Buffer.from(bytes.subarray(1, 5)).toString('latin1')).toBe('RPi5');
    expect(parsePiGuid(bytes)).toEqual(guid);
  });
  it('rejects other GUIDs', () => {
    expect(parsePiGuid(new Uint8Array(17))).toBeUndefined();
    expect(parsePiGuid(Uint8Array.of(0, 1, 2))).toBeUndefined();
    expect(parsePiGuid(Uint8Array.of(1, ...new Array<number>(16).fill(0x44)))).toBeUndefined();
  });
});

describe('boot files', () => {
  it('lists what each model must find', () => {
    expect(requiredBootFiles('pi4')).toEqual(
      expect.arrayContaining(['start4.elf', 'fixup4.dat', 'config.txt', 'cmdline.txt', 'kernel8.img', 'bcm2711-rpi-4-b.dtb']),
    );
    expect(requiredBootFiles('pi5')).not.toContain('start4.elf');
    expect(requiredBootFiles('pi3b')).toContain('bootcode.bin');
  });
  it('ends every sequence with the kernel load', () => {
    for (const model of ['pi3b', 'pi3b+', 'pi4', 'pi5'] as const) {
      expect(bootSequence(model).at(-1)?.kernel).toBe(true);
    }
  });
});

describe('one rule per field (issue 19 item 6)', () => {
  it.each([
    ['jo', true],
    ['Jo Smith', true],
    ['müller-lüdenscheid', true],
    ['a$(rm -rf)`x`;|&', true],
    ['x'.repeat(64), true],
    ['x'.repeat(65), false],
    ['', false],
    [' jo', false],
    ['jo ', false],
    ['jo\tsmith', false],
    ['jo\u001b[31m', false],
    ['jo\nsmith', false],
    ['jo/../x', false],
    ['jo\u200e', false],
  ])('owner %j valid: %s', (owner, valid) => {
    expect(OWNER_PATTERN.test(owner)).toBe(valid);
    if (valid) expect(checkOwner(owner)).toBe(owner);
    else expect(() => checkOwner(owner)).toThrow(expect.objectContaining({ code: 'INVALID_OWNER' }));
  });

  it('the patterns compile the way JSON schema does (u flag) and agree with the checks', () => {
    for (const pattern of [SERIAL_PATTERN, MAC_PATTERN, HOSTNAME_PATTERN, OWNER_PATTERN]) {
      const asSchema = new RegExp(pattern.source, 'u');
      for (const sample of [
        '9f55bbfd',
        '0x100000009F55BBFD',
        'dc:a6:32:01:36:c2',
        'DCA6320136C2',
        'rpi4',
        'Jo Smith',
        'jo\t',
        '9f55bbfd\n',
        'pi-',
      ]) {
        expect(asSchema.test(sample), `${pattern.source} on ${JSON.stringify(sample)}`).toBe(pattern.test(sample));
      }
    }
  });
});
