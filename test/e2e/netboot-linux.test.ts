import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serialFolder } from '@iot-tofu/rpi';
import { Lab, collect, repoRoot, tsNodeArgs, waitForOutput } from '../lab/index.js';
import { needs } from '../needs.js';
import { jsonEvents, startSiteRouter, type JsonEvent } from '../dhcp/lab.js';
import { startGanesha, type RunningGanesha } from '../lab/ganesha.js';
import { INIT_MARKER, installedKernel, ipxeScript, makeBusyboxRoot, makePiOsBootDir, netbootInitramfs } from '../lab/netboot-kernel.js';

/**
 * Issue 17: a current Raspberry Pi OS really boots from us, proven with the closest stand-in this
 * machine can run (docs/pi-netboot-protocol.md section 9). The Pi is made by our CLI (`pxetools setup` from a Pi
 * OS-like boot folder + a busybox root, then `pxetools --add`); our daemon answers the PXE firmware
 * (iPXE in QEMU) as proxyDHCP and serves, over TFTP, the Pi's own kernel8.img and initramfs8
 * (Debian's x86-64 kernel and an initramfs-tools initramfs) with the cmdline.txt our fleet wrote
 * (console aside); the initramfs mounts the root our fleet exported, served by nfs-ganesha
 * configured from our exports file; the root's init prints a marker on the serial console.
 * Each step has its own deadline and a failure names the step with the evidence.
 */
const SERVER_IP = '10.77.0.2';
const SERIAL = '10000000c0ffee42';
const FOLDER = serialFolder(SERIAL);
const PI_NAME = 'linux-e2e';
const GUEST_MAC = '52:54:00:77:00:41';
const IPXE_ROM = '/usr/lib/ipxe/qemu/efi-e1000.rom';
// A boot takes 50-80 s under TCG on 2 busy cores; the bounds leave room for a loaded CI machine.
const QEMU_TIMEOUT_S = 300;
const SCRIPT_FILE = 'netboot-linux.ipxe';

const kernel = installedKernel();
/** Kernel, firmware, busybox and the ganesha FSAL are files; the rest are programs (test/needs.ts). */
const NEEDS = [
  'netns',
  'dnsmasq',
  'qemu-system-x86_64',
  'ganesha.nfsd',
  'rpcbind',
  'mkinitramfs',
  'exportfs',
  'unshare',
  'timeout',
  'ldd',
  kernel?.vmlinuz ?? '/boot/vmlinuz-VERSION (package linux-image-amd64)',
  IPXE_ROM,
  '/bin/busybox',
  '/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so',
];

/** One step of the boot, as observed from outside the guest. */
interface StepTiming {
  step: string;
  /** ms since QEMU started */
  atMs: number;
}

class StepFailure extends Error {}

