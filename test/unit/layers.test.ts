// The layers of src/ import in one direction only (.dependency-cruiser.cjs says which way):
// a violation fails here with both files and the rule named.
import t from 'tap';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));

interface Violation { rule: { name: string }; from: string; to: string }

t.test('imports follow the layers and form no cycle', async (t) => {
  const { stdout } = await promisify(execFile)(process.execPath,
    ['node_modules/dependency-cruiser/bin/dependency-cruiser.mjs', 'src', '--config', '.dependency-cruiser.cjs', '--output-type', 'json'],
    { cwd: root, maxBuffer: 64 * 1024 * 1024 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? '' }));
  const report = JSON.parse(stdout) as { summary: { violations: Violation[]; totalCruised: number } };
  t.ok(report.summary.totalCruised > 50, `cruised ${report.summary.totalCruised} modules`);
  t.same(report.summary.violations.map((v) => `${v.rule.name}: ${v.from} -> ${v.to}`), [], 'no violation');
});
