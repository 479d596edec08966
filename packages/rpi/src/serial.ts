import { IotTofuError } from '@iot-tofu/errors';
import { SERIAL_PATTERN } from './fields.js';

/**
 * A Raspberry Pi serial as the operator typed it (8 or 16 hex digits, any case, leading zeros
 * kept) and the name of its TFTP folder: the low 8 hex digits in lower case, which is what the
 * bootloader asks for with TFTP_PREFIX=0 (`printf("%08x/", serial)`).
 */
export interface PiSerial {
  /** Every digit given, lower case: 8 for Pi 3/4, 16 when copied from a Pi 4/5 /proc/cpuinfo. */
  readonly full: string;
  /** The low 32 bits as 8 lower-case hex digits: folder name, registry key, export path. */
  readonly short: string;
}

export class InvalidSerialError extends IotTofuError {
  constructor(input: string) {
    super(
      'INVALID_SERIAL',
      `Invalid serial number ${JSON.stringify(input)}: expected 8 or 16 hex digits (e.g. 9f55bbfd or 100000009f55bbfd)`,
    );
  }
}

/**
 * Parses a serial; unlike upstream pxetools it keeps leading zeros and accepts upper case. The
 * input is taken as given (SERIAL_PATTERN, the rule the API checks too): a prompt trims its answer.
 */
export function parseSerial(input: string): PiSerial {
  if (!SERIAL_PATTERN.test(input)) throw new InvalidSerialError(input);
  const full = input.toLowerCase().replace(/^0x/, '');
  return { full, short: full.slice(-8) };
}

/** The 8-digit folder name for a serial, or throws InvalidSerialError. */
export function serialFolder(input: string): string {
  return parseSerial(input).short;
}

export function isSerialFolderName(name: string): boolean {
  return /^[0-9a-f]{8}$/.test(name);
}

/** Formats the low 32 bits of a numeric serial the way the bootloader names its folder. */
export function serialFromNumber(value: number): string {
  return (value >>> 0).toString(16).padStart(8, '0');
}
