'use strict';
// One real exchange on loopback through a prebuilt transfer-socket addon (native/transfer-socket.c),
// in plain CommonJS so the same code runs in the test process, in a worker thread and on an arm64
// Node under qemu-aarch64 (prebuilt.test.ts). It only observes and reports; the test asserts.
const dgram = require('node:dgram');

const HOST = '127.0.0.1';

/** A queue of what a source delivered, and a bounded wait for the next one. */
function inbox(label, timeoutMs) {
  const items = [];
  const waiters = [];
  return {
    push(item) {
      const waiter = waiters.shift();
      if (waiter) waiter(item);
      else items.push(item);
    },
    next(ms = timeoutMs) {
      if (items.length > 0) return Promise.resolve(items.shift());
      return new Promise((resolve, reject) => {
        const waiter = (item) => {
          clearTimeout(timer);
          resolve(item);
        };
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no ${label} within ${ms} ms`));
        }, ms);
        waiters.push(waiter);
      });
    },
    pending: () => items.length,
  };
}

async function client(timeoutMs) {
  const socket = dgram.createSocket('udp4');
  const messages = inbox('datagram at the client', timeoutMs);
  socket.on('message', (bytes, rinfo) => messages.push({ hex: bytes.toString('hex'), from: rinfo.port }));
  await new Promise((resolve) => socket.bind(0, HOST, resolve));
  return { socket, messages, port: socket.address().port, send: (bytes, port) => socket.send(Buffer.from(bytes), port, HOST) };
}

const closeSocket = (socket) => new Promise((resolve) => socket.close(resolve));

/** Loads the addon at `addonPath` and drives one socket through its whole API. */
async function exchange(addonPath, timeoutMs = 20_000) {
  const addon = require(addonPath);
  const report = { node: process.version, arch: process.arch, exports: Object.keys(addon).sort() };
  const events = inbox('event from the native socket', timeoutMs);
  const [handle, port] = addon.open(HOST, (kind, value) =>
    events.push({ kind, value: Buffer.isBuffer(value) ? { buffer: value.toString('hex') } : value }),
  );
  report.port = port;

  const first = await client(timeoutMs);
  first.send([0, 4, 0x12, 0x34], port);
  report.ack = await events.next();

  report.connect = addon.connect(handle, HOST, first.port);
  report.sendData = addon.sendData(handle, 7, Buffer.from('block seven'));
  report.data = await first.messages.next();
  report.send = addon.send(handle, Buffer.from('\x00\x06blksize\x001468\x00', 'latin1'));
  report.sent = await first.messages.next();
  // After an EAGAIN a sender asks to hear when the socket can send again: once, even if asked twice.
  addon.awaitWritable(handle);
  addon.awaitWritable(handle);
  report.writable = await events.next();

  // Connected: a stranger's ACK is filtered out by the kernel, the client's next one comes through.
  const stranger = await client(timeoutMs);
  stranger.send([0, 4, 0, 99], port);
  first.send([0, 5, 0, 1, 0x6e, 0x6f, 0], port);
  report.packet = await events.next();
  first.send([0, 4, 0, 8], port);
  report.afterStranger = await events.next();

  // The client goes away: the next send draws an ICMP port unreachable, reported as ECONNREFUSED,
  // and the socket still receives afterwards (connected to a new client).
  // The kernel's global ICMP budget (shared with every other test on the machine) may drop one
  // port unreachable: send again, a bounded number of times, until one arrives.
  await closeSocket(first.socket);
  for (let attempt = 1; !report.gone; attempt++) {
    report.sendToGone = addon.sendData(handle, 9, Buffer.from('gone'));
    report.gone = await events.next(1000).catch((error) => {
      if (attempt * 1000 >= timeoutMs) throw error;
    });
  }
  const second = await client(timeoutMs);
  report.reconnect = addon.connect(handle, HOST, second.port);
  second.send([0, 4, 0xff, 0xff], port);
  // A retried send's second ECONNREFUSED (when the first was only late) may come before the ACK.
  do {
    report.afterGone = await events.next();
  } while (report.afterGone.kind === 2);

  addon.close(handle);
  addon.close(handle);
  report.sendAfterClose = addon.send(handle, Buffer.from([0, 5]));
  await new Promise((resolve) => setTimeout(resolve, 50));
  report.eventsLeft = events.pending();
  report.strangerGot = stranger.messages.pending();
  await Promise.all([closeSocket(second.socket), closeSocket(stranger.socket)]);
  return report;
}

module.exports = { exchange };
