// Vitest reporter: one short block at the end of a run saying how many tests needs() skipped for
// what (or, in CI, how many failed for an unmet need), and how to meet those needs.
import type { Reporter, TestModule } from 'vitest/node';
import { installCommand, type NeedsMeta } from './needs.js';

export default class NeedsReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const skipped = new Map<string, number>();
    const unmetInCI = new Map<string, number>();
    let total = 0;
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const meta = test.meta() as NeedsMeta;
        if (meta.needsUnmet) unmetInCI.set(meta.needsUnmet, (unmetInCI.get(meta.needsUnmet) ?? 0) + 1);
        if (meta.needsSkipped && test.result().state === 'skipped') {
          skipped.set(meta.needsSkipped, (skipped.get(meta.needsSkipped) ?? 0) + 1);
          total += 1;
        }
      }
    }
    const lines: string[] = [];
    const rows = (counts: Map<string, number>) =>
      [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).map(([why, n]) => `  ${String(n).padStart(4)}  ${why}`);
    if (total > 0) {
      lines.push(`Test needs: ${total} tests skipped, this machine lacks:`, ...rows(skipped));
    }
    if (unmetInCI.size > 0) {
      const n = [...unmetInCI.values()].reduce((a, b) => a + b, 0);
      lines.push(`Test needs: ${n} tests FAILED in CI for unmet needs (CI never skips):`, ...rows(unmetInCI));
    }
    if (lines.length === 0) return;
    const all = [...skipped.keys(), ...unmetInCI.keys()].join(', ');
    if (/\b(root|netns|exports\.d)\b/.test(all)) lines.push('  root and network namespaces: run as root (sudo npm test)');
    if (/\b(program|file|xattr|netns \(needs ip)/.test(all)) lines.push(`  programs and firmware: ${installCommand}`);
    console.log(`\n${lines.join('\n')}\n`);
  }
}
