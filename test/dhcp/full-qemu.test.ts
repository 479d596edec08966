import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientMac, decodeDhcpMessage, messageType } from '@iot-tofu/dhcp';
import { Lab, repoRoot, stopProcess, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { jsonEvents, type JsonEvent } from './lab.js';
import { readUdpFrames } from '../../packages/dhcp/test/pcap.js';
import type { FullServeConfig } from './full-serve.js';

/**
 * Real PXE firmware under QEMU TCG gets its address *and* its boot file from our full-DHCP mode
 * alone: no dnsmasq in this topology (issue 12). The iPXE BIOS ROM gets an address and the iPXE
 * script (whose own imgfetch proves it ran); OVMF x86-64 UEFI gets an address and, from its 4011
 * request (as in proxy mode), its NBP.
 * Success = our TFTP server served the file; the capture shows only our server answering.
 */
const S = '10.77.0.2';
const OVMF = '/usr/share/ovmf/OVMF.fd';
const BOOT_DEADLINE_MS = 90_000;

const machines = [
  { name: 'iPXE BIOS ROM (e1000)', mac: '52:54:00:77:01:11', tap: 'tap0', file: 'boot.ipxe', kind: 'ipxe' },
  { name: 'OVMF x86-64 UEFI', mac: '52:54:00:77:01:31', tap: 'tap1', file: 'bootx64.efi', kind: 'uefi-x64' },
] as const;

function qemuCommand(machine: (typeof machines)[number], work: string): [string, string[]] {
  const netdev = ['-netdev', `tap,id=n0,ifname=${machine.tap},script=no,downscript=no`];
  if (machine.kind === 'ipxe') {
    return ['qemu-system-x86_64', ['-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-vga', 'std', '-monitor', 'none', '-serial', 'none', '-boot', 'n', ...netdev, '-device', `e1000,netdev=n0,mac=${machine.mac}`]];
  }
  return ['qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-bios', OVMF, '-display', 'none', '-monitor', 'none', '-serial', `file:${join(work, 'ovmf.serial')}`, ...netdev, '-device', `virtio-net-pci,netdev=n0,mac=${machine.mac},romfile=`]];
}

describe('real PXE firmware in QEMU, full-DHCP mode, no other DHCP server', { timeout: 240_000, ...needs('netns', 'tcpdump', 'ping', 'qemu-system-x86_64', OVMF) }, () => {
  let lab: Lab;
  let work: string;
  let events: JsonEvent[];
  let capture: ChildProcess;
  const pcap = () => join(work, 'bridge.pcap');

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'tofu-dhcp-full-qemu-'));
    const root = join(work, 'tftp');
    mkdirSync(root);
    mkdirSync(join(work, 'state'));
    writeFileSync(join(root, 'boot.ipxe'), `#!ipxe\necho iot-tofu: iPXE script fetched from ${S}\nimgfetch tftp://${S}/hello.txt\n`);
    writeFileSync(join(root, 'hello.txt'), 'hello from the full-mode host\n');
    writeFileSync(join(root, 'bootx64.efi'), Buffer.alloc(4096, 0x5a));
    lab = await Lab.create([{ name: 'sut', address: `${S}/24` }]);
    for (const machine of machines) await lab.addTap(machine.tap);
    capture = lab.spawn('sw', 'tcpdump', ['-i', 'br0', '-n', '-U', '-s', '0', '-w', pcap(), 'udp and (port 67 or port 68 or port 4011)']);
    await waitForOutput(capture, /listening on br0/, 10_000);
    const config: FullServeConfig = {
      serverIp: S,
      range: ['10.77.0.100', '10.77.0.199'],
      netmask: '255.255.255.0',
      stateDir: join(work, 'state'),
      answer: 'any-pi',
      pxe: { ipxeScript: 'boot.ipxe', bios: 'undionly.kpxe', uefiX64: 'bootx64.efi' },
      tftpRoot: root,
      probeMs: 1500,
    };
    const child = lab.spawn('sut', process.execPath, [...tsNodeArgs, 'test/dhcp/full-serve.ts', JSON.stringify(config)], { cwd: repoRoot });
    events = jsonEvents(child);
    await waitForOutput(child, /"event":"ready"/, 30_000);
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const served = (file: string) => events.find((e) => e.event === 'file-served' && JSON.stringify(e).includes(`"${file}"`));

  it.concurrent.each(machines)('$name gets its address and $file from us alone', async (machine) => {
    const [command, args] = qemuCommand(machine, work);
    const qemu = lab.spawn('sw', command, args);
    try {
      const deadline = Date.now() + BOOT_DEADLINE_MS;
      while (!served(machine.file) && Date.now() < deadline) {
        if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}) before ${machine.file} was served`);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(served(machine.file), `${machine.file} not served; last events ${JSON.stringify(events.slice(-8))}`).toBeDefined();
      const bound = events.find((e) => e.event === 'lease' && e.mac === machine.mac && e.state === 'bound');
      expect(bound).toBeDefined();
      expect(String(bound!.address)).toMatch(/^10\.77\.0\.1\d\d$/);
      // The TFTP request came from the address we leased.
      expect(JSON.stringify(served(machine.file))).toContain(String(bound!.address));
      if (machine.kind === 'ipxe') {
        const until = Date.now() + 20_000;
        while (!served('hello.txt') && Date.now() < until) await new Promise((r) => setTimeout(r, 250));
        expect(served('hello.txt')).toBeDefined();
      }
    } finally {
      await stopProcess(qemu);
    }
  }, BOOT_DEADLINE_MS + 40_000);

  it('on the wire: every DHCP reply came from us; each firmware got an ACK with an address', async () => {
    await stopProcess(capture);
    // BOOTREPLYs only: edk2 sends its 4011 REQUEST from port 4011 too.
    const replies = readUdpFrames(pcap()).filter((f) => (f.srcPort === 67 || f.srcPort === 4011) && f.payload[0] === 2);
    expect(replies.length).toBeGreaterThan(0);
    expect(replies.every((f) => f.srcIp === S)).toBe(true);
    for (const machine of machines) {
      const acks = replies.map((f) => decodeDhcpMessage(f.payload)).filter((m) => clientMac(m) === machine.mac && messageType(m) === 'ack' && m.yiaddr !== '0.0.0.0');
      expect(acks.length, machine.name).toBeGreaterThan(0);
    }
  });
});
