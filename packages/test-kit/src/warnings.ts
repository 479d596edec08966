// Warnings a test run did not expect. The setup file fail-on-warnings.ts records every process
// 'warning' event (MaxListenersExceededWarning, DeprecationWarning, ...) and every console.warn and
// console.error here, and fails the test (or, outside any test, the file) that saw an unexpected one.
//
// A test that expects a warning says so, and may assert on what it saw:
//
//   import { allowWarnings } from '@iot-tofu/test-kit';
//   it('warns about a stale lease file', async () => {
//     const seen = allowWarnings(/stale lease/);
//     await load();
//     expect(seen).toHaveLength(1);
//   });
//
// Called inside a test (or its beforeEach), the allowance ends with the test; called in a
// beforeAll or at the top of a file, it lasts for the whole file.
import { format } from 'node:util';

export interface RecordedWarning {
  /** 'process' for a process 'warning' event, else the console method that printed it. */
  source: 'process' | 'console.warn' | 'console.error';
  text: string;
}

interface Allowance {
  pattern: RegExp | string;
  seen: string[];
  /** True when granted inside a test: the allowance ends with that test. */
  perTest: boolean;
}

let allowances: Allowance[] = [];
let unexpected: RecordedWarning[] = [];
let inTest = false;

const matches = (pattern: RegExp | string, text: string): boolean =>
  typeof pattern === 'string' ? text.includes(pattern) : pattern.test(text);

/** Allows warnings whose text matches one of the patterns; returns the texts seen, as they come. */
export function allowWarnings(...patterns: (RegExp | string)[]): string[] {
  const seen: string[] = [];
  for (const pattern of patterns) allowances.push({ pattern, seen, perTest: inTest });
  return seen;
}

/** Records one warning; true when an allowance expected it (the caller then keeps it quiet). */
export function recordWarning(warning: RecordedWarning): boolean {
  const allowance = allowances.find((a) => matches(a.pattern, warning.text));
  if (allowance) {
    allowance.seen.push(warning.text);
    return true;
  }
  unexpected.push(warning);
  return false;
}

/** The text of a console call, as console would print it. */
export const consoleText = (args: unknown[]): string => format(...args);

/** Marks the start of a test (allowances granted from now on end with it). */
export function testStarted(): void {
  inTest = true;
}

/** Ends a test's allowances; returns (and forgets) the unexpected warnings recorded so far. */
export function testEnded(): RecordedWarning[] {
  inTest = false;
  allowances = allowances.filter((a) => !a.perTest);
  return takeUnexpected();
}

/** Returns (and forgets) the unexpected warnings recorded so far. */
export function takeUnexpected(): RecordedWarning[] {
  const taken = unexpected;
  unexpected = [];
  return taken;
}

/** The error a test or file fails with when it saw unexpected warnings. */
export function unexpectedWarningsError(warnings: RecordedWarning[], where: string): Error {
  const list = warnings.map((w) => `  ${w.source}: ${w.text.split('\n')[0]}`).join('\n');
  return new Error(
    `${warnings.length} unexpected warning(s) ${where}:\n${list}\n` +
      'Fix the cause; a test that expects one declares it with allowWarnings(pattern) from @iot-tofu/test-kit.',
  );
}
