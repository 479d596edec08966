import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { promisify } from 'node:util';
import { collect, stopProcess, type RunResult } from './process.js';

const execFileAsync = promisify(execFile);

/**
 * A throw-away LAN made of network namespaces (docs/lab.md section 1): one bridge kept in its own
 * namespace and one namespace per host, each host with `eth0` on the bridge. Every name carries
 * a random lab id so parallel runs never collide, and close() removes every namespace and kills
 * every process the lab started (by PID).
 */
export interface LabHostSpec {
  name: string;
  /** e.g. '10.77.0.2/24'; omit for an address-less PXE client (gets a 255.255.255.255 route). */
  address?: string;
  /** Add a default route out of eth0 (lets an unbound socket send limited broadcasts). */
  defaultRoute?: boolean;
}

export interface LabRunOptions {
  /** Kill the command (by PID) after this long; default 20 s. */
  timeoutMs?: number;
  /** Written to the command's stdin, which is then closed. */
  input?: string;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

export class Lab {
  readonly id: string;
  private readonly processes = new Set<ChildProcess>();
  private readonly namespaces: string[] = [];
  private closed = false;

  private constructor(id: string) {
    this.id = id;
  }

  /** Namespace name of a host (or of the bridge: 'sw'). */
  ns(host: string): string {
    return `${this.id}${host}`;
  }

  static async create(hosts: LabHostSpec[]): Promise<Lab> {
    const lab = new Lab(`tofu${randomBytes(3).toString('hex')}`);
    activeLabs.add(lab);
    try {
      await lab.addNamespace('sw');
      await ip('-n', lab.ns('sw'), 'link', 'add', 'br0', 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0');
      await ip('-n', lab.ns('sw'), 'link', 'set', 'br0', 'up');
      await ip('-n', lab.ns('sw'), 'link', 'set', 'lo', 'up');
      for (const host of hosts) await lab.addHost(host);
    } catch (error) {
      await lab.close();
      throw error;
    }
    return lab;
  }

  private async addNamespace(host: string): Promise<void> {
    await ip('netns', 'add', this.ns(host));
    this.namespaces.push(this.ns(host));
  }

  async addHost(host: LabHostSpec): Promise<void> {
    const ns = this.ns(host.name);
    await this.addNamespace(host.name);
    // The veth is born in the host namespace, so its first name must be unique machine-wide.
    const port = `v${this.id.slice(4)}${this.namespaces.length}`;
    await ip('link', 'add', port, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    await ip('link', 'set', port, 'netns', this.ns('sw'));
    await ip('-n', this.ns('sw'), 'link', 'set', port, 'master', 'br0', 'up');
    await ip('-n', ns, 'link', 'set', 'lo', 'up');
    await ip('-n', ns, 'link', 'set', 'eth0', 'up');
    if (host.address) await ip('-n', ns, 'addr', 'add', host.address, 'dev', 'eth0');
    else await ip('-n', ns, 'route', 'add', '255.255.255.255/32', 'dev', 'eth0');
    if (host.defaultRoute) await ip('-n', ns, 'route', 'add', 'default', 'dev', 'eth0');
  }

  /** Adds a tap device on the bridge (for QEMU, started in the bridge namespace). */
  async addTap(name: string): Promise<void> {
    await ip('-n', this.ns('sw'), 'tuntap', 'add', 'dev', name, 'mode', 'tap');
    await ip('-n', this.ns('sw'), 'link', 'set', name, 'master', 'br0', 'up');
  }

  /** Starts a long-running process inside a host namespace; close() kills it. */
  spawn(host: string, command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(host), command, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      ...options,
    });
    this.processes.add(child);
    child.once('exit', () => this.processes.delete(child));
    return child;
  }

  /** Runs a command to completion inside a host namespace, bounded by timeoutMs. */
  async run(host: string, command: string, args: string[], options: LabRunOptions = {}): Promise<RunResult> {
    const stdin = options.input === undefined ? 'ignore' : 'pipe';
    const child = this.spawn(host, command, args, { cwd: options.cwd, env: options.env, stdio: [stdin, 'pipe', 'pipe'] });
    if (options.input !== undefined) child.stdin?.end(options.input);
    return collect(child, options.timeoutMs ?? 20_000);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    activeLabs.delete(this);
    await Promise.all([...this.processes].map((child) => stopProcess(child)));
    for (const ns of this.namespaces.reverse()) {
      await ip('netns', 'del', ns).catch(() => undefined);
    }
  }
}

async function ip(...args: string[]): Promise<void> {
  try {
    await execFileAsync('ip', args);
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    throw new Error(`ip ${args.join(' ')} failed: ${stderr.trim()}`, { cause: error });
  }
}

// A test that crashes must still not leave namespaces behind.
const activeLabs = new Set<Lab>();
process.once('beforeExit', () => {
  for (const lab of activeLabs) void lab.close();
});
