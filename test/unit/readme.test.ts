// The README's configuration table is the same list as `sidecache --help`.
import { readFileSync } from 'node:fs';
import t from 'tap';
import { VARIABLES } from '../../src/core/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

t.test('README - lists every SIDECACHE_ variable with its default', async (t) => {
  for (const v of VARIABLES) {
    const row = readme.split('\n').find((l) => l.startsWith(`| \`${v.name}\``));
    t.ok(row, `${v.name} has a row`);
    if (row !== undefined && v.def !== '') t.ok(row.includes(v.def), `${v.name} row shows the default ${v.def}`);
  }
  const documented = [...readme.matchAll(/^\| `(SIDECACHE_[A-Z_]+)`/gm)].map((m) => m[1]);
  t.same(documented.filter((n) => !VARIABLES.some((v) => v.name === n)), [], 'no row for a variable that does not exist');
});

t.test('README - its first lines are the two commands for a fresh machine', async (t) => {
  const head = readme.split('\n').slice(0, 6).join('\n');
  t.match(head, /npm ci && npm run demo/);
  t.match(head, /npm ci && npm test/);
});
