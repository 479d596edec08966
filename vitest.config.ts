import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Workspace packages resolve to their TypeScript sources, so tests never run stale dist/ output.
    conditions: ['@iot-tofu/source'],
  },
  // Tests run in Vite's SSR environment, which takes its own conditions (without this, one
  // package's tests import the others' built dist/).
  ssr: {
    resolve: { conditions: ['@iot-tofu/source'], externalConditions: ['@iot-tofu/source'] },
  },
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts'],
    // Network-namespace tests create and remove their own namespaces; give them room on a 2-core machine.
    testTimeout: 30_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // needs() (packages/test-kit): in CI an unmet need fails the test; the reporter sums up the skips.
    // fail-on-warnings: a process warning or console.warn/error fails the test unless it allowed it.
    setupFiles: ['./test/needs-setup.ts', './packages/test-kit/src/fail-on-warnings.ts'],
    reporters: ['default', './test/needs-reporter.ts'],
  },
});
