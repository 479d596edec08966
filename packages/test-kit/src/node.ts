import { fileURLToPath } from 'node:url';

/** Project root (the folder with the top-level package.json). */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * argv prefix that runs a TypeScript entry point straight from the workspace sources (no build,
 * never stale dist/): `[process.execPath, ...tsNodeArgs, 'packages/x/src/cli.ts', ...]`.
 */
export const tsNodeArgs: readonly string[] = ['--conditions=@iot-tofu/source', '--import', 'tsx'];