describe('a Pi OS-shaped Linux netboots through our server into the root pxetools made (QEMU, nfs-ganesha)', needs(...NEEDS), () => {
  let lab: Lab;
  let work: string;
  let config: { tftpRoot: string; nfsRoot: string; stateDir: string; exportsFile: string };
  let configFile: string;
  let router: ChildProcess;
  let routerLog = '';
  let daemon: ChildProcess;
  let daemonLog = '';
  let events: JsonEvent[];
  let ganesha: RunningGanesha;
  let cmdline = '';
  const preparation: StepTiming[] = [];

  /** Runs pxetools as an operator would, with our temp config. */
  async function pxetools(args: string[]): Promise<string> {
    const child = spawn(process.execPath, [...tsNodeArgs, 'packages/pxetools/src/cli.ts', ...args], {
      cwd: repoRoot,
      env: { ...process.env, IOT_TOFU_CONFIG: configFile },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const run = await collect(child, 120_000);
    if (run.code !== 0) throw new StepFailure(`step "pxetools ${args[0]}" failed (exit ${run.code}): ${run.stderr || run.stdout}`);
    return run.stdout;
  }

  beforeAll(async () => {
    // In CI an unmet need fails the test itself (test/needs-setup.ts); nothing to prepare then.
    if (!needs.met(...NEEDS) || !kernel) return;
    const started = Date.now();
    const mark = (step: string) => preparation.push({ step, atMs: Date.now() - started });
    work = mkdtempSync(join(tmpdir(), 'tofu-netboot-linux-'));
    config = {
      tftpRoot: join(work, 'tftpboot'),
      nfsRoot: join(work, 'nfs'),
      stateDir: join(work, 'state'),
      exportsFile: join(work, 'iot-tofu.exports'),
    };
    configFile = join(work, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        ...config,
        exportsClients: '10.77.0.0/24',
        serverIp: SERVER_IP,
        dhcpAnswer: 'any-pi',
        pxe: { ipxeScript: SCRIPT_FILE },
        apiPort: 0,
        logLevel: 'debug',
        neighbourScanInterval: 0,
      }),
    );

    const initramfs = netbootInitramfs(kernel);
    mark(`initramfs ${initramfs.built ? `built by mkinitramfs in ${initramfs.ms} ms` : 'from cache'}`);
    makePiOsBootDir(join(work, 'base-boot'), { kernel: kernel.vmlinuz, initramfs: initramfs.path });
    makeBusyboxRoot(join(work, 'base-root'));
    await pxetools([
      'setup',
      '--base',
      'pios',
      '--boot-dir',
      join(work, 'base-boot'),
      '--rootfs-dir',
      join(work, 'base-root'),
      '--server-ip',
      SERVER_IP,
    ]);
    mark('pxetools setup');
    await pxetools(['--add', SERIAL, '--owner', 'root', '--name', PI_NAME, '--base', 'pios', '--yes']);
    mark('pxetools --add');
    cmdline = readFileSync(join(config.tftpRoot, FOLDER, 'cmdline.txt'), 'utf8');
    writeFileSync(join(config.tftpRoot, SCRIPT_FILE), ipxeScript({ serverIp: SERVER_IP, folder: FOLDER, cmdline }));

    lab = await Lab.create([
      { name: 'router', address: '10.77.0.1/24' },
      { name: 'sut', address: `${SERVER_IP}/24`, defaultRoute: true },
    ]);
    await lab.addTap('tap0');
    mark('namespaces');
    router = startSiteRouter(lab, 'router', work);
    router.stdout?.on('data', (d: Buffer) => (routerLog += d.toString()));
    router.stderr?.on('data', (d: Buffer) => (routerLog += d.toString()));
    await waitForOutput(router, /DHCP, IP range/, 10_000);
    ganesha = await startGanesha(lab, 'sut', { workDir: work, exportsFile: config.exportsFile, bindAddress: SERVER_IP });
    mark('nfs-ganesha up');
    daemon = lab.spawn('sut', process.execPath, [...tsNodeArgs, 'packages/boot-server/src/cli.ts', 'start', '--config', configFile], {
      cwd: repoRoot,
    });
    events = jsonEvents(daemon);
    daemon.stdout?.on('data', (d: Buffer) => (daemonLog += d.toString()));
    daemon.stderr?.on('data', (d: Buffer) => (daemonLog += d.toString()));
    await waitForOutput(daemon, /"msg":"serving /, 30_000).catch((error: Error) => {
      throw new StepFailure(`step "boot-server start" failed: ${error.message}`);
    });
    mark('boot-server serving');
  }, 300_000);

  afterAll(async () => {
    await ganesha?.stop();
    await lab?.close();
    if (work && !process.env.IOT_TOFU_KEEP_WORK) rmSync(work, { recursive: true, force: true });
  });

  it("boots kernel8.img + initramfs8 from the Pi's TFTP folder and reaches the root's init over NFS", {
    timeout: (QEMU_TIMEOUT_S + 60) * 1000,
  }, async () => {
    const consoleFile = join(work, 'console.log');
    writeFileSync(consoleFile, '');
    const consoleText = () => readFileSync(consoleFile, 'utf8');
    const timings: StepTiming[] = [];
    const qemuStarted = Date.now();
    const qemu = lab.spawn('sw', 'timeout', [
      '--kill-after=5',
      String(QEMU_TIMEOUT_S),
      'qemu-system-x86_64',
      '-accel',
      'tcg',
      '-m',
      '768',
      '-nodefaults',
      '-display',
      'none',
      '-vga',
      'std',
      '-monitor',
      'none',
      '-serial',
      `file:${consoleFile}`,
      '-boot',
      'n',
      '-no-reboot',
      '-netdev',
      'tap,id=n0,ifname=tap0,script=no,downscript=no',
      '-device',
      `e1000,netdev=n0,mac=${GUEST_MAC},romfile=${IPXE_ROM}`,
    ]);
    let qemuStderr = '';
    qemu.stderr?.on('data', (d: Buffer) => (qemuStderr += d.toString()));

    const served = (suffix: string) => events.find((e) => e.event === 'file-served' && String(e.file).endsWith(suffix));
    const failedTransfer = (suffix: string) => events.find((e) => e.event === 'transfer-failed' && String(e.file).endsWith(suffix));
    const acks = () => [...routerLog.matchAll(new RegExp(`DHCPACK\\(eth0\\) (\\S+) ${GUEST_MAC}`, 'g'))].map((m) => m[1]);
    const tail = (text: string, lines = 25) => text.split('\n').slice(-lines).join('\n');

    /**
     * Polls `probe` until it returns a value (the step passed), throws (the step failed with a
     * reason), QEMU exits, or the step's deadline passes; a failure names the step.
     */
    async function step<T>(name: string, deadlineMs: number, probe: () => T | undefined, evidence: () => string): Promise<T> {
      const deadline = Date.now() + deadlineMs;
      for (;;) {
        let value: T | undefined;
        try {
          value = probe();
        } catch (error) {
          throw new StepFailure(`step "${name}" failed: ${(error as Error).message}\n${evidence()}`);
        }
        if (value !== undefined) {
          timings.push({ step: name, atMs: Date.now() - qemuStarted });
          return value;
        }
        if (qemu.exitCode !== null || qemu.signalCode !== null) {
          const how =
            qemu.exitCode === 124 ? `was stopped by its ${QEMU_TIMEOUT_S} s timeout` : `exited (${qemu.exitCode ?? qemu.signalCode})`;
          throw new StepFailure(`step "${name}" failed: QEMU ${how} before it happened; qemu stderr: ${qemuStderr.trim()}\n${evidence()}`);
        }
        if (Date.now() > deadline) throw new StepFailure(`step "${name}" failed: not seen within ${deadlineMs / 1000} s\n${evidence()}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    }
    const daemonEvidence = () =>
      `our daemon's last events:\n${events
        .slice(-8)
        .map((e) => JSON.stringify(e))
        .join('\n')}`;
    const consoleEvidence = () => `serial console (last lines):\n${tail(consoleText())}`;
    const tftpStep = (name: string, suffix: string, deadlineMs: number) =>
      step(
        name,
        deadlineMs,
        () => {
          const failed = failedTransfer(suffix);
          if (failed && !served(suffix)) throw new Error(`our TFTP server failed ${String(failed.file)}: ${String(failed.reason)}`);
          return served(suffix);
        },
        daemonEvidence,
      );

    try {
      await step(
        'proxy offer (our proxyDHCP answers the PXE firmware)',
        60_000,
        () => events.find((e) => e.event === 'offer-sent' && e.mac === GUEST_MAC),
        () => `${daemonEvidence()}\nqemu stderr: ${qemuStderr}`,
      );
      await step(
        'DHCP address (dnsmasq, the site router, leases one)',
        60_000,
        () => acks()[0],
        () => `dnsmasq log:\n${tail(routerLog)}`,
      );
      await tftpStep(`TFTP of the iPXE script ${SCRIPT_FILE}`, SCRIPT_FILE, 60_000);
      const kernelServed = await tftpStep(`kernel: TFTP of ${FOLDER}/kernel8.img`, `${FOLDER}/kernel8.img`, 90_000);
      const initramfsServed = await tftpStep(`initramfs: TFTP of ${FOLDER}/initramfs8`, `${FOLDER}/initramfs8`, 90_000);
      // With `quiet` (Pi OS's cmdline) the kernel prints little: its initramfs asking dnsmasq again counts too.
      await step(
        'kernel starts (console output, or the initramfs asks for an address)',
        150_000,
        () => (/Linux version|Run \/init|IP-Config|Begin:/.test(consoleText()) || acks().length > 1 ? true : undefined),
        () => `${consoleEvidence()}\n(iPXE reports errors on the VGA screen only)`,
      );
      await step(
        'NFS mount of the root (initramfs nfsmount from nfs-ganesha)',
        120_000,
        () => {
          const text = consoleText();
          if (text.includes(INIT_MARKER) || /No init found|doesn't have requested/.test(text)) return true;
          const complaint = nfsComplaint(text);
          if (complaint) throw new Error(`the console says: ${complaint}; the Pi's nfsroot: ${/nfsroot=\S+/.exec(cmdline)?.[0] ?? 'none'}`);
          return undefined;
        },
        () => `${consoleEvidence()}\nganesha log (last lines):\n${tail(ganesha.log(), 10)}`,
      );
      await step(
        'init (marker on the serial console)',
        30_000,
        () => (consoleText().includes(`${INIT_MARKER} ${PI_NAME}`) ? true : undefined),
        consoleEvidence,
      );
      // The console file lags the marker by a few writes: wait for the end of init's report.
      await step(
        'init report (/proc/mounts on the console)',
        15_000,
        () => (/^--- end/m.test(consoleText()) ? true : undefined),
        consoleEvidence,
      );

      const text = consoleText();
      // The root is this Pi's own copy, mounted from us over NFS.
      expect(text).toMatch(new RegExp(`^${SERVER_IP}:${join(config.nfsRoot, FOLDER)} / nfs `, 'm'));
      expect(Number(kernelServed.bytes)).toBe(readFileSync(join(work, 'base-boot', 'kernel8.img')).length);
      expect(Number(initramfsServed.bytes)).toBe(readFileSync(join(work, 'base-boot', 'initramfs8')).length);
    } finally {
      const all = [...preparation.map((t) => ({ ...t, step: `prep: ${t.step}` })), ...timings];
      console.log(
        `netboot-linux timings (prep: ms since test start; boot: ms since QEMU start):\n${all.map((t) => `  ${String(t.atMs).padStart(7)} ms  ${t.step}`).join('\n')}`,
      );
      const marker = timings.find((t) => t.step.startsWith('init ('));
      if (marker) console.log(`netboot-linux: end to end (QEMU start -> init marker) ${(marker.atMs / 1000).toFixed(1)} s`);
      // Kept with IOT_TOFU_KEEP_WORK=1 for a look after a failure.
      writeFileSync(join(work, 'daemon.log'), daemonLog);
      writeFileSync(join(work, 'dnsmasq.log'), routerLog);
      if (process.env.IOT_TOFU_KEEP_WORK) console.log(`netboot-linux: work dir kept: ${work}`);
    }
  });
});

