// The agreed view in its KV bucket: read the newest valid one, change it by compare-and-set
// (epoch+1), and adopt every newer view the watch brings.

import type { KV, KvEntry, KvWatchEntry } from '@nats-io/kv';
import { logError } from '../../../core/errors.js';
import type { Member, View } from '../../../core/types.js';
import { decodeView, encodeView, type StoredView } from '../../codec.js';
import { VIEW_HISTORY } from '../provision.js';
import { describeError, isCasConflict, isRetryable, sleep, type Runtime } from '../runtime.js';

const CAS_BUDGET_MS = 10_000;
const EMPTY_VIEW: View = Object.freeze({ epoch: 0, members: Object.freeze([]) as readonly Member[] });

export interface ViewHooks {
  /** A newer view is about to be adopted; `ids` are its members. */
  adopting(ids: ReadonlySet<string>): void;
  /** The view is now `view`. */
  adopted(view: View, ids: ReadonlySet<string>): void;
}

export class ViewStore {
  readonly #rt: Runtime;
  readonly #kv: KV;
  readonly #hooks: ViewHooks;
  #view: View = EMPTY_VIEW;
  /** Member id -> local time it first appeared in a view we adopted. */
  readonly #inViewSince = new Map<string, number>();

  constructor(rt: Runtime, kv: KV, hooks: ViewHooks) {
    this.#rt = rt;
    this.#kv = kv;
    this.#hooks = hooks;
  }

  get view(): View {
    return this.#view;
  }

  /** Local time member `id` first appeared in a view we adopted. */
  inViewSince(id: string): number | undefined {
    return this.#inViewSince.get(id);
  }

  /** Adopt the stored view and follow it. */
  async start(): Promise<void> {
    this.adopt((await this.read()).view);
    this.#rt.watch(this.#kv, this.#rt.names.viewKey, (e) => this.#onEntry(e), 'view');
  }

  #onEntry(e: KvWatchEntry): void {
    if (e.operation !== 'PUT') return;
    let stored: StoredView;
    try {
      stored = decodeView(e.value);
    } catch (err) {
      this.#rt.log.error({ err, revision: e.revision }, 'ignoring an undecodable view');
      return;
    }
    // A write that lost a compare-and-set race the server let through (see read).
    if (e.revision !== stored.prevRevision + 1) return;
    this.adopt(stored.view);
  }

  adopt(view: View): void {
    if (view.epoch <= this.#view.epoch) return;
    const now = Date.now();
    const ids = new Set<string>();
    for (const m of view.members) {
      ids.add(m.id);
      if (!this.#inViewSince.has(m.id)) this.#inViewSince.set(m.id, now);
    }
    for (const id of [...this.#inViewSince.keys()]) if (!ids.has(id)) this.#inViewSince.delete(id);
    this.#hooks.adopting(ids);
    this.#view = view;
    this.#rt.log.info({ epoch: view.epoch, members: view.members.map((m) => `${m.id}:${m.state}`) }, 'new view');
    this.#hooks.adopted(view, ids);
  }

  /** The newest valid view and the bucket's last revision.
   *
   *  nats-server before 2.9.21 checks Nats-Expected-Last-Subject-Sequence before the Raft
   *  proposal, not in it (nats-server#4320): on an R3 bucket two concurrent kv.update calls
   *  with the same revision can BOTH succeed. So a view write
   *  counts only if it was stored at prevRevision+1, i.e. directly after the revision it was
   *  computed from: the bucket holds only the view key, so any other write in between
   *  takes that seq. Losers of such a race are stored but invalid; everyone skips them, and
   *  the bucket keeps VIEW_HISTORY revisions so that the valid one before them is still
   *  there to read. */
  async read(): Promise<{ view: View; revision: number; keyExists: boolean }> {
    const rt = this.#rt;
    const kv = this.#kv;
    const key = rt.names.viewKey;
    const latest = await kv.get(key);
    if (latest === null) {
      // Never written, or purged: the next write must follow the stream's last seq.
      const info = await rt.jsm!.streams.info(`KV_${rt.names.viewBucket}`);
      const revision = info.state.last_seq;
      return { view: { epoch: revision, members: [] }, revision, keyExists: false };
    }
    const revision = latest.revision;
    let e: KvEntry | null = latest;
    for (let i = 0; e !== null && i < VIEW_HISTORY; i++) {
      // Deleted by hand: start over empty, with an epoch above every earlier one (a valid
      // view's epoch never exceeds its revision).
      if (e.operation !== 'PUT') return { view: { epoch: e.revision, members: [] }, revision, keyExists: true };
      try {
        const stored = decodeView(e.value);
        if (e.revision === stored.prevRevision + 1) return { view: stored.view, revision, keyExists: true };
      } catch (err) {
        rt.log.error({ err, revision: e.revision }, 'skipping an undecodable view');
      }
      e = e.revision > 1 ? await kv.get(key, { revision: e.revision - 1 }) : null;
    }
    rt.log.error({ revision }, 'no valid view in the retained history; starting a new one');
    return { view: { epoch: revision, members: [] }, revision, keyExists: true };
  }

  /** Compare-and-set the view: read it, let `change` compute the new member list (null: no
   *  change needed), write it with epoch+1 only if nobody wrote in between; on a conflict
   *  read again. `change` must be idempotent: a write that timed out may have landed. */
  async change(what: string, change: (cur: View) => Member[] | null): Promise<View> {
    const rt = this.#rt;
    const kv = this.#kv;
    const key = rt.names.viewKey;
    const deadline = Date.now() + CAS_BUDGET_MS;
    for (let attempt = 0; ; attempt++) {
      let cur: View;
      let revision: number;
      let keyExists: boolean;
      try {
        ({ view: cur, revision, keyExists } = await this.read());
      } catch (err) {
        if (!isRetryable(err) || Date.now() >= deadline) {
          throw logError(`cannot ${what}: reading the view failed: ${describeError(err)}`, err);
        }
        await sleep(50 + Math.random() * 100);
        continue;
      }
      const members = change(cur);
      if (members === null) {
        this.adopt(cur);
        return cur;
      }
      const next: View = { epoch: Math.max(cur.epoch, this.#view.epoch) + 1, members };
      let stale = false;
      try {
        const data = encodeView({ view: next, prevRevision: revision });
        const seq = keyExists ? await kv.update(key, data, revision) : await kv.create(key, data);
        if (seq === revision + 1) {
          this.adopt(next);
          return next;
        }
        // Stored, but after someone else's write: invalid, everyone skips it (read).
        stale = true;
        rt.log.debug({ what, revision, seq }, 'view write lost a concurrent compare-and-set; retrying');
      } catch (err) {
        if ((!isCasConflict(err) && !isRetryable(err)) || Date.now() >= deadline) {
          throw logError(`cannot ${what}: writing the view failed: ${describeError(err)}`, err);
        }
      }
      if (Date.now() >= deadline) {
        throw logError(`cannot ${what}: the view kept changing for ${CAS_BUDGET_MS} ms${stale ? ' (lost races)' : ''}`);
      }
      // Someone else changed the view (or the write timed out): read and decide again.
      await sleep(Math.min(200, 10 * (attempt + 1)) * Math.random());
    }
  }
}
