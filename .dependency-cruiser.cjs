// The layers of src/ and the one direction their imports go (README: Development). Run by
// `npm run layers` and in CI; a violation names both files and the rule.
//   core/  config, errors, metrics, the shared words (types), wire helpers: imports nothing of ours
//   http/  RFC rules, pure functions: core only
//   store/ the cache: http and core
//   log/   moves messages (INVAL, FILLS, membership): core only; it does not apply them
//   proxy/ the request path: http, store and core
//   cluster/ may use all of the above; admin/, cli/ and the composition root sit on top.
const layer = (name, allowed) => ({
  name: `${name}-imports-only-${allowed.join('-') || 'itself'}`,
  severity: 'error',
  from: { path: `^src/${name}/` },
  to: { path: '^src/', pathNot: [`^src/${name}/`, ...allowed.map((a) => `^src/${a}/`)] },
});

module.exports = {
  forbidden: [
    layer('core', []),
    layer('http', ['core']),
    layer('store', ['http', 'core']),
    layer('log', ['core']),
    layer('proxy', ['http', 'store', 'core']),
    layer('cluster', ['http', 'store', 'log', 'proxy', 'core']),
    {
      name: 'no-cycles',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'only-entry-points-import-the-composition-root',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/(main|demo)\\.ts$' },
      to: { path: '^src/(sidecar|main|demo)\\.ts$' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
  },
};
