import { IotTofuError } from '@iot-tofu/errors';
import { MAC_PATTERN } from './fields.js';

export class InvalidMacError extends IotTofuError {
  constructor(input: string) {
    super('INVALID_MAC', `Invalid MAC address ${JSON.stringify(input)}: expected six hex pairs like dc:a6:32:01:36:c2`);
  }
}

/**
 * Normalises `DC-A6-32-01-36-C2`, `dca6320136c2`, `dc:a6:32:01:36:c2` to `dc:a6:32:01:36:c2`;
 * anything else (blanks, one-digit pairs) is refused: MAC_PATTERN, the rule the API checks too.
 */
export function normalizeMac(input: string): string {
  if (!MAC_PATTERN.test(input)) throw new InvalidMacError(input);
  const hex = input.toLowerCase().replace(/[:-]/g, '');
  return hex.match(/../g)!.join(':');
}

const HEX_PAIRS = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, '0'));

/** Formats the first six bytes as `aa:bb:cc:dd:ee:ff`; runs once per DHCP packet, so no arrays. */
export function macFromBytes(bytes: Uint8Array): string {
  const pair = (i: number) => HEX_PAIRS[bytes[i] ?? 0];
  return `${pair(0)}:${pair(1)}:${pair(2)}:${pair(3)}:${pair(4)}:${pair(5)}`;
}

export function macToBytes(mac: string): Uint8Array {
  return Uint8Array.from(normalizeMac(mac).split(':'), (p) => parseInt(p, 16));
}

/**
 * Raspberry Pi Ltd / Foundation OUIs seen on Pi Ethernet ports (docs/pi-netboot-protocol.md 1.5). Not complete by
 * definition (MAC_ADDRESS can override it), so it is one hint among several, never the only one.
 */
export const RASPBERRY_PI_OUIS: readonly string[] = ['b8:27:eb', 'dc:a6:32', 'e4:5f:01', '28:cd:c1', 'd8:3a:dd', '2c:cf:67'];

export function hasRaspberryPiOui(mac: string): boolean {
  const oui = normalizeMac(mac).slice(0, 8);
  return RASPBERRY_PI_OUIS.includes(oui);
}

/**
 * The MAC upstream pxetools derives from a serial (`b8:27:eb:` + the serial's last 6 digits).
 * True only for Pi 3B+ and older; shown for Pis never seen so `--list` stays byte-identical.
 */
export function derivedMacFromSerial(serialShort: string): string {
  const tail = serialShort.slice(-6);
  return `b8:27:eb:${tail.slice(0, 2)}:${tail.slice(2, 4)}:${tail.slice(4, 6)}`;
}

/** The folder name a Pi asks for with TFTP_PREFIX=2 (dnsmasq `tftp-unique-root=mac` style). */
export function macPrefixFolder(mac: string): string {
  return normalizeMac(mac).replaceAll(':', '-');
}
