// What the checker saw, on one clock: every client operation with its start and end, every
// response the origin gave, every version change, every fault and the time each sidecar was
// paused or down. The analysis reads only this. Times are milliseconds of performance.now()
// since the run began (monotonic; the origin runs in the checker's process, so its records
// share the clock with the clients').

/** A GET or HEAD through a sidecar's proxy port. */
export interface ReadOp {
  readonly type: 'read';
  readonly id: number;
  readonly client: string;
  /** Node id of the sidecar asked. */
  readonly member: string;
  readonly method: 'GET' | 'HEAD';
  readonly key: string;
  readonly lang: string;
  /** The validator sent, for a conditional read. */
  readonly ifNoneMatch?: string;
  readonly ifModifiedSince?: string;
  readonly start: number;
  end?: number;
  status?: number;
  /** Version the answer claims: the body's (GET 200), X-Version (HEAD) or the validator (304). */
  version?: number;
  /** The origin response the body came from (GET or HEAD 200). */
  fetchId?: number;
  /** Key and language the body names (a body for another key or variant is an anomaly). */
  bodyKey?: string;
  bodyLang?: string;
  cacheStatus?: string;
  /** The answer came from the origin (X-Origin), not from a sidecar's own error page. */
  fromOrigin?: boolean;
  error?: string;
}

/** A POST or PUT through a sidecar's proxy port: the origin bumps the key's version. */
export interface WriteOp {
  readonly type: 'write';
  readonly id: number;
  readonly client: string;
  readonly member: string;
  readonly method: 'POST' | 'PUT';
  readonly key: string;
  readonly start: number;
  end?: number;
  status?: number;
  version?: number;
  fromOrigin?: boolean;
  error?: string;
}

export type PurgeBody =
  | { url: string[]; soft?: boolean }
  | { prefix: string; soft?: boolean }
  | { tags: string[]; soft?: boolean }
  | { all: true; soft?: boolean };

/** POST /purge at one sidecar's admin port. */
export interface PurgeOp {
  readonly type: 'purge';
  readonly id: number;
  readonly member: string;
  readonly body: PurgeBody;
  readonly start: number;
  end?: number;
  status?: number;
  seq?: number;
  acknowledged?: string[];
  missing?: string[];
  error?: string;
}

export type ClientOp = ReadOp | WriteOp | PurgeOp;

/** One response of the origin, as it sent it. */
export interface OriginResponse {
  readonly id: number;
  readonly key: string;
  readonly method: string;
  /** When the origin received the request: the fetch behind it began no later. */
  readonly receivedAt: number;
  sentAt?: number;
  status?: number;
  /** The version the response carries (its body, or the one a 304 confirms). */
  version?: number;
  readonly conditional: boolean;
  readonly via: string;
}

/** A new version of a key at the origin: a write through a sidecar, or an operator's edit. */
export interface Bump {
  readonly key: string;
  readonly at: number;
  readonly version: number;
  readonly by: 'write' | 'operator';
}

export interface FaultEvent {
  readonly type: 'fault';
  readonly id: number;
  readonly kind: string;
  readonly target: string;
  readonly start: number;
  end?: number;
  note: string;
}

/** A time a sidecar could not answer its own clients: SIGSTOPped (`paused`), killed and not
 *  yet ready again (`down`), or from a SIGTERM until it is ready again (`stopped`; for good
 *  after a scale-in). Only the member's own clients are excused: its peers route around it. */
export interface Outage {
  readonly member: string;
  readonly kind: 'paused' | 'down' | 'stopped';
  readonly start: number;
  end?: number;
}

export class History {
  readonly #t0 = performance.now();
  /** Wall-clock time of history time 0: the sidecars' log lines carry wall-clock times. */
  readonly wallT0 = Date.now();
  #nextId = 1;
  readonly ops: ClientOp[] = [];
  readonly origin: OriginResponse[] = [];
  readonly bumps: Bump[] = [];
  readonly faults: FaultEvent[] = [];
  readonly outages: Outage[] = [];
  /** When the clients started (after the cluster was up): "found after N s" counts from here. */
  trafficStart = 0;

  now(): number {
    return performance.now() - this.#t0;
  }

  id(): number {
    return this.#nextId++;
  }

  fault(kind: string, target: string, note = ''): FaultEvent {
    const f: FaultEvent = { type: 'fault', id: this.id(), kind, target, start: this.now(), note };
    this.faults.push(f);
    return f;
  }

  outage(member: string, kind: Outage['kind']): Outage {
    const o: Outage = { member, kind, start: this.now() };
    this.outages.push(o);
    return o;
  }

  /** Close whatever is still open at the end of a run. */
  closeAll(): void {
    const t = this.now();
    for (const f of this.faults) f.end ??= t;
    for (const o of this.outages) o.end ??= t;
  }

  toJSON(): object {
    return { wallT0: this.wallT0, trafficStart: this.trafficStart, ops: this.ops, origin: this.origin, bumps: this.bumps, faults: this.faults, outages: this.outages };
  }
}
