/** DHCP option codes this package reads or writes (RFC 2132, 3004, 4578; iPXE 175). */
export const DhcpOption = {
  Pad: 0,
  SubnetMask: 1,
  Router: 3,
  DnsServers: 6,
  HostName: 12,
  BroadcastAddress: 28,
  VendorSpecific: 43,
  RequestedIp: 50,
  LeaseTime: 51,
  Overload: 52,
  MessageType: 53,
  ServerId: 54,
  ParameterRequestList: 55,
  Message: 56,
  MaxMessageSize: 57,
  RenewalTime: 58,
  RebindingTime: 59,
  VendorClass: 60,
  ClientId: 61,
  TftpServerName: 66,
  BootfileName: 67,
  UserClass: 77,
  ClientArch: 93,
  ClientNdi: 94,
  ClientGuid: 97,
  Etherboot: 175,
  End: 255,
} as const;

/** Option 53 values (RFC 2132 9.6). */
export const DhcpMessageType = {
  Discover: 1,
  Offer: 2,
  Request: 3,
  Decline: 4,
  Ack: 5,
  Nak: 6,
  Release: 7,
  Inform: 8,
} as const;
export type DhcpMessageTypeName = 'discover' | 'offer' | 'request' | 'decline' | 'ack' | 'nak' | 'release' | 'inform';

const TYPE_NAMES: Record<number, DhcpMessageTypeName> = {
  1: 'discover',
  2: 'offer',
  3: 'request',
  4: 'decline',
  5: 'ack',
  6: 'nak',
  7: 'release',
  8: 'inform',
};

export function messageTypeName(value: number | undefined): DhcpMessageTypeName | undefined {
  return value === undefined ? undefined : TYPE_NAMES[value];
}

/** RFC 4578 / IANA processor architecture types that matter for a proxy. */
export const ClientArch = {
  X86Bios: 0,
  Ia32Efi: 6,
  X64Efi: 7,
  EbcEfi: 9,
  Arm32Efi: 10,
  Arm64Efi: 11,
  X86HttpEfi: 15,
  X64HttpEfi: 16,
  Arm32HttpEfi: 18,
  Arm64HttpEfi: 19,
} as const;

/** BOOTP broadcast flag (RFC 2131 figure 2). */
export const BROADCAST_FLAG = 0x8000;

/** `63 82 53 63` */
export const MAGIC_COOKIE = 0x63825363;

/** Fixed BOOTP header plus the magic cookie; options start here. */
export const OPTIONS_OFFSET = 240;

/** RFC 951/1542 minimum BOOTP message (dnsmasq MIN_PACKETSZ): replies are zero-padded up to it. */
export const MIN_MESSAGE_SIZE = 300;

/** Largest DHCP message every client must accept: 576-byte IP datagram minus IP and UDP headers. */
export const DEFAULT_MAX_MESSAGE_SIZE = 548;
