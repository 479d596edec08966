import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, stopProcess, tsNodeArgs, type Lab } from '../../test/lab/index.js';
import { SERVER_IP, PREFIX } from './topology.js';

/** A running server under test: the PIDs whose CPU and memory count, and how to stop it. */
export interface RunningServer {
  readonly pids: readonly number[];
  /** What each pid is (same order), for the per-process CPU and memory figures. */
  readonly labels: readonly string[];
  /** What this run actually measured (e.g. which admission gate). */
  readonly note: string;
  stop(): Promise<void>;
  /** The last lines each process printed (for the run's log). */
  output(): string;
}

export interface ServerContext {
  readonly lab: Lab;
  readonly tftpRoot: string;
  readonly workDir: string;
  /** Admission gate of the library script: 'adaptive', 'fixed:K' or 'off'. */
  readonly gate: string;
  /** --admission-budget for `ours` (auto | K | 0); undefined runs the daemon's default. */
  readonly admissionBudget: string | undefined;
  /** The fixed budget sized for this link (R × 15 s / B), for `ours-fixed`. */
  readonly linkBudget: number;
  /** First TFTP retransmission timeout of the library script (ms). */
  readonly oursRtoMs: number;
  /** Transfer threads of the library script (`0`, `auto` or a count); undefined: the script's default (0). */
  readonly oursThreads?: string;
}

export interface ServerUnderTest {
  readonly name: string;
  readonly description: string;
  start(context: ServerContext): Promise<RunningServer>;
}

/** Keeps the last lines of a child's output (and drains its pipes so it never blocks on a full pipe). */
function tail(child: ChildProcess, keep = 60): () => string {
  const lines: string[] = [];
  const add = (chunk: Buffer | string) => {
    for (const line of chunk.toString().split('\n')) if (line) lines.push(line);
    if (lines.length > keep) lines.splice(0, lines.length - keep);
  };
  child.stdout?.on('data', add);
  child.stderr?.on('data', add);
  return () => lines.join('\n');
}