/** Console complaints of the initramfs about its NFS root, with what they usually mean. */
const NFS_COMPLAINTS: ReadonlyArray<[pattern: RegExp, meaning: string]> = [
  [
    /invalid value for vers|bad NFS version/,
    'klibc nfsmount takes vers=2 or vers=3 only (docs/pi-netboot-protocol.md section 9): the nfsroot= options in cmdline.txt',
  ],
  [/bad option/, "klibc nfsmount rejects that option (e.g. proto=; it wants plain 'tcp'): the nfsroot= options in cmdline.txt"],
  [/Retrying nfs mount|mount call failed|nfsmount: .+/, 'the server refused or did not answer: see the ganesha log and the exports'],
  [/ALERT!|Gave up waiting for root/, 'the initramfs looked for a local root device: is root=/dev/nfs in cmdline.txt?'],
  [/Unable to mount root|Kernel panic/, 'the kernel mounted no root: is the initramfs loaded and root=/dev/nfs set?'],
];

/** The first console line in which the initramfs gives up on, or retries, the NFS root, with a hint. */
function nfsComplaint(consoleText: string): string | undefined {
  for (const line of consoleText.split(/\r?\n/)) {
    const known = NFS_COMPLAINTS.find(([pattern]) => pattern.test(line));
    if (known) return `${JSON.stringify(line.trim())} (${known[1]})`;
  }
  return undefined;
}
