// Vitest reporter: one short block at the end of a run saying how many tests needs() skipped for
// what (or, in CI, how many failed for an unmet need), and how to meet those needs. A test that
// lacks several things counts once in the total and once on each line.
import type { Reporter, TestModule } from 'vitest/node';
import { installCommand, type NeedsMeta } from '@iot-tofu/test-kit';

function block(title: string, tests: string[][]): string[] {
  const byReason = new Map<string, number>();
  const programs = new Map<string, number>();
  let withPrograms = 0;
  for (const reasons of tests) {
    for (const reason of reasons) {
      const program = /^program (\S+)$/.exec(reason)?.[1];
      if (program) programs.set(program, (programs.get(program) ?? 0) + 1);
      else byReason.set(reason, (byReason.get(reason) ?? 0) + 1);
    }
    if (reasons.some((r) => r.startsWith('program '))) withPrograms += 1;
  }
  const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  const rows = sorted(byReason).map(([why, n]) => `  ${String(n).padStart(4)}  ${why}`);
  if (withPrograms > 0)
    rows.push(
      `  ${String(withPrograms).padStart(4)}  programs: ${sorted(programs)
        .map(([p, n]) => `${p} ${n}`)
        .join(', ')}`,
    );
  const lines = [title, ...rows.sort((a, b) => Number.parseInt(b, 10) - Number.parseInt(a, 10))];
  const needRoot = [...byReason.keys()].some((r) => r === 'root' || r === 'netns (needs root)' || r.startsWith('exports.d'));
  if (needRoot) lines.push('  root, network namespaces, /etc/exports.d: run as root (sudo npm test)');
  if (withPrograms > 0 || /^(file|xattr|netns \(needs ip)/m.test([...byReason.keys()].join('\n')))
    lines.push(`  programs and firmware: ${installCommand}`);
  return lines;
}

export default class NeedsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped: string[][] = [];
    const unmetInCI: string[][] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const meta = test.meta() as NeedsMeta;
        if (meta.needsUnmet) unmetInCI.push(meta.needsUnmet);
        if (meta.needsSkipped && test.result().state === 'skipped') skipped.push(meta.needsSkipped);
      }
    }
    const lines: string[] = [];
    if (skipped.length > 0) lines.push(...block(`Test needs: ${skipped.length} tests skipped, for lack of:`, skipped));
    if (unmetInCI.length > 0)
      lines.push(...block(`Test needs: ${unmetInCI.length} tests FAILED in CI for lack of (CI never skips):`, unmetInCI));
    if (lines.length > 0) console.log(`\n${lines.join('\n')}\n`);
  }
}
