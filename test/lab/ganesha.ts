import type { ChildProcess } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseExports, type ExportClient, type ExportEntry } from '@iot-tofu/nfs-server-lite';
import { stopProcess, type Lab } from '@iot-tofu/test-kit';

/**
 * nfs-ganesha (VFS FSAL) as the NFS server of a namespace lab (docs/lab.md section 4): the machines have
 * no kernel nfsd, so the exports file our fleet writes is translated into ganesha EXPORT blocks and
 * served from userspace. The translation is pure and unit-tested; startGanesha runs it.
 */

export interface GaneshaCoreOptions {
  /** Address the NFS, MOUNT and portmapper-registered services listen on. */
  bindAddress: string;
  /** Directory for ganesha's NFSv4 recovery state (kept out of the shared /var/lib/nfs). */
  recoveryRoot: string;
}

/** exports(5) squash options in ganesha's words; the later option wins, as in exportfs. */
function squashOf(options: readonly string[]): string {
  let squash = 'Root_Squash';
  for (const option of options) {
    if (option === 'no_root_squash') squash = 'No_Root_Squash';
    else if (option === 'root_squash') squash = 'Root_Squash';
    else if (option === 'all_squash') squash = 'All_Squash';
  }
  return squash;
}

/** exports(5) defaults to read-only; rw/ro toggle, the later one wins. */
function accessOf(options: readonly string[]): 'RW' | 'RO' {
  let access: 'RW' | 'RO' = 'RO';
  for (const option of options) {
    if (option === 'rw') access = 'RW';
    else if (option === 'ro') access = 'RO';
  }
  return access;
}

function anonIdsOf(options: readonly string[]): string[] {
  const lines: string[] = [];
  for (const option of options) {
    const [key, value] = option.split('=');
    if (key === 'anonuid' && value) lines.push(`Anonymous_Uid = ${value};`);
    if (key === 'anongid' && value) lines.push(`Anonymous_Gid = ${value};`);
  }
  return lines;
}

function quoted(text: string): string {
  return `"${text.replaceAll('\\', '\\\\').replaceAll('"', '\\"')}"`;
}

function clientBlock(client: ExportClient): string {
  // exportfs writes "everyone" as '*'; ganesha spells it the same way.
  const lines = [
    `Clients = ${client.host};`,
    `Access_Type = ${accessOf(client.options)};`,
    `Squash = ${squashOf(client.options)};`,
    ...anonIdsOf(client.options),
  ];
  return `    CLIENT {\n${lines.map((l) => `      ${l}\n`).join('')}    }\n`;
}

/**
 * One ganesha EXPORT block per exports entry: nobody gets in by default (Access_Type = None), each
 * client spec of the line becomes a CLIENT block with its access and squash. NFSv4 sees the export
 * at the same path (Pseudo = Path). Export_Id 0 is ganesha's pseudo root, so ids start at 1.
 */
export function ganeshaExportBlocks(entries: readonly ExportEntry[]): string {
  return entries
    .map((entry, index) =>
      [
        'EXPORT {\n',
        `    Export_Id = ${index + 1};\n`,
        `    Path = ${quoted(entry.path)};\n`,
        `    Pseudo = ${quoted(entry.path)};\n`,
        '    Protocols = 3, 4;\n',
        '    Transports = TCP, UDP;\n',
        '    SecType = sys;\n',
        '    Access_Type = None;\n',
        ...entry.clients.map(clientBlock),
        '    FSAL { Name = VFS; }\n',
        '}\n',
      ].join(''),
    )
    .join('');
}

