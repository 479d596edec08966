import { macFromBytes } from './mac.js';
import { serialFromNumber } from './serial.js';

/**
 * What the option-97 client GUID of a Pi DISCOVER says (17 bytes: type 0 + 16-byte GUID).
 * - Pi 4/5 default (EEPROM DHCP_OPTION97=0x34695052): FourCC `RPi4`/`RPi5`, board revision,
 *   low 4 bytes of the MAC, serial; the numbers little-endian.
 * - DHCP_OPTION97=0 and Pi 3B+: the serial repeated four times, little-endian.
 * - Pi 3B ROM: a constant (sixteen 0x44 bytes).
 */
export type PiGuid =
  | { kind: 'fourcc'; model: 'pi4' | 'pi5'; boardRevision: number; macLow: string; serial: string }
  | { kind: 'serial-x4'; serial: string }
  | { kind: 'pi3-rom' };

const FOURCC_MODELS: Record<string, 'pi4' | 'pi5'> = { RPi4: 'pi4', RPi5: 'pi5' };

export function parsePiGuid(option97: Uint8Array): PiGuid | undefined {
  if (option97.length !== 17 || option97[0] !== 0) return undefined;
  const guid = option97.subarray(1);
  const view = new DataView(guid.buffer, guid.byteOffset, guid.byteLength);
  if (guid.every((b) => b === 0x44)) return { kind: 'pi3-rom' };
  const fourcc = String.fromCharCode(...guid.subarray(0, 4));
  const model = FOURCC_MODELS[fourcc];
  if (model) {
    return {
      kind: 'fourcc',
      model,
      boardRevision: view.getUint32(4, true),
      macLow: macFromBytes(Uint8Array.of(0, 0, ...guid.subarray(8, 12))).slice(6),
      serial: serialFromNumber(view.getUint32(12, true)),
    };
  }
  const first = view.getUint32(0, true);
  if (first !== 0 && [4, 8, 12].every((off) => view.getUint32(off, true) === first)) {
    return { kind: 'serial-x4', serial: serialFromNumber(first) };
  }
  return undefined;
}

/** Builds the 17-byte option 97 a Pi sends (used by the simulator and tests). */
export function encodePiGuid(guid: PiGuid, mac?: string): Uint8Array {
  const out = new Uint8Array(17);
  const view = new DataView(out.buffer, 1);
  if (guid.kind === 'pi3-rom') out.fill(0x44, 1);
  else if (guid.kind === 'serial-x4') {
    const serial = parseInt(guid.serial, 16);
    for (const off of [0, 4, 8, 12]) view.setUint32(off, serial, true);
  } else {
    out.set(
      Array.from(guid.model === 'pi4' ? 'RPi4' : 'RPi5', (c) => c.charCodeAt(0)),
      1,
    );
    view.setUint32(4, guid.boardRevision, true);
    const macBytes = (mac ?? `00:00:${guid.macLow}`).split(':').map((p) => parseInt(p, 16));
    out.set(macBytes.slice(2, 6), 9);
    view.setUint32(12, parseInt(guid.serial, 16), true);
  }
  return out;
}
