import { createSocket } from 'node:dgram';
import type { Socket } from 'node:dgram';
import { createHash } from 'node:crypto';
import { decodeTftpPacket, encodeTftpPacket } from '../src/index.js';
import type { TftpOptions, TftpPacket } from '../src/index.js';

/**
 * A small, bounded TFTP read client built on our codec, for tests and the benchmark. Lock-step by
 * default, RFC 7440 windows when `windowsize` is negotiated. Every wait is bounded by timeoutMs ×
 * retries, and the whole download by totalTimeoutMs.
 */
export interface GetOptions {
  host: string;
  port: number;
  file: string;
  mode?: string;
  options?: TftpOptions;
  /** Local address to bind (a distinct source IP per simulated client). */
  bindAddress?: string;
  timeoutMs?: number;
  retries?: number;
  totalTimeoutMs?: number;
  /** Keep the bytes (tests); otherwise only count and hash them (bench). */
  keep?: boolean;
  /** Send ERROR 0 "Early terminate" right after the OACK (Pi tsize probe). */
  abortAfterOack?: boolean;
  /** Send ERROR 0 after receiving this many DATA blocks. */
  abortAfterBlocks?: number;
  /** Reuse an existing bound socket (to test same (ip, port) behaviour). */
  socket?: Socket;
}

export interface GetResult {
  ok: boolean;
  data?: Buffer;
  bytes: number;
  sha256: string;
  oack?: TftpOptions;
  error?: { code: number; message: string };
  serverPort?: number;
  blocks: number;
  durationMs: number;
  timedOut?: boolean;
}

export function tftpGet(opts: GetOptions): Promise<GetResult> {
  const timeoutMs = opts.timeoutMs ?? 1000;
  const retries = opts.retries ?? 5;
  const totalTimeoutMs = opts.totalTimeoutMs ?? 60_000;
  const options = opts.options ?? {};
  const requestedWindow = Number(options.windowsize ?? '1');
  const started = performance.now();
  const ownSocket = !opts.socket;
  const socket = opts.socket ?? createSocket('udp4');
  const hash = createHash('sha256');
  const chunks: Buffer[] = [];

  return new Promise<GetResult>((resolve, reject) => {
    let blksize = 512;
    let windowsize = 1;
    let serverPort: number | undefined;
    let expected = 1; // absolute block number
    let inWindow = 0;
    let bytes = 0;
    let oack: TftpOptions | undefined;
    let lastSent: Uint8Array = encodeTftpPacket({ type: 'rrq', filename: opts.file, mode: opts.mode ?? 'octet', options });
    let tries = 0;
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const overall = setTimeout(() => finish({ ok: false, timedOut: true }), totalTimeoutMs);

    const finish = (result: Partial<GetResult> & { ok: boolean }) => {
      if (done) return;
      done = true;
      clearTimeout(overall);
      if (timer) clearTimeout(timer);
      socket.off('message', onMessage);
      // Close only once queued datagrams (the final ACK, an abort) have left.
      if (ownSocket) {
        if (inFlight === 0) socket.close();
        else closeWhenSent = true;
      }
      resolve({
        bytes,
        sha256: hash.digest('hex'),
        blocks: expected - 1,
        durationMs: performance.now() - started,
        ...(opts.keep ? { data: Buffer.concat(chunks) } : {}),
        ...(oack ? { oack } : {}),
        ...(serverPort !== undefined ? { serverPort } : {}),
        ...result,
      });
    };
    let inFlight = 0;
    let closeWhenSent = false;
    const sent = () => {
      if (--inFlight === 0 && closeWhenSent) socket.close();
    };
    const raw = (packet: Uint8Array, port: number) => {
      inFlight++;
      socket.send(packet, port, opts.host, sent);
    };
    const send = (packet: Uint8Array, port: number) => {
      lastSent = packet;
      raw(packet, port);
    };
    const arm = () => {
      if (timer) timer.refresh();
      else timer = setTimeout(onTimeout, timeoutMs);
    };
    const onTimeout = () => {
      timer = undefined;
      if (done) return;
      if (++tries > retries) return finish({ ok: false, timedOut: true });
      raw(lastSent, serverPort ?? opts.port);
      arm();
    };
    const ack = (block: number, port: number) => send(encodeTftpPacket({ type: 'ack', block: block & 0xffff }), port);
    const abort = (port: number) => {
      raw(encodeTftpPacket({ type: 'error', code: 0, message: 'Early terminate' }), port);
      finish({ ok: true });
    };

    const onMessage = (msg: Buffer, rinfo: { address: string; port: number }) => {
      if (done || rinfo.address !== opts.host) return;
      if (serverPort === undefined) serverPort = rinfo.port;
      else if (rinfo.port !== serverPort) {
        raw(encodeTftpPacket({ type: 'error', code: 5, message: 'Unknown transfer ID' }), rinfo.port);
        return;
      }
      // Fast path for DATA: no packet object per block.
      if (msg.length >= 4 && msg[0] === 0 && msg[1] === 3) {
        const block = msg.readUInt16BE(2);
        if (block === (expected & 0xffff)) {
          const payload = msg.subarray(4);
          hash.update(payload);
          if (opts.keep) chunks.push(Buffer.from(payload));
          bytes += payload.length;
          expected++;
          inWindow++;
          tries = 0;
          const last = payload.length < blksize;
          if (opts.abortAfterBlocks !== undefined && expected - 1 >= opts.abortAfterBlocks && !last) return abort(rinfo.port);
          if (last || inWindow >= windowsize) {
            inWindow = 0;
            ack(expected - 1, rinfo.port);
            if (last) return finish({ ok: true });
          }
          arm();
        } else if (windowsize === 1 && block === ((expected - 1) & 0xffff)) {
          // Lock-step duplicate (our ACK was lost): ACK it again, like every RFC 1350 client.
          ack(expected - 1, rinfo.port);
        } else if (windowsize > 1) {
          // Out of order inside a window: tell the server where we are (RFC 7440).
          inWindow = 0;
          ack(expected - 1, rinfo.port);
        }
        return;
      }
      let packet: TftpPacket;
      try {
        packet = decodeTftpPacket(msg);
      } catch (error) {
        return finish({ ok: false, error: { code: -1, message: (error as Error).message } });
      }
      if (packet.type === 'oack') {
        if (expected !== 1 || oack) return; // duplicate OACK: our ACK 0 is covered by the timer
        oack = packet.options;
        blksize = Number(oack.blksize ?? 512);
        windowsize = Number(oack.windowsize ?? 1);
        if (windowsize > requestedWindow) return finish({ ok: false, error: { code: -1, message: 'server raised windowsize' } });
        if (opts.abortAfterOack) return abort(rinfo.port);
        ack(0, rinfo.port);
        arm();
      } else if (packet.type === 'error') {
        finish({ ok: false, error: { code: packet.code, message: packet.message } });
      }
    };

    socket.on('message', onMessage);
    const go = () => {
      raw(lastSent, opts.port);
      arm();
    };
    if (ownSocket) {
      socket.once('error', reject);
      socket.bind(0, opts.bindAddress, go);
    } else go();
  });
}