/** A whole ganesha.conf for an exports file's text. Pure. */
export function ganeshaConfigFromExports(exportsText: string, core: GaneshaCoreOptions): string {
  return [
    'NFS_CORE_PARAM {\n',
    '    Protocols = 3, 4;\n',
    `    Bind_addr = ${core.bindAddress};\n`,
    '    NFS_Port = 2049;\n',
    '    MNT_Port = 20048;\n',
    // klibc nfsmount mounts with nolock, so no NLM is needed.
    '    Enable_NLM = false;\n',
    '    Enable_RQUOTA = false;\n',
    '}\n',
    `NFSV4 { Graceless = true; RecoveryRoot = ${quoted(core.recoveryRoot)}; }\n`,
    'LOG { Default_Log_Level = EVENT; }\n',
    ganeshaExportBlocks(parseExports(exportsText)),
  ].join('');
}

export interface RunningGanesha {
  /** The shell that runs rpcbind and ganesha.nfsd (the lab stops it on close; it stops both). */
  child: ChildProcess;
  configFile: string;
  logFile: string;
  /** The log so far (ganesha writes it to a file, not to stdout). */
  log(): string;
  /** Stops ganesha and its private rpcbind, by PID. */
  stop(): Promise<void>;
}

/**
 * Starts rpcbind + ganesha.nfsd in a lab host with a private /run (so their sockets never meet the
 * host's rpcbind), serving what `exportsFile` exports. Resolves once ganesha says it is up.
 */
export async function startGanesha(
  lab: Lab,
  host: string,
  options: { workDir: string; exportsFile: string; bindAddress: string; readyTimeoutMs?: number },
): Promise<RunningGanesha> {
  const dir = join(options.workDir, 'ganesha');
  const recoveryRoot = join(dir, 'recovery');
  mkdirSync(recoveryRoot, { recursive: true });
  const configFile = join(dir, 'ganesha.conf');
  const logFile = join(dir, 'ganesha.log');
  const pidFiles = { rpcbind: join(dir, 'rpcbind.pid'), ganesha: join(dir, 'ganesha.pid') };
  writeFileSync(
    configFile,
    ganeshaConfigFromExports(readFileSync(options.exportsFile, 'utf8'), { bindAddress: options.bindAddress, recoveryRoot }),
  );
  writeFileSync(logFile, '');
  // The shell stays the parent of both daemons, so it reaps them; on SIGTERM (the lab's stop)
  // it stops both by PID (ganesha at once: it has nothing worth a slow shutdown here). unshare
  // execs the shell, so the lab's child PID is this shell.
  const script = `
    mount -t tmpfs none /run && mkdir -p /run/rpcbind /run/ganesha || exit 1
    rpcbind -w -f & rpcbind_pid=$!
    echo $rpcbind_pid > '${pidFiles.rpcbind}'
    sleep 0.5
    ganesha.nfsd -F -L '${logFile}' -f '${configFile}' -p /run/ganesha/ganesha.pid -N NIV_EVENT & ganesha_pid=$!
    echo $ganesha_pid > '${pidFiles.ganesha}'
    trap 'kill -KILL $ganesha_pid; kill $rpcbind_pid; wait' TERM INT
    wait $ganesha_pid
    kill $rpcbind_pid 2>/dev/null; wait`;
  const child = lab.spawn(host, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', script]);
  const log = () => readFileSync(logFile, 'utf8');
  const stop = async () => {
    await stopProcess(child);
    // Only if the shell died before it could stop them (e.g. SIGKILL after the grace period).
    for (const [name, file] of Object.entries(pidFiles)) killIfStill(file, name);
  };
  const deadline = Date.now() + (options.readyTimeoutMs ?? 20_000);
  while (!/NFS SERVER INITIALIZED/.test(log())) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop();
      throw new Error(
        `nfs-ganesha did not start (${child.exitCode !== null ? `exit ${child.exitCode}` : 'timeout'}); log:\n${log().slice(-3000)}`,
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  return { child, configFile, logFile, log, stop };
}

/** Kills the process whose PID is in `pidFile` if it still runs `name` (never a reused PID). */
function killIfStill(pidFile: string, name: string): void {
  try {
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    if (pid > 0 && readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(name)) process.kill(pid, 'SIGKILL');
  } catch {
    // never started, or already gone
  }
}
