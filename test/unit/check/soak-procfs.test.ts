import t from 'tap';
import { realpathSync } from 'node:fs';
import { readResidentMaps, readRss } from '../../../check/soak-procfs.js';

t.test('resident memory by kind of mapping adds up to the RSS of the process', async (t) => {
  const maps = readResidentMaps(process.pid, realpathSync(process.execPath));
  const rss = readRss(process.pid);
  if (maps === undefined || rss === undefined) throw new Error('no /proc on this machine');
  // Node's code runs from its executable, V8's heap lives in anonymous memory.
  t.ok(maps.executable > 1024 * 1024, `executable ${maps.executable}`);
  t.ok(maps.anon > 1024 * 1024, `anonymous ${maps.anon}`);
  const sum = maps.mallocHeap + maps.anon + maps.executable + maps.files;
  // Read a moment apart: within 10 % of each other.
  t.ok(Math.abs(sum - rss) < rss / 10, `sum ${sum} vs VmRSS ${rss}`);
  t.equal(readResidentMaps(2 ** 22 + 7, '/none'), undefined, 'a process that is not there: undefined');
});
