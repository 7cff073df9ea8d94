// Reads a V8 .cpuprofile (what `node --cpu-prof` writes) and sums it up: self time by category
// (sidecache's own code, undici, other packages, node internals, GC, ...), the functions with the
// most self time, and sidecache's functions by inclusive time. Used by profile.js.
//
// The format: nodes [{ id, callFrame { functionName, url, lineNumber, columnNumber }, children }],
// samples [leaf node id per sample], timeDeltas [µs since the previous sample; the first since
// startTime], startTime and endTime in µs of the monotonic clock (the clock of process.hrtime).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SourceMap } from 'node:module';

const SPECIAL = new Set(['(garbage collector)', '(program)', '(idle)', '(root)']);

/** What a category means, for the summary's legend (and benchmarks/README.md). */
export const CATEGORY_HELP = {
  'sidecache (dist/)': "our own code: the build under dist/ (shown as the src/ line through the build's source maps)",
  undici: 'the upstream HTTP client (node_modules/undici): the miss path',
  'node internals': 'node: URLs: node:http, net, streams, timers, events, the parts of Node written in JavaScript',
  wasm: "WebAssembly: undici's HTTP/1.1 response parser (llhttp), the only wasm sidecache loads",
  'other scripts': 'any other script (none expected)',
  '(garbage collector)': "V8's garbage collector",
  '(program)': "native code outside any JavaScript call: libuv's loop, the HTTP parser, the profiler itself",
  '(idle)': 'the event loop waiting for I/O (not CPU)',
  'native (no url)': "functions without a script: Node's C++ bindings called from JavaScript (writev: the write syscalls themselves), V8 builtins, RegExp code",
};

/** The category of a call frame; `distDir` is the absolute path of the build under test. */
export function categoryOf(cf, distDir) {
  const { url, functionName } = cf;
  if (!url) return SPECIAL.has(functionName) ? functionName : 'native (no url)';
  if (url.startsWith('node:')) return 'node internals';
  if (url.startsWith('wasm://')) return 'wasm';
  const file = url.startsWith('file:') ? fileURLToPath(url) : url;
  const nm = file.lastIndexOf(`${path.sep}node_modules${path.sep}`);
  if (nm >= 0) {
    const parts = file.slice(nm + '/node_modules/'.length).split(path.sep);
    const pkg = parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
    return pkg === 'undici' ? 'undici' : `node_modules: ${pkg}`;
  }
  if (file.startsWith(distDir + path.sep)) return 'sidecache (dist/)';
  return 'other scripts';
}

/** Maps dist/ positions back to src/ through the .js.map files beside them (null without one). */
function sourceMapper(distDir) {
  const maps = new Map();
  return (file, line0, col0) => {
    if (!maps.has(file)) {
      let map = null;
      try {
        map = new SourceMap(JSON.parse(fs.readFileSync(`${file}.map`, 'utf8')));
      } catch {
        // no map: the dist/ position stands
      }
      maps.set(file, map);
    }
    const map = maps.get(file);
    const e = map?.findEntry(line0, col0);
    if (!e?.originalSource) return null;
    const src = path.relative(path.dirname(distDir), path.resolve(path.dirname(file), e.originalSource));
    return `${src}:${e.originalLine + 1}`;
  };
}

/**
 * Sums up `profile` over the samples taken between `fromUs` and `toUs` (the monotonic clock, µs;
 * null: all of them). Returns { totalSamples, totalMs, busyMs, windowed, categories, topSelf,
 * topOwnTotal }, shares as fractions of totalMs.
 */
export function summarize(profile, { distDir, fromUs = null, toUs = null, topSelf = 25, topOwn = 15 }) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const repoRoot = path.dirname(distDir);
  const mapToSrc = sourceMapper(distDir);

  // One entry per function (name and position), shared by every node of it in the call tree.
  const fns = new Map();
  const fnOfNode = new Map();
  for (const n of profile.nodes) {
    const cf = n.callFrame;
    const key = `${cf.functionName}|${cf.url}|${cf.lineNumber}|${cf.columnNumber}`;
    let f = fns.get(key);
    if (!f) {
      const category = categoryOf(cf, distDir);
      const file = cf.url.startsWith('file:') ? fileURLToPath(cf.url) : cf.url;
      // callFrame positions are 0-based; -1 when V8 has none.
      const at = cf.lineNumber >= 0 ? `:${cf.lineNumber + 1}` : '';
      const where = !file ? '' : file.startsWith(repoRoot + path.sep) ? `${path.relative(repoRoot, file)}${at}` : `${file}${at}`;
      const src = category === 'sidecache (dist/)' && cf.lineNumber >= 0 ? mapToSrc(file, cf.lineNumber, Math.max(0, cf.columnNumber)) : null;
      f = { name: cf.functionName || '(anonymous)', category, where: src ? `${src} (${where})` : where, own: category === 'sidecache (dist/)', selfMs: 0, totalMs: 0 };
      fns.set(key, f);
    }
    fnOfNode.set(n.id, f);
  }
  // Our functions on the stack of each node, each once (recursion counts once per sample).
  const ownOnStack = new Map();
  const ownStack = (id) => {
    let s = ownOnStack.get(id);
    if (s) return s;
    const up = parent.has(id) ? ownStack(parent.get(id)) : new Set();
    const f = fnOfNode.get(id);
    s = f.own && !up.has(f) ? new Set([...up, f]) : up;
    ownOnStack.set(id, s);
    return s;
  };

  // Sample i lasts until sample i + 1 (the last one until endTime), as Chrome DevTools counts it.
  const times = [];
  let t = profile.startTime;
  for (const d of profile.timeDeltas) times.push((t += d));
  let totalSamples = 0;
  let totalUs = 0;
  const cats = new Map();
  for (let i = 0; i < profile.samples.length; i++) {
    if ((fromUs !== null && times[i] < fromUs) || (toUs !== null && times[i] > toUs)) continue;
    const dur = Math.max(0, (i + 1 < times.length ? times[i + 1] : profile.endTime) - times[i]) / 1000;
    const id = profile.samples[i];
    const f = fnOfNode.get(id);
    totalSamples++;
    totalUs += dur * 1000;
    f.selfMs += dur;
    cats.set(f.category, (cats.get(f.category) ?? 0) + dur);
    for (const o of ownStack(id)) o.totalMs += dur;
  }
  const totalMs = totalUs / 1000;
  const idleMs = cats.get('(idle)') ?? 0;
  const share = (ms) => (totalMs > 0 ? ms / totalMs : 0);
  const all = [...fns.values()];
  return {
    totalSamples,
    totalMs,
    busyMs: totalMs - idleMs,
    windowed: fromUs !== null || toUs !== null,
    profileMs: (profile.endTime - profile.startTime) / 1000,
    categories: [...cats.entries()].map(([name, ms]) => ({ name, ms, share: share(ms) })).sort((a, b) => b.ms - a.ms),
    topSelf: all.filter((f) => f.selfMs > 0).sort((a, b) => b.selfMs - a.selfMs).slice(0, topSelf).map((f) => ({ ...f, share: share(f.selfMs) })),
    topOwnTotal: all.filter((f) => f.own && f.totalMs > 0).sort((a, b) => b.totalMs - a.totalMs).slice(0, topOwn).map((f) => ({ ...f, share: share(f.totalMs) })),
  };
}
