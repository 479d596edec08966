// Vitest setup file (vitest.config.ts setupFiles): a test fails when it makes Node emit a process
// warning or prints with console.warn / console.error, unless it allowed that warning with
// allowWarnings() (warnings.ts). Warnings outside any test (imports, beforeAll, afterAll) fail the
// file. Allowed warnings are kept quiet; unexpected ones are still printed where they happened.
import { afterAll, afterEach, beforeEach } from 'vitest';
import { consoleText, recordWarning, takeUnexpected, testEnded, testStarted, unexpectedWarningsError } from './warnings.js';

// Node prints each process warning through its own 'warning' listener: those listeners (kept on
// globalThis, in case a worker runs this file again) now print only the warnings nobody allowed.
type WarningListener = (warning: Error) => void;
const key = Symbol.for('@iot-tofu/test-kit fail-on-warnings');
const slot = globalThis as { [key]?: { printers: WarningListener[]; ours?: WarningListener } };
slot[key] ??= { printers: process.listeners('warning') as WarningListener[] };
const state = slot[key];
for (const listener of [...state.printers, state.ours]) if (listener) process.removeListener('warning', listener);
state.ours = (warning) => {
  const allowed = recordWarning({ source: 'process', text: `${warning.name}: ${warning.message}` });
  if (!allowed) for (const print of state.printers) print(warning);
};
process.on('warning', state.ours);

for (const level of ['warn', 'error'] as const) {
  const print = console[level].bind(console);
  console[level] = (...args: unknown[]) => {
    if (!recordWarning({ source: `console.${level}`, text: consoleText(args) })) print(...args);
  };
}

beforeEach(() => {
  const earlier = takeUnexpected();
  testStarted();
  if (earlier.length > 0) throw unexpectedWarningsError(earlier, 'before this test (in an import or a beforeAll)');
});

afterEach(() => {
  const seen = testEnded();
  if (seen.length > 0) throw unexpectedWarningsError(seen, 'during this test');
});

afterAll(() => {
  const seen = takeUnexpected();
  if (seen.length > 0) throw unexpectedWarningsError(seen, 'in this file outside its tests (an afterAll or a late timer)');
});
