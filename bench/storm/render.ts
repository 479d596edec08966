/**
 * Re-renders the Markdown and SVG of boot-storm results from their JSON (after a change to the
 * report format, or to merge runs):
 *   node --conditions=@iot-tofu/source --import tsx bench/storm/render.ts OUT_BASE IN.json [IN2.json …]
 */
import { readFileSync } from 'node:fs';
import { writeReport, type BenchReport } from './report.js';

const [outBase, ...inputs] = process.argv.slice(2);
if (!outBase || inputs.length === 0) {
  process.stderr.write('usage: render.ts OUT_BASE IN.json [IN2.json …]\n');
  process.exit(64);
}
const reports = inputs.map((file) => JSON.parse(readFileSync(file, 'utf8')) as BenchReport);
const first = reports[0]!;
const merged: BenchReport = {
  ...first,
  startedAt: reports.map((r) => r.startedAt).sort()[0]!,
  finishedAt: reports
    .map((r) => r.finishedAt)
    .sort()
    .at(-1)!,
  servers: [...new Map(reports.flatMap((r) => r.servers).map((s) => [s.name, s])).values()],
  singlePiMs: Object.assign({}, ...reports.map((r) => r.singlePiMs)),
  runs: reports.flatMap((r) => r.runs),
};
process.stdout.write(`${writeReport(merged, outBase).join('\n')}\n`);
