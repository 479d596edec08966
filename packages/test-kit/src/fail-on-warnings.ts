// Vitest setup file (vitest.config.ts setupFiles): a test fails when it makes Node emit a process
// warning or prints with console.warn / console.error, unless it allowed that warning with
// allowWarnings() (warnings.ts). Warnings outside any test (imports, beforeAll, afterAll) fail the
// file. Allowed warnings are kept quiet; unexpected ones are still printed where they happened.
import { afterAll, afterEach, beforeEach } from 'vitest';
import { consoleText, recordWarning, takeUnexpected, testEnded, testStarted, unexpectedWarningsError } from './warnings.js';

process.on('warning', (warning) => {
  recordWarning({ source: 'process', text: `${warning.name}: ${warning.message}` });
});

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
