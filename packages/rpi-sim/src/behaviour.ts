import { MODEL_INFO, type PiModel } from '@iot-tofu/rpi';

/**
 * What a model's bootloader does on the network, as numbers (docs/pi-netboot-protocol.md 1 and 3). Every value
 * can be overridden per run, like the EEPROM properties they mirror.
 */
export interface PiBehaviour {
  readonly model: PiModel;
  /** Resend interval of DISCOVER/REQUEST (EEPROM DHCP_REQ_TIMEOUT, 4 s; Pi 3 ROM 5 s). */
  readonly dhcpResendMs: number;
  /** Whole DHCP sequence (EEPROM DHCP_TIMEOUT 45 s; Pi 3 ROM: 5 tries × 5 s). */
  readonly dhcpTimeoutMs: number;
  /** Pi 4/5 send DHCPREQUEST and wait for the ACK; the Pi 3 ROM and bootcode.bin use the OFFER as is. */
  readonly sendsRequest: boolean;
  /** Pi 3 ROM and bootcode.bin use one constant xid (0x26f30339); Pi 4/5 a random one. */
  readonly constantXid?: number;
  /** Option 55 as this model orders it. */
  readonly parameterRequestList: readonly number[];
  /** Block size asked for after the ROM stage (0 = no blksize option). */
  readonly blksize: number;
  /** TFTP_FILE_TIMEOUT: the whole file must arrive within this (30 s). */
  readonly fileTimeoutMs: number;
  /** RRQ retransmission from the same port while nothing answers (~2 s). */
  readonly rrqResendMs: number;
  /** Re-ACK of the last block when the next DATA does not come (not documented; 1 s assumed). */
  readonly ackResendMs: number;
  /** Pause before a network boot retry after a failure (5 s since EEPROM 2020-06-12). */
  readonly retryBackoffMs: number;
  /** Pi 3 ROM: gives up (low-power sleep) after its DHCP tries instead of retrying. */
  readonly romSleepsAfterDhcpFailure: boolean;
  /** Board revision in the RPi4/RPi5 GUID. */
  readonly boardRevision: number;
}

const PI3_ROM_XID = 0x26f30339;
const EEPROM_PRL = [1, 3, 43, 60, 66, 67, 128, 129, 130, 131, 132, 133, 134, 135];
const PI3_ROM_PRL = [43, 60, 67, 128, 129, 130, 131, 132, 133, 134, 135, 66];

const EEPROM_DEFAULTS = {
  dhcpResendMs: 4000,
  dhcpTimeoutMs: 45_000,
  sendsRequest: true,
  parameterRequestList: EEPROM_PRL,
  blksize: 1468,
  fileTimeoutMs: 30_000,
  rrqResendMs: 2000,
  ackResendMs: 1000,
  retryBackoffMs: 5000,
  romSleepsAfterDhcpFailure: false,
} as const;

const BEHAVIOURS: Readonly<Record<PiModel, PiBehaviour>> = {
  pi3b: {
    ...EEPROM_DEFAULTS,
    model: 'pi3b',
    dhcpResendMs: 5000,
    dhcpTimeoutMs: 25_000,
    sendsRequest: false,
    constantXid: PI3_ROM_XID,
    parameterRequestList: PI3_ROM_PRL,
    blksize: 0,
    romSleepsAfterDhcpFailure: true,
    boardRevision: 0xa02082,
  },
  'pi3b+': {
    ...EEPROM_DEFAULTS,
    model: 'pi3b+',
    dhcpResendMs: 5000,
    dhcpTimeoutMs: 25_000,
    sendsRequest: false,
    constantXid: PI3_ROM_XID,
    blksize: 0,
    boardRevision: 0xa020d3,
  },
  pi4: { ...EEPROM_DEFAULTS, model: 'pi4', boardRevision: 0xc03114 },
  pi5: { ...EEPROM_DEFAULTS, model: 'pi5', parameterRequestList: EEPROM_PRL, boardRevision: 0xd04170 },
};

export function behaviourFor(model: PiModel, overrides: Partial<Omit<PiBehaviour, 'model'>> = {}): PiBehaviour {
  return { ...BEHAVIOURS[model], ...overrides };
}

/** The ROM of a Pi 3 fetches bootcode.bin and bootsig.bin with 512-byte blocks and no options. */
export function hasRomStage(model: PiModel): boolean {
  return MODEL_INFO[model].stage1 === 'rom';
}
