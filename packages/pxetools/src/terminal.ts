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
    const line = this.lines.shift() ?? (this.ended ? undefined : await new Promise<string | undefined>((resolve) => this.waiters.push(resolve)));
    if (line === undefined) throw new Error('input ended before an answer was given');
    return line;
  }

  close(): void {
    this.rl.close();
  }
}

const MB = 1024 * 1024;

/** A one-line progress bar on a terminal (stderr); silent otherwise. */
export function progressBar(io: CliIo): { update: (p: Progress) => void; done: () => void } {
  if (!io.stderr.isTTY) return { update: () => undefined, done: () => undefined };
  let lastDraw = 0;
  let drawn = false;
  const labels: Record<Progress['phase'], string> = { copy: 'Copying root', 'extract-boot': 'Boot files', 'extract-root': 'Extracting root', decompress: 'Decompressing' };
  return {
    update(p) {
      const now = Date.now();
      if (now - lastDraw < 100 && p.done < p.total) return;
      lastDraw = now;
      drawn = true;
      if (p.total <= 0) {
        io.stderr.write(`\r${labels[p.phase]}...\x1b[K`);
        return;
      }
      const ratio = Math.min(1, p.done / p.total);
      const cells = Math.round(ratio * 30);
      io.stderr.write(`\r${labels[p.phase]} [${'#'.repeat(cells)}${'.'.repeat(30 - cells)}] ${Math.floor(ratio * 100)}% ${Math.round(p.done / MB)}/${Math.round(p.total / MB)} MB\x1b[K`);
    },
    done() {
      if (drawn) io.stderr.write('\n');
    },
  };
}
