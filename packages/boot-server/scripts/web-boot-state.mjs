// Writes web/boot-state.js, the fleet page's copy of src/boot-state.ts: types stripped by
// TypeScript, then formatted by biome like the rest of the repository. The TypeScript file is the
// one to edit. `--check` writes nothing and exits 1 when the copy is stale (test/web.test.ts runs it).
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const packageDir = fileURLToPath(new URL('../', import.meta.url));
const target = new URL('../web/boot-state.js', import.meta.url);
const biome = fileURLToPath(new URL('../../../node_modules/.bin/biome', import.meta.url));

const source = readFileSync(new URL('../src/boot-state.ts', import.meta.url), 'utf8');
const { outputText } = ts.transpileModule(source, {
  // Without comments: the page is weighed in bytes (README), and the TypeScript file explains itself.
  compilerOptions: { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.ESNext, removeComments: true },
});
const header = '// Generated from src/boot-state.ts by scripts/web-boot-state.mjs: edit that file, then run the script.\n';
const generated = execFileSync(biome, ['format', '--stdin-file-path=web/boot-state.js'], {
  cwd: packageDir,
  input: header + outputText,
  encoding: 'utf8',
});

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {}
  if (current !== generated) {
    console.error('web/boot-state.js is stale: run node packages/boot-server/scripts/web-boot-state.mjs');
    process.exit(1);
  }
} else {
  writeFileSync(target, generated);
}
