// NATS in operator (JWT) mode for tests, without nsc: an operator, a system account and an
// application account with JetStream, made with nats-io's jwt library; users get .creds
// files. The server trusts the operator and knows the accounts from `resolver_preload`.
import {
  createAccount,
  createOperator,
  createUser,
  encodeAccount,
  encodeOperator,
  encodeUser,
  fmtCreds,
  type KeyPair,
} from '@nats-io/jwt';

export interface NatsOperator {
  /** Server configuration for startNats({ config }). */
  readonly config: string;
  /** A .creds file's bytes for a new user of the application account. */
  userCreds(name: string): Promise<Uint8Array>;
  /** A .creds file for a user signed by an account the server does not know. */
  strangerCreds(name: string): Promise<Uint8Array>;
}

/** No limit (the library's defaults are 0: nothing allowed). */
const UNLIMITED = {
  conn: -1, leaf: -1, subs: -1, data: -1, payload: -1, imports: -1, exports: -1, wildcards: true,
  mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1,
};

async function creds(account: KeyPair, name: string): Promise<Uint8Array> {
  const user = createUser();
  const jwt = await encodeUser(name, user, account, { subs: -1, data: -1, payload: -1 });
  return fmtCreds(jwt, user);
}

export async function makeNatsOperator(): Promise<NatsOperator> {
  const operator = createOperator();
  const system = createAccount();
  const app = createAccount();
  const stranger = createAccount();
  const operatorJwt = await encodeOperator('sidecache-test', operator, { system_account: system.getPublicKey() });
  const systemJwt = await encodeAccount('SYS', system, {}, { signer: operator });
  const appJwt = await encodeAccount('app', app, { limits: UNLIMITED }, { signer: operator });
  const config = [
    `operator: ${operatorJwt}`,
    `system_account: ${system.getPublicKey()}`,
    'resolver: MEMORY',
    'resolver_preload: {',
    `  ${system.getPublicKey()}: ${systemJwt}`,
    `  ${app.getPublicKey()}: ${appJwt}`,
    '}',
    '',
  ].join('\n');
  return {
    config,
    userCreds: (name) => creds(app, name),
    strangerCreds: (name) => creds(stranger, name),
  };
}
