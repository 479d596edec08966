import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import {
  DhcpMessageType,
  DhcpOption,
  asciiBytes,
  clientMac,
  decodeDhcpMessage,
  encodeDhcpMessage,
  ipv4FromBytes,
  ipv4ToBytes,
  messageType,
  offersRaspberryPiBoot,
  optionText,
  type DhcpMessage,
} from '@iot-tofu/dhcp';
import { IotTofuError } from '@iot-tofu/errors';
import type { Clock } from './clock.js';
import type { LeaseOutcome, LeaseRequest } from './pi.js';

export class DhcpClientBindError extends IotTofuError {
  constructor(address: string, port: number, cause: unknown) {
    super('DHCP_CLIENT_BIND', `cannot bind the simulated Pis' DHCP socket to ${address}:${port}: ${(cause as Error).message}`, { cause });
  }
}

const PXE_CLIENT = 'PXEClient:Arch:00000:UNDI:002001';

/**
 * The DHCP side of many simulated Pis: one socket on 0.0.0.0:68 (like every Pi, it has no address
 * yet), replies demultiplexed by chaddr and then xid. Bad datagrams are counted and dropped.
 */
export class DhcpClientPort {
  private socket: Socket | undefined;
  private readonly listeners = new Map<string, (message: DhcpMessage, from: RemoteInfo) => void>();
  /** Datagrams that were not a decodable reply to one of our Pis. */
  dropped = 0;

  constructor(private readonly options: { bindAddress?: string; port?: number; serverPort?: number; broadcast?: string } = {}) {}

  async start(): Promise<void> {
    const socket = createSocket({ type: 'udp4', reuseAddr: true });
    const address = this.options.bindAddress ?? '0.0.0.0';
    const port = this.options.port ?? 68;
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (error) => reject(new DhcpClientBindError(address, port, error)));
      socket.bind({ address, port }, () => resolve());
    });
    socket.setBroadcast(true);
    socket.on('error', () => this.dropped++);
    socket.on('message', (bytes, from) => this.receive(bytes, from));
    this.socket = socket;
  }

  private receive(bytes: Buffer, from: RemoteInfo): void {
    let message: DhcpMessage;
    try {
      message = decodeDhcpMessage(bytes);
    } catch {
      this.dropped++;
      return;
    }
    const mac = message.op === 2 ? clientMac(message) : undefined;
    const listener = mac ? this.listeners.get(mac) : undefined;
    if (!listener) {
      this.dropped++;
      return;
    }
    listener(message, from);
  }

  /** Routes replies for `mac` to `handler` until the returned function is called. */
  subscribe(mac: string, handler: (message: DhcpMessage, from: RemoteInfo) => void): () => void {
    this.listeners.set(mac, handler);
    return () => {
      if (this.listeners.get(mac) === handler) this.listeners.delete(mac);
    };
  }

  send(bytes: Uint8Array): void {
    this.socket?.send(bytes, this.options.serverPort ?? 67, this.options.broadcast ?? '255.255.255.255', () => undefined);
  }

  close(): void {
    this.socket?.close();
    this.socket = undefined;
    this.listeners.clear();
  }
}

/** A DISCOVER or REQUEST as the Pi bootloaders send it (docs/pi-netboot-protocol.md 2.1: option order 53, 55, 93, 94, 97, 60). */
export function encodePiDhcpRequest(
  request: Pick<LeaseRequest, 'identity' | 'behaviour' | 'xid' | 'guid'>,
  select?: { address: string; serverId: string },
): Uint8Array {
  const options: [number, Uint8Array][] = [
    [DhcpOption.MessageType, Uint8Array.of(select ? DhcpMessageType.Request : DhcpMessageType.Discover)],
  ];
  if (select) {
    options.push([DhcpOption.RequestedIp, ipv4ToBytes(select.address)]);
    options.push([DhcpOption.ServerId, ipv4ToBytes(select.serverId)]);
  }
  options.push(
    [DhcpOption.ParameterRequestList, Uint8Array.from(request.behaviour.parameterRequestList)],
    [DhcpOption.ClientArch, Uint8Array.of(0, 0)],
    [DhcpOption.ClientNdi, Uint8Array.of(1, 2, 1)],
    [DhcpOption.ClientGuid, request.guid],
    [DhcpOption.VendorClass, asciiBytes(PXE_CLIENT)],
  );
  return encodeDhcpMessage({ op: 1, xid: request.xid, chaddr: request.identity.mac, flags: 0, options });
}

