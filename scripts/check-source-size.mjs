#!/usr/bin/env node
// Part of `npm run lint`: a source file over 400 lines must say why at its top (a comment with
// "Over 400 lines" and the reason), so a long file is a decision, not an accident. Tests are
// exempt: a table of cases reads better in one file. Lines over 140 characters are the
// formatter's business (biome.json, lineWidth 140) except where it cannot wrap (long strings).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const MAX_LINES = 400;
const HEAD_LINES = 20;
const root = join(import.meta.dirname, '..');
const sourceRoots = [
  ...readdirSync(join(root, 'packages')).map((name) => join(root, 'packages', name, 'src')),
  join(root, 'bench'),
  join(root, 'scripts'),
];

function* sourceFiles(dir) {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'dist' && entry.name !== 'results') yield* sourceFiles(path);
    } else if (/\.(ts|mjs|js)$/.test(entry.name) && statSync(path).isFile()) yield path;
  }
}

const unexplained = [];
for (const dir of sourceRoots) {
  for (const file of sourceFiles(dir)) {
    const lines = readFileSync(file, 'utf8').split('\n');
    const count = lines.at(-1) === '' ? lines.length - 1 : lines.length;
    if (count <= MAX_LINES) continue;
    if (/over 400 lines/i.test(lines.slice(0, HEAD_LINES).join('\n'))) continue;
    unexplained.push(`${relative(root, file)}: ${count} lines and no "Over 400 lines: why" at its top`);
  }
}

if (unexplained.length > 0) {
  console.error(`source files over ${MAX_LINES} lines without a stated reason:\n  ${unexplained.join('\n  ')}`);
  process.exit(1);
}
console.log(`source sizes: every file over ${MAX_LINES} lines states why`);
