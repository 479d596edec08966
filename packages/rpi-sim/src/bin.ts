#!/usr/bin/env node
import { runCli } from './cli.js';

runCli(process.argv.slice(2), { stdout: (t) => process.stdout.write(t), stderr: (t) => process.stderr.write(t) }).then(
  (code) => (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`rpi-sim: ${(error as Error).stack ?? String(error)}\n`);
    process.exitCode = 70;
  },
);
