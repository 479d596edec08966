import { DecodeError } from '@iot-tofu/errors';
import { DhcpEncodeError } from './errors.js';
import { asciiBytes } from './codec.js';

/** PXE 2.1 option-43 sub-option codes (ipxe include/ipxe/dhcp.h). */
export const PxeSubOption = {
  DiscoveryControl: 6,
  MulticastAddress: 7,
  BootServers: 8,
  BootMenu: 9,
  MenuPrompt: 10,
  BootItem: 71,
  End: 255,
} as const;

/** The string a Raspberry Pi bootloader looks for in option 43 (EEPROM PXE_OPTION43 default). */
export const RASPBERRY_PI_BOOT = 'Raspberry Pi Boot';

export interface PxeMenuItem {
  /** Boot server type; 0 = local boot (what dnsmasq sends for `pxe-service=0,…`). */
  type: number;
  text: string;
}

/** Encodes sub-options in the given order and closes them with END (255), as dnsmasq does. */
export function encodePxeVendorOptions(subOptions: Iterable<readonly [number, Uint8Array]>): Uint8Array {
  const out: number[] = [];
  for (const [code, value] of subOptions) {
    if (code <= 0 || code >= 255) throw new DhcpEncodeError(`PXE sub-option code ${code} cannot carry a value`);
    if (value.length > 255) throw new DhcpEncodeError(`PXE sub-option ${code} is ${value.length} bytes, at most 255 fit`);
    out.push(code, value.length, ...value);
  }
  out.push(PxeSubOption.End);
  if (out.length > 255) throw new DhcpEncodeError(`option 43 would be ${out.length} bytes, at most 255 fit`);
  return Uint8Array.from(out);
}

/** Sub-option 9 value: type (2 bytes, big-endian), text length (1), text. */
export function encodePxeMenu(items: readonly PxeMenuItem[]): Uint8Array {
  const out: number[] = [];
  for (const item of items) {
    const text = asciiBytes(item.text);
    if (text.length > 255) throw new DhcpEncodeError('PXE menu text longer than 255 bytes');
    out.push((item.type >> 8) & 0xff, item.type & 0xff, text.length, ...text);
  }
  return Uint8Array.from(out);
}

/** Sub-option 10 value: timeout in seconds (0 = take the first item at once), prompt text. */
export function encodePxePrompt(timeoutSeconds: number, text: string): Uint8Array {
  return Uint8Array.from([timeoutSeconds & 0xff, ...asciiBytes(text)]);
}

/**
 * dnsmasq's option 43 for `pxe-service=0,"Raspberry Pi Boot"` (docs/pi-netboot-protocol.md 2.3), byte for byte:
 * discovery control 3, prompt (0, "PXE"), one local-boot menu item, END. `threeSpaces` appends
 * three spaces to the menu text for Pi 3B ROMs with the string-length bug (43 length 0x23).
 */
export function raspberryPiBootOption(options: { threeSpaces?: boolean } = {}): Uint8Array {
  const text = options.threeSpaces ? `${RASPBERRY_PI_BOOT}   ` : RASPBERRY_PI_BOOT;
  return encodePxeVendorOptions([
    [PxeSubOption.DiscoveryControl, Uint8Array.of(3)],
    [PxeSubOption.MenuPrompt, encodePxePrompt(0, 'PXE')],
    [PxeSubOption.BootMenu, encodePxeMenu([{ type: 0, text }])],
  ]);
}

/** Option 43 for a BIOS PXE ROM: discovery control 8 = boot the `file` of this offer, no menu. */
export function skipDiscoveryOption(): Uint8Array {
  return encodePxeVendorOptions([[PxeSubOption.DiscoveryControl, Uint8Array.of(8)]]);
}

/** Splits option 43 into its sub-options (END stops, PAD skipped; bounds checked). */
export function decodePxeVendorOptions(bytes: Uint8Array): Map<number, Uint8Array> {
  const out = new Map<number, Uint8Array>();
  let offset = 0;
  while (offset < bytes.length) {
    const code = bytes[offset] as number;
    if (code === 0) {
      offset += 1;
      continue;
    }
    if (code === PxeSubOption.End) break;
    const length = bytes[offset + 1];
    if (length === undefined) throw new DecodeError(`PXE sub-option ${code} has no length byte`, offset);
    if (offset + 2 + length > bytes.length) throw new DecodeError(`PXE sub-option ${code} runs past the end`, offset);
    out.set(code, bytes.slice(offset + 2, offset + 2 + length));
    offset += 2 + length;
  }
  return out;
}

/** Parses sub-option 9 into menu items. */
export function decodePxeMenu(bytes: Uint8Array): PxeMenuItem[] {
  const items: PxeMenuItem[] = [];
  let offset = 0;
  while (offset < bytes.length) {
    if (offset + 3 > bytes.length) throw new DecodeError('PXE menu item header truncated', offset);
    const type = ((bytes[offset] as number) << 8) | (bytes[offset + 1] as number);
    const length = bytes[offset + 2] as number;
    if (offset + 3 + length > bytes.length) throw new DecodeError('PXE menu item text runs past the end', offset);
    items.push({ type, text: String.fromCharCode(...bytes.subarray(offset + 3, offset + 3 + length)) });
    offset += 3 + length;
  }
  return items;
}

/** What a Pi bootloader checks: does a menu item of this option 43 contain the boot string? */
export function offersRaspberryPiBoot(option43: Uint8Array | undefined, match = RASPBERRY_PI_BOOT): boolean {
  if (!option43) return false;
  try {
    const menu = decodePxeVendorOptions(option43).get(PxeSubOption.BootMenu);
    return !!menu && decodePxeMenu(menu).some((item) => item.text.includes(match));
  } catch {
    return false;
  }
}

export interface PxeVendorClass {
  /** `PXEClient` or `HTTPClient` (UEFI HTTP boot). */
  client: 'PXEClient' | 'HTTPClient';
  arch?: number;
  undi?: { major: number; minor: number };
}

/** Parses option 60 `PXEClient:Arch:00000:UNDI:002001`; undefined for non-PXE vendor classes. */
export function parsePxeVendorClass(text: string | undefined): PxeVendorClass | undefined {
  if (text === undefined) return undefined;
  const client = text.startsWith('PXEClient') ? 'PXEClient' : text.startsWith('HTTPClient') ? 'HTTPClient' : undefined;
  if (!client) return undefined;
  const result: PxeVendorClass = { client };
  const arch = /:Arch:(\d{5})/.exec(text);
  if (arch?.[1]) result.arch = Number(arch[1]);
  const undi = /:UNDI:(\d{3})(\d{3})/.exec(text);
  if (undi?.[1] && undi[2]) result.undi = { major: Number(undi[1]), minor: Number(undi[2]) };
  return result;
}

/** Option 93: a list of 16-bit architecture types; the first one is the client's own. */
export function decodeClientArch(bytes: Uint8Array | undefined): number[] | undefined {
  if (!bytes || bytes.length < 2 || bytes.length % 2 !== 0) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: number[] = [];
  for (let offset = 0; offset < bytes.length; offset += 2) out.push(view.getUint16(offset));
  return out;
}