/**
 * One bootloader DHCP sequence: DISCOVER every dhcpResendMs, keep the first address offer and the
 * first "Raspberry Pi Boot" offer, then (Pi 4/5) REQUEST the address and wait for its ACK; all
 * within dhcpTimeoutMs. TFTP server: option 66 if present, else option 54 (Pi 4/5) or the offer's
 * source address (Pi 3 ROM).
 */
export function acquireLease(port: DhcpClientPort, clock: Clock, request: LeaseRequest): Promise<LeaseOutcome> {
  const { behaviour, identity, xid, signal } = request;
  return new Promise<LeaseOutcome>((resolve) => {
    let address: { address: string; serverId: string } | undefined;
    let tftpServer: string | undefined;
    let requesting = false;
    let resendTimer: unknown;
    let finished = false;

    const finish = (outcome: LeaseOutcome) => {
      if (finished) return;
      finished = true;
      clock.clearTimeout(resendTimer);
      clock.clearTimeout(deadline);
      signal.removeEventListener('abort', onAbort);
      unsubscribe();
      resolve(outcome);
    };
    const transmit = () => {
      if (requesting && address) port.send(encodePiDhcpRequest(request, address));
      else {
        port.send(encodePiDhcpRequest(request));
        request.onEvent({ kind: 'discover', xid });
      }
      resendTimer = clock.setTimeout(transmit, behaviour.dhcpResendMs);
    };
    const proceed = () => {
      if (!address || !tftpServer) return;
      if (!behaviour.sendsRequest) return finish({ ok: true, lease: { address: address.address, tftpServer } });
      if (requesting) return;
      requesting = true;
      clock.clearTimeout(resendTimer);
      transmit();
    };
    const onReply = (message: DhcpMessage, from: RemoteInfo) => {
      if (message.xid !== xid) return;
      const type = messageType(message);
      const serverId = message.options.get(DhcpOption.ServerId);
      const sender = serverId?.length === 4 ? ipv4FromBytes(serverId) : from.address;
      if (type === 'offer') {
        const pxe = offersRaspberryPiBoot(message.options.get(DhcpOption.VendorSpecific));
        const offered = message.yiaddr !== '0.0.0.0' ? message.yiaddr : undefined;
        request.onEvent({ kind: 'offer', from: sender, pxe, ...(offered ? { address: offered } : {}) });
        if (offered && !address) address = { address: offered, serverId: sender };
        if (pxe && !tftpServer) {
          const option66 = optionText(message, DhcpOption.TftpServerName)?.replace(/\0+$/, '');
          tftpServer = option66 || (identity.model === 'pi4' || identity.model === 'pi5' ? sender : from.address);
        }
        proceed();
      } else if (type === 'ack' && requesting && address && message.yiaddr === address.address) {
        finish({ ok: true, lease: { address: address.address, tftpServer: tftpServer ?? sender } });
      } else if (type === 'nak' && requesting) {
        // Start over with a fresh DISCOVER; the deadline still runs.
        requesting = false;
        address = undefined;
        clock.clearTimeout(resendTimer);
        transmit();
      }
    };
    const onAbort = () => finish({ ok: false, detail: 'stopped' });
    const unsubscribe = port.subscribe(identity.mac, onReply);
    const deadline = clock.setTimeout(() => {
      const missing = [!address && 'no address offer', !tftpServer && 'no "Raspberry Pi Boot" offer', requesting && 'no ACK'].filter(
        Boolean,
      );
      finish({ ok: false, detail: `${behaviour.dhcpTimeoutMs} ms: ${missing.join(', ')}` });
    }, behaviour.dhcpTimeoutMs);
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) return onAbort();
    transmit();
  });
}
