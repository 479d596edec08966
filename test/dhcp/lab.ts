import type { ChildProcess } from 'node:child_process';
import { type Lab, repoRoot, tsNodeArgs, waitForOutput } from '../lab/index.js';
import type { ServeConfig } from './serve.js';
import type { ClientConfig, ReplySummary } from './pxe-client.js';

export interface JsonEvent {
  event: string;
  [key: string]: unknown;
}

/** Accumulates a child's stdout JSON lines as they arrive. */
export function jsonEvents(child: ChildProcess): JsonEvent[] {
  const events: JsonEvent[] = [];
  let partial = '';
  child.stdout?.on('data', (chunk: Buffer | string) => {
    partial += chunk.toString();
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.startsWith('{')) continue;
      try {
        events.push(JSON.parse(line) as JsonEvent);
      } catch {
        // a line from something else
      }
    }
  });
  return events;
}

export function parseJsonLines(text: string): JsonEvent[] {
  return text
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as JsonEvent);
}

/** argv that runs test/dhcp/serve.ts (proxy or full mode, per config.mode) from the repository root. */
export function serveArgs(config: ServeConfig): string[] {
  return [...tsNodeArgs, 'test/dhcp/serve.ts', JSON.stringify(config)];
}

/** Starts test/dhcp/serve.ts in a lab host and waits until it has bound every socket. */
export async function startServe(lab: Lab, host: string, config: ServeConfig): Promise<{ child: ChildProcess; events: JsonEvent[] }> {
  const child = lab.spawn(host, process.execPath, serveArgs(config), { cwd: repoRoot });
  const events = jsonEvents(child);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    // Full mode listens for another DHCP server first (its start-up probe) before it binds.
    await waitForOutput(child, /"event":"ready"/, 30_000);
  } catch (error) {
    throw new Error(`serve.ts did not start: ${(error as Error).message}\nstderr: ${stderr}`);
  }
  return { child, events };
}

/** Runs test/dhcp/pxe-client.ts in a lab host; returns its replies (and lease, if any). */
export async function runClient(
  lab: Lab,
  host: string,
  config: ClientConfig,
): Promise<{ replies: ReplySummary[]; lease?: { address: string; server: string }; raw: string }> {
  const result = await lab.run(host, process.execPath, [...tsNodeArgs, 'test/dhcp/pxe-client.ts', JSON.stringify(config)], {
    cwd: repoRoot,
    timeoutMs: (config.listenMs ?? 1500) + 15_000,
  });
  if (result.code !== 0) throw new Error(`pxe-client failed (${result.code}): ${result.stderr}\n${result.stdout}`);
  const events = parseJsonLines(result.stdout);
  const replies = events.filter((e) => e.event === 'reply') as unknown as ReplySummary[];
  const lease = events.find((e) => e.event === 'lease') as { address: string; server: string } | undefined;
  return lease ? { replies, lease, raw: result.stdout } : { replies, raw: result.stdout };
}

/** dnsmasq handing out addresses only: the "site router" of docs/lab.md (a). */
export function startSiteRouter(lab: Lab, host: string, workDir: string, extraArgs: string[] = []): ChildProcess {
  return lab.spawn(host, 'dnsmasq', [
    '--conf-file=/dev/null',
    '--no-daemon',
    '--port=0',
    '--interface=eth0',
    '--bind-interfaces',
    '--dhcp-range=10.77.0.100,10.77.0.199,255.255.255.0,1h',
    // Unconfigured clients are scripted with plain UDP sockets: they only hear broadcast replies.
    '--dhcp-broadcast',
    '--no-ping',
    '--log-dhcp',
    '--log-facility=-',
    '--pid-file=',
    `--dhcp-leasefile=${workDir}/router.leases`,
    ...extraArgs,
  ]);
}
