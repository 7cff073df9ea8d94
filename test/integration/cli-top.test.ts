// `sidecache top` in a real terminal: tmux runs it in a pseudo-terminal beside a running
// 3-sidecar cluster (real nats-server, real sidecars); the test reads the screen while traffic
// flows, then quits with q, and with Ctrl-C.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { BIN } from '../helpers/cli.js';
import { startCluster } from '../../support/cluster.js';
import { startNats } from '../../support/nats-server.js';
import { startOrigin } from '../../support/origin.js';
import { ADMIN_TOKEN, waitFor } from '../../support/sidecar.js';

const TMUX = process.env.TMUX_BIN ?? '/usr/bin/tmux';
// A tmux server of our own: nothing of the user's, nothing of another test.
const SOCKET = `sidecache-top-${randomBytes(4).toString('hex')}`;
const tmux = (...args: string[]): string => execFileSync(TMUX, ['-L', SOCKET, ...args], { encoding: 'utf8' });
t.teardown(() => { try { tmux('kill-server'); } catch { /* already gone */ } });

const nats = await startNats({ nodes: 1 });
t.teardown(() => nats.stop());
const origin = await startOrigin();
t.teardown(() => origin.close());
const { sidecars } = await startCluster(3, { natsUrls: nats.urls, upstream: origin.url });
t.teardown(() => Promise.all(sidecars.map((s) => s.kill())));
const [a, b] = sidecars as [typeof sidecars[0], typeof sidecars[0]];

/** Starts `sidecache top` in a detached tmux session; the shell says how it exited, then waits. */
function startTop(session: string): void {
  const env = [`PATH=${process.env.PATH ?? ''}`, 'TERM=xterm-256color', `SIDECACHE_ADMIN_LISTEN=${a.env.SIDECACHE_ADMIN_LISTEN}`, `SIDECACHE_ADMIN_TOKEN=${ADMIN_TOKEN}`];
  const cmd = `env -i ${env.map((e) => `'${e}'`).join(' ')} '${process.execPath}' '${BIN}' top --interval 500ms; echo "EXIT=$?"; sleep 120`;
  tmux('new-session', '-d', '-s', session, '-x', '160', '-y', '30', cmd);
}

const screen = (session: string): string => tmux('capture-pane', '-p', '-t', session);

/** A member's row on the screen: MEMBER STATE HIT/s MISS/s HIT% ORIGIN/s FWD/s PURGE/s LAG. */
function row(text: string, id: string): string[] | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${id} `));
  return line?.trim().split(/\s+/);
}

t.test('cli top - a live view per member in a terminal: hits per second move with traffic, q quits', async (t) => {
  startTop('q');
  await waitFor(() => /sidecache top - .* \(q quits\)/.test(screen('q')), 10_000, 'the first screen');
  const first = screen('q');
  t.match(first, /MEMBER\s+STATE\s+HIT\/s\s+MISS\/s\s+HIT%\s+ORIGIN\/s\s+FWD\/s\s+PURGE\/s\s+LAG/);
  for (const s of sidecars) t.ok(row(first, s.id), `a row for ${s.id}`);

  // Hits at one member, in bounded rounds, until the screen shows them.
  await (await fetch(`${a.url}/top/hot`)).text();
  let seen: string[] | undefined;
  const deadline = Date.now() + 20_000;
  for (let round = 0; round < 200 && Date.now() < deadline; round++) {
    await Promise.all(Array.from({ length: 20 }, async () => (await fetch(`${a.url}/top/hot`)).text()));
    const r = row(screen('q'), a.id);
    if (r !== undefined && Number(r[2]) > 0) {
      seen = r;
      break;
    }
    await new Promise((res) => setTimeout(res, 100));
  }
  t.ok(seen, `hits per second shown for ${a.id}: ${seen?.join(' ')}`);
  t.equal(seen?.[1], 'active');
  t.match(seen?.[4] ?? '', /^\d+\.\d%$/, 'a hit ratio over the interval');
  const other = row(screen('q'), b.id);
  t.equal(other?.[1], 'active');

  // A purge shows in the PURGE/s column of the member it went to.
  const purge = await fetch(`${a.adminUrl}/purge`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN_TOKEN}` }, body: '{"tags":["x"]}' });
  t.equal(purge.status, 200);
  await purge.arrayBuffer();
  await waitFor(() => Number(row(screen('q'), a.id)?.[7]) > 0, 10_000, 'a purge rate above 0');

  tmux('send-keys', '-t', 'q', 'q');
  await waitFor(() => /EXIT=0/.test(screen('q')), 10_000, 'top to exit 0 on q');
});

t.test('cli top - Ctrl-C quits too, and the terminal is left as it was', async (t) => {
  startTop('c');
  await waitFor(() => /sidecache top - /.test(screen('c')), 10_000, 'the first screen');
  t.equal(tmux('display-message', '-p', '-t', 'c', '#{cursor_flag}').trim(), '0', 'the cursor is hidden while it runs');
  tmux('send-keys', '-t', 'c', 'C-c');
  await waitFor(() => /EXIT=0/.test(screen('c')), 10_000, 'top to exit 0 on Ctrl-C');
  t.equal(tmux('display-message', '-p', '-t', 'c', '#{cursor_flag}').trim(), '1', 'the cursor is shown again');
  // Out of raw mode: the terminal echoes what is typed now (the shell is in `sleep`).
  tmux('send-keys', '-t', 'c', 'typed-after');
  await waitFor(() => screen('c').includes('typed-after'), 5_000, 'typed keys echoed');
});
