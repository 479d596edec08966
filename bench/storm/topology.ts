import { mkdirSync } from 'node:fs';
import type { ChildProcess } from 'node:child_process';
import { Lab, waitForOutput } from '../../test/lab/index.js';
import { addToIpv4 } from '@iot-tofu/rpi-sim';

/**
 * The boot-storm LAN (docs/lab.md (a), "The recommended topology"), all inside namespaces of one Lab:
 *   router  10.77.0.1/16  dnsmasq, address-only DHCP (the site router)
 *   srv     10.77.0.2/16  the server under test; its eth0 egress is shaped per profile
 *   pis     the simulated Pis: one process, DHCP from 0.0.0.0:68, and every address of the
 *           router's pool pre-assigned to eth0 so each Pi's TFTP sockets can bind the address
 *           the router leased to it.
 *
 * Why pre-assigned pool addresses rather than `ip addr add` on each lease: adding addresses from
 * inside the measured process would put fork+netlink work in every Pi's boot path, and doing it
 * from outside would add a race. The router still decides who gets which address (the Pi binds
 * the yiaddr it was offered), so DHCP stays in the measurement. Two consequences, both neutral
 * between servers: the router runs with --no-ping (every pool address already answers ICMP) and
 * --dhcp-broadcast (replies must reach the shared 0.0.0.0:68 socket, not a fake Pi MAC).
 */
export const ROUTER_IP = '10.77.0.1';
export const SERVER_IP = '10.77.0.2';
export const POOL_FIRST = '10.77.1.1';
export const PREFIX = 16;

export interface StormLab {
  readonly lab: Lab;
  readonly router: ChildProcess;
  readonly poolSize: number;
  close(): Promise<void>;
}

export async function createStormLab(options: { poolSize: number; workDir: string }): Promise<StormLab> {
  mkdirSync(options.workDir, { recursive: true });
  const lab = await Lab.create([
    { name: 'router', address: `${ROUTER_IP}/${PREFIX}` },
    // A default route lets servers that send from an unbound socket reach 255.255.255.255.
    { name: 'srv', address: `${SERVER_IP}/${PREFIX}`, defaultRoute: true },
    { name: 'pis' },
  ]);
  try {
    const lines = Array.from({ length: options.poolSize }, (_, i) => `addr add ${addToIpv4(POOL_FIRST, i)}/${PREFIX} dev eth0\n`).join('');
    const added = await lab.run('pis', 'ip', ['-batch', '-'], { input: lines, timeoutMs: 30_000 });
    if (added.code !== 0) throw new Error(`adding ${options.poolSize} addresses to the Pi namespace failed: ${added.stderr}`);
    // Hundreds of Pis in one neighbour table: raise the GC thresholds so no entry is evicted mid-boot.
    for (const host of ['srv', 'pis', 'router']) {
      await lab.run(host, 'sysctl', [
        '-qw',
        'net.ipv4.neigh.default.gc_thresh1=4096',
        'net.ipv4.neigh.default.gc_thresh2=8192',
        'net.ipv4.neigh.default.gc_thresh3=16384',
      ]);
    }
    const router = lab.spawn('router', 'dnsmasq', [
      '--conf-file=/dev/null',
      '--no-daemon',
      '--port=0',
      '--interface=eth0',
      '--bind-interfaces',
      `--dhcp-range=${POOL_FIRST},${addToIpv4(POOL_FIRST, options.poolSize - 1)},255.255.0.0,12h`,
      '--dhcp-broadcast',
      '--no-ping',
      `--dhcp-lease-max=${options.poolSize + 10}`,
      `--dhcp-leasefile=${options.workDir}/router.leases`,
      '--log-facility=-',
      '--pid-file=',
    ]);
    await waitForOutput(router, /DHCP, IP range/, 10_000);
    return {
      lab,
      router,
      poolSize: options.poolSize,
      close: () => lab.close(),
    };
  } catch (error) {
    await lab.close();
    throw error;
  }
}

/** Link profiles of the issue: tbf for rate, nftables numgen for loss (this kernel has no netem). */
export interface LinkProfile {
  readonly name: 'lan100' | 'lan1000' | 'lossy';
  readonly rateBitsPerSecond: number;
  readonly lossPercent: number;
}

export const PROFILES: Readonly<Record<LinkProfile['name'], LinkProfile>> = {
  lan100: { name: 'lan100', rateBitsPerSecond: 100e6, lossPercent: 0 },
  lan1000: { name: 'lan1000', rateBitsPerSecond: 1000e6, lossPercent: 0 },
  lossy: { name: 'lossy', rateBitsPerSecond: 100e6, lossPercent: 1 },
};

/** Shapes the server's link: egress rate on srv eth0, and random UDP loss both ways when asked. */
export async function applyProfile(lab: Lab, profile: LinkProfile): Promise<void> {
  await lab.run('srv', 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']); // none yet is fine
  const burst = profile.rateBitsPerSecond >= 1e9 ? '512kb' : '64kb';
  const tc = await lab.run('srv', 'tc', [
    'qdisc',
    'add',
    'dev',
    'eth0',
    'root',
    'tbf',
    'rate',
    `${profile.rateBitsPerSecond / 1e6}mbit`,
    'burst',
    burst,
    'latency',
    '50ms',
  ]);
  if (tc.code !== 0) throw new Error(`tc tbf failed: ${tc.stderr}`);
  await lab.run('srv', 'nft', ['delete', 'table', 'inet', 'storm']);
  if (profile.lossPercent > 0) {
    const rules = `table inet storm {
  chain in { type filter hook input priority 0; meta l4proto udp numgen random mod 1000 < ${profile.lossPercent * 10} drop; }
  chain out { type filter hook output priority 0; meta l4proto udp numgen random mod 1000 < ${profile.lossPercent * 10} drop; }
}
`;
    const nft = await lab.run('srv', 'nft', ['-f', '-'], { input: rules });
    if (nft.code !== 0) throw new Error(`nft loss rule failed: ${nft.stderr}`);
  }
}

/** Bytes the server has put on its shaped link so far (tbf's Sent counter). */
export async function linkBytesSent(lab: Lab): Promise<number> {
  const stats = await lab.run('srv', 'tc', ['-s', 'qdisc', 'show', 'dev', 'eth0']);
  const match = /Sent (\d+) bytes/.exec(stats.stdout);
  return match ? Number(match[1]) : 0;
}
