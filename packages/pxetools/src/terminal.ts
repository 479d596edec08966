import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import type { Progress } from '@iot-tofu/fleet';

/** The process streams, injectable so tests can run main() in-process. */
export interface CliIo {
  stdin: Readable & { isTTY?: boolean };
  stdout: Writable & { isTTY?: boolean };
  stderr: Writable & { isTTY?: boolean };
  env: Readonly<Record<string, string | undefined>>;
  isRoot: () => boolean;
}

/** Line reader for prompts; only ever used when stdin is a terminal. */
export class Prompter {
  private readonly lines: string[] = [];
  private readonly waiters: Array<(line: string | undefined) => void> = [];
  private ended = false;
  private readonly rl;

  constructor(private readonly io: CliIo) {
    this.rl = createInterface({ input: io.stdin, terminal: false });
    this.rl.on('line', (line) => {
      const waiter = this.waiters.shift();
      if (waiter) waiter(line);
      else this.lines.push(line);
    });
    this.rl.on('close', () => {
      this.ended = true;
      for (const w of this.waiters.splice(0)) w(undefined);
    });
  }

  async ask(question: string): Promise<string> {
    this.io.stdout.write(question);
    const line =
      this.lines.shift() ?? (this.ended ? undefined : await new Promise<string | undefined>((resolve) => this.waiters.push(resolve)));
    if (line === undefined) throw new Error('input ended before an answer was given');
    return line;
  }

  close(): void {
    this.rl.close();
  }
}

const KB = 1024;
const MB = 1024 * 1024;

/** Bytes for a progress line: KB below a megabyte (a small base), MB above. */
export function formatBytes(bytes: number): string {
  return bytes < MB ? `${Math.round(bytes / KB)} KB` : `${Math.round(bytes / MB)} MB`;
}

const LABELS: Record<Progress['phase'], string> = {
  copy: 'Copying root',
  'extract-boot': 'Boot files',
  'extract-root': 'Extracting root',
  decompress: 'Decompressing',
};

export interface ProgressReporter {
  update: (p: Progress) => void;
  done: () => void;
}

export interface ProgressOptions {
  /** --json: stdout is for the JSON answer and stderr stays quiet. */
  json?: boolean;
  /** Clock for the redraw throttle (tests). */
  now?: () => number;
}

/**
 * Progress for image import, rootfs copy and add, on stderr: a bar redrawn in place (at most every
 * 100 ms) when stderr is a terminal; plain lines otherwise (a phase's start, each quarter, its end),
 * so logs and pipes get a readable record; nothing at all with --json.
 */
export function progressReporter(io: CliIo, options: ProgressOptions = {}): ProgressReporter {
  if (options.json) return { update: () => undefined, done: () => undefined };
  return io.stderr.isTTY ? ttyBar(io, options.now ?? Date.now) : plainLines(io);
}

function ttyBar(io: CliIo, now: () => number): ProgressReporter {
  let lastDraw = 0;
  let phase: Progress['phase'] | undefined;
  let drawn = false;
  return {
    update(p) {
      const t = now();
      const newPhase = p.phase !== phase;
      if (!newPhase && t - lastDraw < 100 && p.done < p.total) return;
      // A new phase keeps the previous bar on its own line.
      if (newPhase && drawn) io.stderr.write('\n');
      phase = p.phase;
      lastDraw = t;
      drawn = true;
      if (p.total <= 0) {
        io.stderr.write(`\r${LABELS[p.phase]}...\x1b[K`);
        return;
      }
      const ratio = Math.min(1, p.done / p.total);
      const cells = Math.round(ratio * 30);
      io.stderr.write(
        `\r${LABELS[p.phase]} [${'#'.repeat(cells)}${'.'.repeat(30 - cells)}] ${Math.floor(ratio * 100)}% ${formatBytes(p.done)}/${formatBytes(p.total)}\x1b[K`,
      );
    },
    done() {
      if (drawn) io.stderr.write('\n');
      drawn = false;
    },
  };
}

function plainLines(io: CliIo): ProgressReporter {
  let phase: Progress['phase'] | undefined;
  let quarter = -1;
  let total = 0;
  return {
    update(p) {
      total = p.total;
      if (p.phase !== phase) {
        phase = p.phase;
        quarter = -1;
        if (p.total <= 0) {
          io.stderr.write(`${LABELS[p.phase]}...\n`);
          return;
        }
      }
      if (p.total <= 0) return;
      const ratio = Math.min(1, p.done / p.total);
      const q = Math.floor(ratio * 4);
      if (q <= quarter) return;
      quarter = q;
      io.stderr.write(`${LABELS[p.phase]}: ${q * 25}% (${formatBytes(p.done)} of ${formatBytes(p.total)})\n`);
    },
    done() {
      // The verb finished, so its last phase did too, even when the estimate (used blocks, with
      // metadata) was above the bytes counted.
      if (phase && total > 0 && quarter < 4) io.stderr.write(`${LABELS[phase]}: 100% (${formatBytes(total)} of ${formatBytes(total)})\n`);
      phase = undefined;
    },
  };
}
