import { createSocket, type RemoteInfo } from 'node:dgram';
import { TftpErrorCode, decodeTftpPacket, encodeTftpPacket, type TftpPacket } from '@iot-tofu/tftp';
import type { Clock } from './clock.js';
import type { FetchOutcome, FetchRequest } from './pi.js';

const EARLY_TERMINATE = encodeTftpPacket({ type: 'error', code: TftpErrorCode.NOT_DEFINED, message: 'Early terminate' });

/**
 * One TFTP read the way a Pi bootloader does it: its own socket (a fresh source port), RRQ resent
 * from that port every rrqResendMs until something answers, lock-step ACKs (re-ACK of a duplicate
 * block, last ACK resent after ackResendMs of silence), and the whole file bounded by timeoutMs,
 * after which it sends ERROR 0 "Early terminate" and gives up. A probe ends the same way right
 * after the OACK.
 */
export function fetchFile(clock: Clock, request: FetchRequest, serverPort = 69): Promise<FetchOutcome> {
  return new Promise<FetchOutcome>((resolve) => {
    const socket = createSocket('udp4');
    const options: Record<string, string> = {};
    if (request.tsize) options.tsize = '0';
    if (request.blksize) options.blksize = String(request.blksize);
    const rrq = encodeTftpPacket({ type: 'rrq', filename: request.path, mode: 'octet', options });
    let blksize = 512;
    let expected = 1;
    let bytes = 0;
    const kept: Uint8Array[] = [];
    let retransmits = 0;
    let serverTid: number | undefined;
    let lastSent: Uint8Array = rrq;
    let resendTimer: unknown;
    let finished = false;

    const finish = (outcome: Omit<FetchOutcome, 'bytes' | 'retransmits'>, farewell?: Uint8Array) => {
      if (finished) return;
      finished = true;
      clock.clearTimeout(resendTimer);
      clock.clearTimeout(fileTimer);
      request.signal.removeEventListener('abort', onAbort);
      const done = () => {
        try {
          socket.close();
        } catch {
          // already closed after a socket error
        }
        resolve({
          ...outcome,
          bytes,
          retransmits,
          ...(request.keepContent && outcome.result === 'ok' ? { content: Buffer.concat(kept) } : {}),
        });
      };
      if (farewell && serverTid !== undefined) socket.send(farewell, serverTid, request.server, done);
      else done();
    };
    const send = (packet: Uint8Array, port: number) => {
      lastSent = packet;
      socket.send(packet, port, request.server, () => undefined);
    };
    const armResend = (ms: number) => {
      clock.clearTimeout(resendTimer);
      resendTimer = clock.setTimeout(() => {
        retransmits++;
        socket.send(lastSent, serverTid ?? serverPort, request.server, () => undefined);
        armResend(ms);
      }, ms);
    };
    const onMessage = (datagram: Buffer, from: RemoteInfo) => {
      if (finished || from.address !== request.server) return;
      if (serverTid !== undefined && from.port !== serverTid) return;
      let packet: TftpPacket;
      try {
        packet = decodeTftpPacket(datagram);
      } catch {
        return; // a malformed datagram is dropped; the resend timer keeps the transfer alive
      }
      serverTid ??= from.port;
      switch (packet.type) {
        case 'oack': {
          if (expected !== 1) return;
          if (request.probe) return finish({ result: 'probe' }, EARLY_TERMINATE);
          blksize = Number(packet.options.blksize ?? 512);
          send(encodeTftpPacket({ type: 'ack', block: 0 }), serverTid);
          armResend(request.ackResendMs);
          return;
        }
        case 'data': {
          if (packet.block === (expected & 0xffff)) {
            bytes += packet.data.length;
            if (request.keepContent) kept.push(Buffer.from(packet.data));
            if (request.probe) return finish({ result: 'probe' }, EARLY_TERMINATE);
            const ack = encodeTftpPacket({ type: 'ack', block: packet.block });
            // The last block: its ACK goes out before the socket closes (else the server retransmits until it gives up).
            if (packet.data.length < blksize) return finish({ result: 'ok' }, ack);
            expected++;
            send(ack, serverTid);
            armResend(request.ackResendMs);
          } else if (packet.block === ((expected - 1) & 0xffff)) {
            // The server resent a block we already have: ACK it again (2021+ EEPROM behaviour).
            socket.send(encodeTftpPacket({ type: 'ack', block: packet.block }), serverTid, request.server, () => undefined);
          }
          return;
        }
        case 'error':
          return finish({
            result: packet.code === TftpErrorCode.FILE_NOT_FOUND ? 'not-found' : 'error',
            detail: packet.message || `TFTP error ${packet.code}`,
          });
        default:
          return;
      }
    };
    const onAbort = () => finish({ result: 'timeout', detail: 'stopped' }, EARLY_TERMINATE);
    const fileTimer = clock.setTimeout(
      () => finish({ result: 'timeout', detail: `not complete after ${request.timeoutMs} ms (${bytes} B)` }, EARLY_TERMINATE),
      request.timeoutMs,
    );
    request.signal.addEventListener('abort', onAbort, { once: true });
    socket.on('message', onMessage);
    socket.on('error', () => undefined);
    socket.bind({ address: request.localAddress, port: 0 }, () => {
      if (finished) return;
      send(rrq, serverPort);
      armResend(request.rrqResendMs);
    });
    socket.once('error', (error) => finish({ result: 'error', detail: `socket: ${error.message}` }));
  });
}
