import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clientMac, decodeDhcpMessage, messageType, offersRaspberryPiBoot } from '@iot-tofu/dhcp';
import { Lab, stopProcess, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { startServe, startSiteRouter, type JsonEvent } from './lab.js';
import type { ServeConfig } from './serve.js';
import { readUdpFrames } from '../../packages/dhcp/test/pcap.js';

/**
 * Real PXE firmware under QEMU TCG (docs/lab.md section 3) netboots from our server, in both DHCP
 * modes, each bounded; success = our TFTP server served that firmware's file to completion.
 * - proxy: beside dnsmasq handing out addresses, the iPXE BIOS ROM (gets the iPXE script, whose
 *   own imgfetch proves it ran), OVMF x86-64 UEFI and AAVMF arm64 UEFI (get their NBP, via the
 *   4011 REQUEST) boot at once through our proxy.
 * - full: no other DHCP server in the topology (issue 12); the iPXE ROM and OVMF get their address
 *   *and* their boot file from us alone (OVMF's NBP from its 4011 request, as in proxy mode).
 */
const S = '10.77.0.2';
const OVMF = '/usr/share/ovmf/OVMF.fd';
const AAVMF = '/usr/share/qemu-efi-aarch64/QEMU_EFI.fd';
const BOOT_DEADLINE_MS = 90_000;

type Machine = { name: string; mac: string; tap: string; file: string; kind: 'ipxe' | 'uefi-x64' | 'uefi-arm64' };
const IPXE: Machine = { name: 'iPXE BIOS ROM (e1000)', mac: '52:54:00:77:00:11', tap: 'tap0', file: 'boot.ipxe', kind: 'ipxe' };
const UEFI_X64: Machine = { name: 'OVMF x86-64 UEFI', mac: '52:54:00:77:00:31', tap: 'tap1', file: 'bootx64.efi', kind: 'uefi-x64' };
const UEFI_ARM64: Machine = { name: 'AAVMF arm64 UEFI', mac: '52:54:00:77:00:21', tap: 'tap2', file: 'bootaa64.efi', kind: 'uefi-arm64' };

const modes = [
  {
    mode: 'proxy',
    title: 'real PXE firmware in QEMU through our proxy + TFTP, beside dnsmasq',
    needs: needs('netns', 'dnsmasq', 'tcpdump', 'qemu-system-x86_64', 'qemu-system-aarch64', OVMF, AAVMF),
    machines: [IPXE, UEFI_X64, UEFI_ARM64],
  },
  {
    mode: 'full',
    title: 'real PXE firmware in QEMU, full-DHCP mode, no other DHCP server',
    needs: needs('netns', 'tcpdump', 'ping', 'qemu-system-x86_64', OVMF),
    machines: [IPXE, UEFI_X64],
  },
] as const;

function qemuCommand(machine: Machine, work: string): [string, string[]] {
  const netdev = ['-netdev', `tap,id=n0,ifname=${machine.tap},script=no,downscript=no`];
  if (machine.kind === 'ipxe') {
    const args = ['-accel', 'tcg', '-m', '256', '-nodefaults', '-display', 'none', '-vga', 'std', '-monitor', 'none', '-serial', 'none'];
    args.push('-boot', 'n');
    return ['qemu-system-x86_64', [...args, ...netdev, '-device', `e1000,netdev=n0,mac=${machine.mac}`]];
  }
  const serial = ['-serial', `file:${join(work, `${machine.kind}.serial`)}`];
  const common = ['-m', '512', '-display', 'none', '-monitor', 'none', ...serial, ...netdev];
  const nic = ['-device', `virtio-net-pci,netdev=n0,mac=${machine.mac},romfile=`];
  if (machine.kind === 'uefi-x64') return ['qemu-system-x86_64', ['-accel', 'tcg', '-bios', OVMF, ...common, ...nic]];
  return ['qemu-system-aarch64', ['-M', 'virt', '-cpu', 'cortex-a57', '-bios', AAVMF, ...common, ...nic]];
}

for (const { mode, title, needs: needed, machines } of modes) {
  describe(title, { timeout: 240_000, ...needed }, () => {
    let lab: Lab;
    let work: string;
    let events: JsonEvent[];
    let capture: ChildProcess;
    const pcap = () => join(work, 'bridge.pcap');

    beforeAll(async () => {
      work = mkdtempSync(join(tmpdir(), `tofu-dhcp-qemu-${mode}-`));
      const root = join(work, 'tftp');
      mkdirSync(root);
      writeFileSync(join(root, 'boot.ipxe'), `#!ipxe\necho iot-tofu: iPXE script fetched from ${S}\nimgfetch tftp://${S}/hello.txt\n`);
      writeFileSync(join(root, 'hello.txt'), `hello from the ${mode}-mode host\n`);
      writeFileSync(join(root, 'bootx64.efi'), Buffer.alloc(4096, 0x5a));
      writeFileSync(join(root, 'bootaa64.efi'), Buffer.alloc(4096, 0xa5));
      const router = mode === 'proxy' ? [{ name: 'router', address: '10.77.0.1/24' }] : [];
      lab = await Lab.create([...router, { name: 'sut', address: `${S}/24` }]);
      for (const machine of machines) await lab.addTap(machine.tap);
      capture = lab.spawn('sw', 'tcpdump', ['-i', 'br0', '-n', '-U', '-s', '0', '-w', pcap(), 'udp and (port 67 or port 68 or port 4011)']);
      await waitForOutput(capture, /listening on br0/, 10_000);
      const pxe = { ipxeScript: 'boot.ipxe', bios: 'undionly.kpxe', uefiX64: 'bootx64.efi', uefiArm64: 'bootaa64.efi' };
      let config: ServeConfig = { serverIp: S, answer: 'any-pi', pxe, tftpRoot: root };
      if (mode === 'proxy') {
        const router = startSiteRouter(lab, 'router', work);
        await waitForOutput(router, /DHCP, IP range/, 10_000);
      } else {
        mkdirSync(join(work, 'state'));
        const pool = { range: ['10.77.0.100', '10.77.0.199'] as [string, string], netmask: '255.255.255.0' };
        config = { ...config, mode: 'full', ...pool, stateDir: join(work, 'state'), probeMs: 1500 };
      }
      ({ events } = await startServe(lab, 'sut', config));
    });

    afterAll(async () => {
      await lab?.close();
      if (work) rmSync(work, { recursive: true, force: true });
    });

    const served = (file: string) => events.find((e) => e.event === 'file-served' && JSON.stringify(e).includes(`"${file}"`));

    async function waitForServed(file: string, qemu: ChildProcess, deadlineMs: number): Promise<JsonEvent | undefined> {
      const deadline = Date.now() + deadlineMs;
      while (!served(file) && Date.now() < deadline) {
        if (qemu.exitCode !== null) throw new Error(`QEMU exited (${qemu.exitCode}) before ${file} was served`);
        await new Promise((r) => setTimeout(r, 250));
      }
      return served(file);
    }

    it.concurrent.each(machines)(
      '$name netboots and fetches $file from us',
      async (machine) => {
        const [command, args] = qemuCommand(machine, work);
        const qemu = lab.spawn('sw', command, args);
        try {
          const event = await waitForServed(machine.file, qemu, BOOT_DEADLINE_MS);
          const lastEvents = JSON.stringify(events.slice(-8));
          expect(event, `${machine.file} not served within ${BOOT_DEADLINE_MS} ms; last events ${lastEvents}`).toBeDefined();
          const offers = events.filter((e) => e.event === 'offer-sent' && e.mac === machine.mac);
          if (mode === 'proxy') {
            expect(offers.length).toBeGreaterThan(0);
            expect(offers.every((e) => e.kind === machine.kind)).toBe(true);
            // edk2 asks the proxy again on 4011 (from port 4011) before downloading the NBP.
            const ackTo4011 = offers.some((e) => e.port === 'pxe' && e.messageType === 'ack' && String(e.to).endsWith(':4011'));
            if (machine.kind !== 'ipxe') expect(ackTo4011).toBe(true);
          } else {
            const bound = events.find((e) => e.event === 'lease' && e.mac === machine.mac && e.state === 'bound');
            expect(bound).toBeDefined();
            expect(String(bound!.address)).toMatch(/^10\.77\.0\.1\d\d$/);
            // The TFTP request came from the address we leased.
            expect(JSON.stringify(event)).toContain(String(bound!.address));
          }
          // The script's own imgfetch proves iPXE ran what we handed it.
          if (machine.kind === 'ipxe') expect(await waitForServed('hello.txt', qemu, 20_000)).toBeDefined();
        } finally {
          await stopProcess(qemu);
        }
      },
      BOOT_DEADLINE_MS + 40_000,
    );

    it('on the wire: our replies came from 10.77.0.2 and each firmware DISCOVER was answered', async () => {
      await stopProcess(capture);
      const frames = readUdpFrames(pcap());
      expect(readFileSync(pcap()).length).toBeGreaterThan(0);
      // BOOTREPLYs only: edk2 sends its 4011 REQUEST from port 4011 too.
      const replies = frames.filter((f) => (f.srcPort === 67 || f.srcPort === 4011) && f.payload[0] === 2);
      const ours = replies.filter((f) => f.srcIp === S);
      expect(ours.length).toBeGreaterThanOrEqual(machines.length);
      for (const machine of machines) {
        const discovers = frames.filter(
          (f) =>
            f.dstPort === 67 &&
            f.payload[0] === 1 &&
            (() => {
              const m = decodeDhcpMessage(f.payload);
              return clientMac(m) === machine.mac && messageType(m) === 'discover';
            })(),
        );
        expect(discovers.length, machine.name).toBeGreaterThan(0);
        expect(
          ours.some((f) => clientMac(decodeDhcpMessage(f.payload)) === machine.mac),
          machine.name,
        ).toBe(true);
      }
      if (mode === 'proxy') {
        // A proxy hands out no address and never the Pi menu to PC firmware.
        for (const frame of ours) {
          const reply = decodeDhcpMessage(frame.payload);
          expect(reply.yiaddr).toBe('0.0.0.0');
          expect(offersRaspberryPiBoot(reply.options.get(43))).toBe(false);
          expect(Array.from(reply.options.get(54) ?? [])).toEqual([10, 77, 0, 2]);
        }
      } else {
        // Nobody else answers on this LAN, and each firmware got an ACK with an address.
        expect(replies.every((f) => f.srcIp === S)).toBe(true);
        for (const machine of machines) {
          const messages = ours.map((f) => decodeDhcpMessage(f.payload));
          const acks = messages.filter((m) => clientMac(m) === machine.mac && messageType(m) === 'ack' && m.yiaddr !== '0.0.0.0');
          expect(acks.length, machine.name).toBeGreaterThan(0);
        }
      }
    });
  });
}
