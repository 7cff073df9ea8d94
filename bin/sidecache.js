#!/usr/bin/env node
// `sidecache` (or with flags only, such as --help) runs the sidecar; `sidecache <command>`
// operates a running one through its admin API (src/cli/main.ts).
const args = process.argv.slice(2);
if (args.length > 0 && !args[0].startsWith('-')) {
  const { runCli } = await import('../dist/cli/main.js');
  const code = await runCli(args, process.env);
  // Exit once stdout is flushed: a script reading a pipe gets the whole table or JSON.
  process.stdout.write('', () => process.exit(code));
} else {
  await import('../dist/main.js');
}
