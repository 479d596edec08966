import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeDhcpMessage, offersRaspberryPiBoot, clientMac, messageType } from '@iot-tofu/dhcp';
import { Lab, stopProcess, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { startServe, startSiteRouter, type JsonEvent } from './lab.js';
import { readUdpFrames } from '../../packages/dhcp/test/pcap.js';

/**
 * Real PXE firmware under QEMU TCG (docs/lab.md section 3) netboots through our proxy and our TFTP
 * server, beside dnsmasq handing out addresses: the iPXE BIOS ROM (gets the iPXE script), OVMF
 * x86-64 UEFI and AAVMF arm64 UEFI (get their NBP, via the 4011 REQUEST). All three boot at once,
 * each bounded; success = our TFTP server served that firmware's file to completion.
 */
const S = '10.77.0.2';
const OVMF = '/usr/share/ovmf/OVMF.fd';
const AAVMF = '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd';
const BOOT_DEADLINE_MS = 75_000;

const machines = [
  { name: 'iPXE BIOS ROM (e1000)', mac: '52:54:00:77:00:11', tap: 'tap0', file: 'boot.ipxe', kind: 'ipxe' },
  { name: 'OVMF x86-64 UEFI', mac: '52:54:00:77:00:31', tap: 'tap1', file: 'bootx64.efi', kind: 'uefi-x64' },
  { name: 'AAVMF arm64 UEFI', mac: '52:54:00:77:00:21', tap: 'tap2', file: 'bootaa64.efi', kind: 'uefi-arm64' },
] as const;

function qemuCommand(machine: (typeof machines)[number], work: string): [string, string[]] {
  const netdev = ['-netdev', `tap,id=n0,ifname=${machine.tap},script=no,downscript=no`];
  if (machine.kind === 'ipxe') {
    return ['qemu-system-x86_64', ['-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-vga', 'std', '-monitor', 'none', '-serial', 'none', '-boot', 'n', ...netdev, '-device', `e1000,netdev=n0,mac=${machine.mac}`]];
  }
  const serial = ['-serial', `file:${join(work, `${machine.kind}.serial`)}`];
  if (machine.kind === 'uefi-x64') {
    return ['qemu-system-x86_64', ['-accel', 'tcg', '-m', '512', '-bios', OVMF, '-display', 'none', '-monitor', 'none', ...serial, ...netdev, '-device', `virtio-net-pci,netdev=n0,mac=${machine.mac},romfile=`]];
  }
  return ['qemu-system-aarch64', ['-M', 'virt', '-cpu', 'cortex-a57', '-m', '512', '-bios', AAVMF, '-display', 'none', '-monitor', 'none', ...serial, ...netdev, '-device', `virtio-net-pci,netdev=n0,mac=${machine.mac},romfile=`]];
}

describe('real PXE firmware in QEMU through our proxy + TFTP', needs('netns', 'dnsmasq', 'tcpdump', 'qemu-system-x86_64', 'qemu-system-aarch64', OVMF, AAVMF), () => {
  let lab: Lab;
  let work: string;
  let events: JsonEvent[];
  let capture: ChildProcess;
  const pcap = () => join(work, 'bridge.pcap');

  beforeAll(async () => {
    for (const firmware of [OVMF, AAVMF]) if (!existsSync(firmware)) throw new Error(`${firmware} missing (packages ovmf, qemu-efi-aarch64)`);
    work = mkdtempSync(join(tmpdir(), 'tofu-dhcp-qemu-'));
    const root = join(work, 'tftp');
    mkdirSync(root);
    writeFileSync(join(root, 'boot.ipxe'), `#!ipxe\necho iot-tofu: iPXE script fetched from ${S}\nimgfetch tftp://${S}/hello.txt\n`);
    writeFileSync(join(root, 'hello.txt'), 'hello from the proxy host\n');
    writeFileSync(join(root, 'bootx64.efi'), Buffer.alloc(4096, 0x5a));
    writeFileSync(join(root, 'bootaa64.efi'), Buffer.alloc(4096, 0xa5));
    lab = await Lab.create([
      { name: 'router', address: '10.77.0.1/24' },
      { name: 'sut', address: `${S}/24` },
    ]);
    for (const machine of machines) await lab.addTap(machine.tap);
    capture = lab.spawn('sw', 'tcpdump', ['-i', 'br0', '-n', '-U', '-s', '0', '-w', pcap(), 'udp and (port 67 or port 68 or port 4011)']);
    await waitForOutput(capture, /listening on br0/, 10_000);
    const router = startSiteRouter(lab, 'router', work);
    await waitForOutput(router, /DHCP, IP range/, 10_000);
    ({ events } = await startServe(lab, 'sut', {
      serverIp: S,
      answer: 'any-pi',
      pxe: { ipxeScript: 'boot.ipxe', bios: 'undionly.kpxe', uefiX64: 'bootx64.efi', uefiArm64: 'bootaa64.efi' },
      tftpRoot: root,
    }));
  });

  afterAll(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  function served(file: string): JsonEvent | undefined {
    return events.find((e) => e.event === 'file-served' && JSON.stringify(e).includes(`"${file}"`));
  }

  async function waitForServed(file: string, qemu: ChildProcess): Promise<JsonEvent> {
    const deadline = Date.now() + BOOT_DEADLINE_MS;
    while (Date.now() < deadline) {
      const event = served(file);
      if (event) return event;
      if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}) before ${file} was served`);
      await new Promise((r) => setTimeout(r, 250));
    }
    throw new Error(`${file} not served within ${BOOT_DEADLINE_MS} ms; events: ${JSON.stringify(events.slice(-10))}`);
  }

  it.concurrent.each(machines)('$name netboots and fetches $file from us', async (machine) => {
    const [command, args] = qemuCommand(machine, work);
    const qemu = lab.spawn('sw', command, args);
    try {
      const event = await waitForServed(machine.file, qemu);
      expect(event).toBeDefined();
      const offers = events.filter((e) => e.event === 'offer-sent' && e.mac === machine.mac);
      expect(offers.length).toBeGreaterThan(0);
      expect(offers.every((e) => e.kind === machine.kind)).toBe(true);
      if (machine.kind === 'ipxe') {
        // The script's own imgfetch proves iPXE ran what we handed it.
        const deadline = Date.now() + 15_000;
        while (!served('hello.txt') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 250));
        expect(served('hello.txt')).toBeDefined();
      } else {
        // edk2 asks the proxy again on 4011 (from port 4011) before downloading the NBP.
        expect(offers.some((e) => e.port === 'pxe' && e.messageType === 'ack' && String(e.to).endsWith(':4011'))).toBe(true);
      }
    } finally {
      await stopProcess(qemu);
    }
  }, BOOT_DEADLINE_MS + 30_000);

  it('on the wire: every proxy reply came from 10.77.0.2, none of them carried the Pi menu to firmware', async () => {
    await stopProcess(capture);
    const frames = readUdpFrames(pcap());
    const ours = frames.filter((f) => f.srcIp === S && (f.srcPort === 67 || f.srcPort === 4011));
    expect(ours.length).toBeGreaterThanOrEqual(machines.length);
    for (const frame of ours) {
      const reply = decodeDhcpMessage(frame.payload);
      expect(reply.yiaddr).toBe('0.0.0.0');
      expect(offersRaspberryPiBoot(reply.options.get(43))).toBe(false);
      expect(Array.from(reply.options.get(54) ?? [])).toEqual([10, 77, 0, 2]);
    }
    // Each firmware's DISCOVER really went out and got our answer.
    for (const machine of machines) {
      const discovers = frames.filter((f) => f.dstPort === 67 && (() => {
        const m = decodeDhcpMessage(f.payload);
        return clientMac(m) === machine.mac && messageType(m) === 'discover';
      })());
      expect(discovers.length, machine.name).toBeGreaterThan(0);
      expect(ours.some((f) => clientMac(decodeDhcpMessage(f.payload)) === machine.mac), machine.name).toBe(true);
    }
    expect(readFileSync(pcap()).length).toBeGreaterThan(0);
  });
});
