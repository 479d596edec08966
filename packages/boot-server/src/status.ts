import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { processAlive, writeFileAtomic, type CommandRunner } from '@iot-tofu/host-io';
import { nfsHealth, type NfsHealth } from '@iot-tofu/nfs-server-lite';
import type { BootServerConfig } from './config.js';
import type { ListeningSocket } from './daemon.js';
import type { MqttLinkState } from './mqtt/index.js';

/** What a running daemon leaves in its state dir so `status` can find it. */
export interface RuntimeFile {
  pid: number;
  startedAt: string;
  addresses: ListeningSocket[];
  serverIp: string;
}

export const RUNTIME_FILE = 'boot-server.json';

export async function writeRuntimeFile(stateDir: string, runtime: RuntimeFile): Promise<void> {
  await writeFileAtomic(join(stateDir, RUNTIME_FILE), `${JSON.stringify(runtime, null, 2)}\n`, 0o644, { createDir: true });
}

/** The MQTT link as /healthz reports it under `mqtt`; the counts are absent when it is off. */
export interface MqttHealth {
  state: MqttLinkState;
  queued?: number;
  dropped?: number;
  reconnects?: number;
}

/** The `mqtt` object of a /healthz answer, when it has a readable one (older daemons have none). */
export function mqttHealthOf(health: Record<string, unknown> | undefined): MqttHealth | undefined {
  const mqtt = health?.mqtt as MqttHealth | undefined;
  return mqtt && ['off', 'connected', 'reconnecting'].includes(mqtt.state) ? mqtt : undefined;
}

/** `connected (queued 0, dropped 0, reconnects 0)`, or `off` / `off (no mqttUrl)`. */
export function describeMqtt(mqtt: MqttHealth): string {
  if (mqtt.state === 'off') return 'off (no mqttUrl)';
  return `${mqtt.state} (queued ${mqtt.queued ?? 0}, dropped ${mqtt.dropped ?? 0}, reconnects ${mqtt.reconnects ?? 0})`;
}

/** GET /healthz of the daemon a runtime file names (a wildcard address is asked on loopback); throws when it does not answer. */
export async function fetchHealth(runtime: RuntimeFile, timeoutMs = 2000): Promise<Record<string, unknown> | undefined> {
  const api = runtime.addresses.find((a) => a.service === 'api');
  if (!api) return undefined;
  const anyAddress = api.address === '0.0.0.0' || api.address === '::';
  const host = anyAddress ? '127.0.0.1' : api.address.includes(':') ? `[${api.address}]` : api.address;
  const response = await fetch(`http://${host}:${api.port}/healthz`, { signal: AbortSignal.timeout(timeoutMs) });
  return (await response.json()) as Record<string, unknown>;
}

export interface StatusReport {
  daemon: {
    state: 'running' | 'stopped' | 'stale';
    pid?: number;
    startedAt?: string;
    addresses?: ListeningSocket[];
    health?: Record<string, unknown>;
    healthError?: string;
  };
  nfs: NfsHealth;
  config: { file?: string; tftpRoot: string; nfsRoot: string; stateDir: string; serverIp?: string };
}

/** Gathers what runs (runtime file + live /healthz) and what nfsd exports; never throws for a stopped daemon. */
export async function collectStatus(options: {
  config: Omit<BootServerConfig, 'serverIp'> & { serverIp?: string };
  configFile?: string;
  runner?: CommandRunner;
  fetchTimeoutMs?: number;
}): Promise<StatusReport> {
  const { config } = options;
  const report: StatusReport = {
    daemon: { state: 'stopped' },
    nfs: await nfsHealth(options.runner ? { runner: options.runner } : {}),
    config: {
      ...(options.configFile ? { file: options.configFile } : {}),
      tftpRoot: config.tftpRoot,
      nfsRoot: config.nfsRoot,
      stateDir: config.stateDir,
      ...(config.serverIp ? { serverIp: config.serverIp } : {}),
    },
  };
  let runtime: RuntimeFile | undefined;
  try {
    runtime = JSON.parse(await readFile(join(config.stateDir, RUNTIME_FILE), 'utf8')) as RuntimeFile;
  } catch {
    return report;
  }
  if (!processAlive(runtime.pid)) {
    report.daemon = { state: 'stale', pid: runtime.pid, startedAt: runtime.startedAt };
    return report;
  }
  report.daemon = { state: 'running', pid: runtime.pid, startedAt: runtime.startedAt, addresses: runtime.addresses };
  try {
    const health = await fetchHealth(runtime, options.fetchTimeoutMs);
    if (health) report.daemon.health = health;
  } catch (error) {
    report.daemon.healthError = (error as Error).message;
  }
  return report;
}

/** Human-readable status, one fact per line. */
export function renderStatus(report: StatusReport): string {
  const lines: string[] = [];
  const d = report.daemon;
  if (d.state === 'running') {
    lines.push(`boot-server: running (pid ${d.pid}, since ${d.startedAt})`);
    for (const a of d.addresses ?? []) lines.push(`  ${a.service.padEnd(5)} ${a.protocol} ${a.address}:${a.port}`);
    if (d.health) {
      lines.push(
        `  health: ${Object.entries(d.health)
          .filter(([, v]) => typeof v !== 'object' || v === null)
          .map(([k, v]) => `${k}=${String(v)}`)
          .join(' ')}`,
      );
      const foreign = (d.health.nfs as { foreignExportsIssues?: { at: string; messages: string[] } } | undefined)?.foreignExportsIssues;
      if (foreign) lines.push(`  exportfs complained about exports that are not ours (${foreign.at}): ${foreign.messages.join('; ')}`);
      const mqtt = mqttHealthOf(d.health);
      if (mqtt) lines.push(`  mqtt: ${describeMqtt(mqtt)}`);
    }
    if (d.healthError) lines.push(`  health: API not answering (${d.healthError})`);
  } else if (d.state === 'stale') {
    lines.push(`boot-server: not running (pid ${d.pid} from ${d.startedAt} is gone; it did not shut down cleanly)`);
  } else {
    lines.push('boot-server: not running');
  }
  lines.push(
    `config: ${report.config.file ?? '(defaults, no config file)'}; tftpRoot ${report.config.tftpRoot}, nfsRoot ${report.config.nfsRoot}, stateDir ${report.config.stateDir}${report.config.serverIp ? `, serverIp ${report.config.serverIp}` : ''}`,
  );
  lines.push(`nfsd: ${report.nfs.nfsdRunning ? 'running' : 'not running'} (${report.nfs.nfsdDetail})`);
  if (report.nfs.exportfsError) lines.push(`exports: exportfs failed: ${report.nfs.exportfsError}`);
  else if (report.nfs.exported.length === 0) lines.push('exports: none');
  else {
    lines.push(`exports (${report.nfs.exported.length}):`);
    for (const e of report.nfs.exported) lines.push(`  ${e.path} ${e.client}(${e.options.join(',')})`);
  }
  return `${lines.join('\n')}\n`;
}
