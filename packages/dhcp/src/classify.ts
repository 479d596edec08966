import { RASPBERRY_PI_OUIS, parsePiGuid, type PiModel } from '@iot-tofu/rpi';
import { clientMac, optionText, type DhcpMessage } from './codec.js';
import { ClientArch, DhcpOption } from './options.js';
import { decodeClientArch, parsePxeVendorClass } from './pxe.js';

/** What kind of network-boot client sent a request; decides which answer (if any) it gets. */
export type ClientKind =
  | 'pi'
  | 'ipxe'
  | 'bios'
  | 'uefi-x64'
  | 'uefi-arm64'
  | 'uefi-ia32'
  | 'uefi-arm32'
  | 'uefi-http'
  | 'unknown-pxe'
  | 'not-pxe';

/** Why a client counts as a Raspberry Pi (docs/pi-netboot-protocol.md 1.5, strongest first). */
export type PiEvidence = 'allow-list' | 'guid' | 'oui';

/** Shape of option 97: the Pi 4/5 FourCC layout, the serial repeated (Pi 3B+), the Pi 3B ROM constant. */
export type GuidKind = 'fourcc' | 'serial-x4' | 'pi3-rom' | 'other' | 'none';

export interface ClientInfo {
  /** Lower-case colon MAC from chaddr. */
  mac: string;
  xid: number;
  kind: ClientKind;
  /** First entry of option 93, else the Arch field of option 60. */
  arch?: number;
  /** Option 60 as sent (unsanitised; sanitise before logging). */
  vendorClass?: string;
  guidKind: GuidKind;
  /** Set only for kind 'pi'. */
  piEvidence?: PiEvidence;
  /** From the option-97 GUID when it carries one (8 lower-case hex digits). */
  serial?: string;
  model?: PiModel;
  /** Pi 3B ROM signature (constant GUID, or its constant xid on a B8:27:EB MAC): needs the repeated offer. */
  pi3RomLike: boolean;
}

/** The constant xid of the Pi 3 boot ROM and of bootcode.bin. */
export const PI3_ROM_XID = 0x26f30339;

export interface ClassifyContext {
  /** Operator allow-list (registered MAC or serial): the deterministic Pi test. */
  isRegistered?: (client: { serial?: string; mac: string }) => boolean;
}

/**
 * Classifies a request by its PXE options. Returns undefined when chaddr is not an Ethernet MAC.
 * Architecture 0 alone never means "Pi" (x86 BIOS ROMs send the same vendor class): a Pi needs
 * the allow-list, a Pi 4/5 GUID or a Raspberry Pi OUI on top.
 */
export function classifyClient(message: DhcpMessage, context: ClassifyContext = {}): ClientInfo | undefined {
  const mac = clientMac(message);
  if (!mac) return undefined;
  const vendorClass = optionText(message, DhcpOption.VendorClass);
  const vendor = parsePxeVendorClass(vendorClass);
  const arch = decodeClientArch(message.options.get(DhcpOption.ClientArch))?.[0] ?? vendor?.arch;
  const guidBytes = message.options.get(DhcpOption.ClientGuid);
  const guid = guidBytes ? parsePiGuid(guidBytes) : undefined;
  const guidKind: GuidKind = guid?.kind ?? (guidBytes ? 'other' : 'none');
  const serial = guid && guid.kind !== 'pi3-rom' ? guid.serial : undefined;
  const ouiIsPi = RASPBERRY_PI_OUIS.includes(mac.slice(0, 8)); // mac is already normalised
  const pi3RomLike = guid?.kind === 'pi3-rom' || (message.xid === PI3_ROM_XID && mac.startsWith('b8:27:eb'));

  const info: ClientInfo = { mac, xid: message.xid, kind: 'not-pxe', guidKind, pi3RomLike };
  if (arch !== undefined) info.arch = arch;
  if (vendorClass !== undefined) info.vendorClass = vendorClass;
  if (serial !== undefined) info.serial = serial;
  if (!vendor) return info;

  const ipxe = isIpxe(message);
  if (vendor.client === 'PXEClient' && !ipxe && (arch === undefined || arch === ClientArch.X86Bios)) {
    const evidence: PiEvidence | undefined = context.isRegistered?.(serial ? { serial, mac } : { mac })
      ? 'allow-list'
      : guid?.kind === 'fourcc'
        ? 'guid'
        : ouiIsPi
          ? 'oui'
          : undefined;
    if (evidence) {
      info.kind = 'pi';
      info.piEvidence = evidence;
      const model = guessModel(guid?.kind === 'fourcc' ? guid.model : undefined, guidKind, mac);
      if (model) info.model = model;
      return info;
    }
  }
  info.kind = ipxe ? 'ipxe' : kindForArch(vendor.client, arch);
  return info;
}

/** iPXE announces itself with user class "iPXE" (option 77) and its own option 175. */
function isIpxe(message: DhcpMessage): boolean {
  return message.options.has(DhcpOption.Etherboot) || (optionText(message, DhcpOption.UserClass) ?? '').includes('iPXE');
}

function kindForArch(client: 'PXEClient' | 'HTTPClient', arch: number | undefined): ClientKind {
  if (client === 'HTTPClient') return 'uefi-http';
  switch (arch) {
    case undefined:
    case ClientArch.X86Bios:
      return 'bios';
    case ClientArch.Ia32Efi:
      return 'uefi-ia32';
    case ClientArch.X64Efi:
    case ClientArch.EbcEfi: // RFC 4578 and IANA disagree on 7/9: both are x64 UEFI in practice
      return 'uefi-x64';
    case ClientArch.Arm32Efi:
      return 'uefi-arm32';
    case ClientArch.Arm64Efi:
      return 'uefi-arm64';
    case ClientArch.X86HttpEfi:
    case ClientArch.X64HttpEfi:
    case ClientArch.Arm32HttpEfi:
    case ClientArch.Arm64HttpEfi:
      return 'uefi-http';
    default:
      return 'unknown-pxe';
  }
}

function guessModel(fourcc: 'pi4' | 'pi5' | undefined, guidKind: GuidKind, mac: string): PiModel | undefined {
  if (fourcc) return fourcc;
  if (guidKind === 'pi3-rom') return 'pi3b';
  // The serial-x4 GUID is the 3B+ ROM (or a Pi 4 with DHCP_OPTION97=0): only trust it on a Pi 3 OUI.
  if (guidKind === 'serial-x4' && mac.startsWith('b8:27:eb')) return 'pi3b+';
  return undefined;
}
