import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import { DhcpClientPort, acquireLease } from './dhcp-client.js';
import type { FetchOutcome, FetchRequest, LeaseOutcome, LeaseRequest, PiLink, PiIdentity } from './pi.js';
import { fetchFile } from './tftp-client.js';

export interface NetworkLinkOptions {
  readonly clock?: Clock;
  /** DHCP client socket (default 0.0.0.0:68 → 255.255.255.255:67). */
  readonly dhcp?: { bindAddress?: string; port?: number; serverPort?: number; broadcast?: string };
  readonly tftpPort?: number;
  /**
   * EEPROM CLIENT_IP + TFTP_IP: skip DHCP and use this address (must exist in the namespace) and
   * this TFTP server. For watching a TFTP server without any DHCP.
   */
  readonly staticAddress?: (identity: PiIdentity) => { address: string; tftpServer: string };
}

/** Real sockets: one shared DHCP port for all Pis, one UDP socket per TFTP transfer. */
export class NetworkLink implements PiLink {
  private readonly clock: Clock;
  private readonly dhcpPort: DhcpClientPort | undefined;

  constructor(private readonly options: NetworkLinkOptions = {}) {
    this.clock = options.clock ?? systemClock;
    this.dhcpPort = options.staticAddress ? undefined : new DhcpClientPort(options.dhcp);
  }

  async start(): Promise<void> {
    await this.dhcpPort?.start();
  }

  /** Malformed or unexpected DHCP datagrams seen (dropped, never fatal). */
  get droppedDhcp(): number {
    return this.dhcpPort?.dropped ?? 0;
  }

  acquireLease(request: LeaseRequest): Promise<LeaseOutcome> {
    if (this.options.staticAddress) return Promise.resolve({ ok: true, lease: this.options.staticAddress(request.identity) });
    if (!this.dhcpPort) return Promise.resolve({ ok: false, detail: 'DHCP port not started' });
    return acquireLease(this.dhcpPort, this.clock, request);
  }

  fetch(request: FetchRequest): Promise<FetchOutcome> {
    return fetchFile(this.clock, request, this.options.tftpPort ?? 69);
  }

  close(): void {
    this.dhcpPort?.close();
  }
}