/** Polls `ss` in the server namespace until every port listens on UDP (bounded). */
async function waitForUdpPorts(lab: Lab, ports: readonly number[], child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited (${child.exitCode}) before listening`);
    const ss = await lab.run('srv', 'ss', ['-Hlun']);
    const open = ports.every((port) => new RegExp(`:${port}\\s`).test(ss.stdout));
    if (open) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`server did not listen on UDP ${ports.join(', ')} within ${timeoutMs} ms`);
}

async function started(lab: Lab, children: ChildProcess[], ports: number[], note: string, labels: string[]): Promise<RunningServer> {
  const outputs = children.map((c) => tail(c));
  const stop = async () => {
    await Promise.all(children.map((c) => stopProcess(c)));
  };
  try {
    for (const child of children) await waitForUdpPorts(lab, ports, child);
  } catch (error) {
    const log = outputs.map((o) => o()).join('\n');
    await stop();
    throw new Error(`${(error as Error).message}\n${log}`, { cause: error });
  }
  return { pids: children.map((c) => c.pid ?? 0), labels, note, stop, output: () => outputs.map((o) => o()).join('\n') };
}

function dnsmasqProxy(context: ServerContext, extra: string[], withTftp: boolean): string[] {
  return [
    '--conf-file=/dev/null',
    '--no-daemon',
    '--port=0',
    '--interface=eth0',
    '--bind-interfaces',
    `--dhcp-range=${SERVER_IP.replace(/\.\d+\.\d+$/, '.0.0')},proxy,255.255.0.0`,
    '--pxe-service=0,Raspberry Pi Boot',
    ...(withTftp ? ['--enable-tftp', `--tftp-root=${context.tftpRoot}`] : []),
    '--log-facility=-',
    '--quiet-dhcp',
    '--quiet-tftp',
    '--pid-file=',
    `--dhcp-leasefile=${context.workDir}/proxy.leases`,
    ...extra,
  ];
}

/** dnsmasq in proxy mode with its built-in TFTP server, as docs/lab.md section 2 runs it. */
function dnsmasq(name: string, description: string, extra: string[]): ServerUnderTest {
  return {
    name,
    description,
    start: async (context) => {
      const child = context.lab.spawn('srv', 'dnsmasq', dnsmasqProxy(context, extra, true));
      return started(context.lab, [child], [67, 69], `dnsmasq ${extra.join(' ') || '(defaults)'}`, ['dnsmasq']);
    },
  };
}

/** Our daemon's entry point, built (dist) or from sources; undefined while it does not exist yet. */
export function daemonEntry(): string[] | undefined {
  const dist = join(repoRoot, 'packages/boot-server/dist/cli.js');
  const src = join(repoRoot, 'packages/boot-server/src/cli.ts');
  if (existsSync(dist)) return [dist];
  if (existsSync(src)) return [...tsNodeArgs, src];
  return undefined;
}

function oursScriptProcess(context: ServerContext, args: string[]): ChildProcess {
  return context.lab.spawn(
    'srv',
    process.execPath,
    [...tsNodeArgs, join(repoRoot, 'bench/storm/ours.ts'), '--server-ip', SERVER_IP, ...args],
    { cwd: repoRoot },
  );
}

/** The boot-server daemon (`boot-server start`), with `--admission-budget` as given (none: its default) and extra environment. */
export function oursDaemon(
  name: string,
  description: string,
  budget: (context: ServerContext) => string | number | undefined,
  env: Record<string, string> = {},
): ServerUnderTest {
  return {
    name,
    description,
    start: async (context) => {
      const entry = daemonEntry();
      if (!entry) throw new Error('packages/boot-server has no CLI yet (src/cli.ts); run with --ours script');
      const admission = budget(context);
      const child = context.lab.spawn(
        'srv',
        process.execPath,
        [
          ...entry,
          'start',
          '--server-ip',
          SERVER_IP,
          '--tftp-root',
          context.tftpRoot,
          '--nfs-root',
          join(context.workDir, 'nfs'),
          '--state-dir',
          join(context.workDir, 'state'),
          '--dhcp-answer',
          'any-pi',
          '--api-port',
          '0',
          '--log-level',
          'warn',
          ...(admission === undefined ? [] : ['--admission-budget', String(admission)]),
        ],
        { cwd: repoRoot, env: { ...process.env, ...env } },
      );
      const gate = admission === undefined ? 'default admission (auto)' : `--admission-budget ${admission}`;
      const extra = Object.entries(env).map(([key, value]) => `, ${key}=${value}`);
      return started(context.lab, [child], [67, 69], `boot-server daemon, ${gate}${extra.join('')}`, ['boot-server']);
    },
  };
}

/** bench/storm/ours.ts: our ProxyDhcpServer + TftpServer from the libraries with the daemon's gate (daemon-gate.ts) at the offer. */
export function oursScript(name: string, description: string, gate: (context: ServerContext) => string): ServerUnderTest {
  return {
    name,
    description,
    start: async (context) => {
      const chosen = gate(context);
      const threads = context.oursThreads === undefined ? [] : ['--threads', context.oursThreads];
      const child = oursScriptProcess(context, [
        '--tftp-root',
        context.tftpRoot,
        '--gate',
        chosen,
        '--rto-ms',
        String(context.oursRtoMs),
        ...threads,
      ]);
      return started(
        context.lab,
        [child],
        [67, 69],
        `bench/storm/ours.ts, gate ${chosen}, TFTP RTO ${context.oursRtoMs} ms${context.oursThreads === undefined ? '' : `, threads ${context.oursThreads}`}`,
        ['ours.ts'],
      );
    },
  };
}

/** "ours" in the comparison: the daemon as users run it (default admission gate), or the script when there is no daemon. */
export function ours(variant: 'script' | 'daemon'): ServerUnderTest {
  return variant === 'daemon'
    ? oursDaemon(
        'ours',
        'boot-server daemon with its defaults (adaptive admission gate unless --admission-budget)',
        (c) => c.admissionBudget,
      )
    : oursScript('ours', 'our ProxyDhcpServer + TftpServer with the daemon admission gate (daemon-gate.ts)', (c) => c.gate);
}

/** tftpd-hpa serving TFTP, our proxy (no gate: it cannot see tftpd-hpa's load) answering DHCP. */
export const tftpdHpaBehindOurProxy: ServerUnderTest = {
  name: 'tftpd-hpa',
  description: 'tftpd-hpa for TFTP behind our proxyDHCP',
  start: async (context) => {
    const tftpd = context.lab.spawn('srv', 'in.tftpd', [
      '--foreground',
      '--listen',
      '--address',
      `${SERVER_IP}:69`,
      '--secure',
      context.tftpRoot,
    ]);
    const proxy = oursScriptProcess(context, ['--no-tftp', '--gate', 'off']);
    const running = await started(context.lab, [tftpd], [69], 'in.tftpd defaults', ['in.tftpd']);
    const proxyRunning = await started(context.lab, [proxy], [67], 'our proxy, no gate', ['our proxy (ours.ts --no-tftp)']).catch(
      async (error: unknown) => {
        await running.stop();
        throw error;
      },
    );
    return {
      pids: [...running.pids, ...proxyRunning.pids],
      labels: [...running.labels, ...proxyRunning.labels],
      note: 'in.tftpd defaults + our proxy (no gate)',
      stop: async () => {
        await Promise.all([running.stop(), proxyRunning.stop()]);
      },
      output: () => `${running.output()}\n${proxyRunning.output()}`,
    };
  },
};

export const SERVERS = {
  'ours-daemon': oursDaemon('ours-daemon', 'boot-server daemon with its defaults (same as ours)', (c) => c.admissionBudget),
  'ours-fixed': oursDaemon('ours-fixed', 'boot-server daemon, fixed --admission-budget = R × 15 s / B for the link', (c) => c.linkBudget),
  'ours-nogate': oursDaemon('ours-nogate', 'boot-server daemon without admission gate (--admission-budget 0)', () => 0),
  // The daemon on node:dgram transfer sockets, as on a platform without the prebuilt addon (issue 14).
  'ours-dgram': oursDaemon(
    'ours-dgram',
    'boot-server daemon with its defaults, TFTP on node:dgram (IOT_TOFU_TFTP_NATIVE=0)',
    (c) => c.admissionBudget,
    {
      IOT_TOFU_TFTP_NATIVE: '0',
    },
  ),
  'ours-script': oursScript('ours-script', 'our libraries + the daemon adaptive gate (daemon-gate.ts)', () => 'adaptive'),
  dnsmasq: dnsmasq('dnsmasq', 'dnsmasq proxy + TFTP, default tftp-max (50)', []),
  'dnsmasq-max': dnsmasq('dnsmasq-max', 'dnsmasq proxy + TFTP, tftp-max raised to 1000', ['--tftp-max=1000']),
  'tftpd-hpa': tftpdHpaBehindOurProxy,
} as const;

export { PREFIX };
