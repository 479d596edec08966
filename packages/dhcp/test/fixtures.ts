import { fileURLToPath } from 'node:url';

/** Reference captures (copied from the shared fixtures so the repository is self-contained). */
export function fixturePath(name: string): string {
  return fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
}
