import { fail } from '../errors';
import { native, NativeStoreClient, NativeStoreServer } from './native';

/** Options of {@link TCPStore}. */
export interface TCPStoreOptions {
  /** The server's host name or address (default `127.0.0.1`). */
  host?: string;
  /** The server's port; with `isServer`, 0 picks a free one (see {@link TCPStore.port}). */
  port: number;
  /** Also serve the store from this process (on a native thread), as rank 0 does. The server lives as long as this object: keep a reference while other processes need it (a collected or closed store stops serving). */
  isServer?: boolean;
  /** The job's secret: the server refuses clients that present another (default: `IGNIS_STORE_TOKEN`, else empty). */
  token?: string;
  /** Bound on connecting and on every request, and the default of `get`/`wait` (default 300000 ms). */
  timeoutMs?: number;
}

function checkTimeout(op: string, ms: unknown): number {
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms < 0) fail('ERR_ARG', `${op}: timeoutMs must be an integer >= 0, got ${String(ms)}`);
  return ms;
}

function checkKey(op: string, key: unknown): string {
  if (typeof key !== 'string') fail('ERR_ARG', `${op}: key must be a string, got ${typeof key}`);
  return key;
}

function checkKeys(op: string, keys: unknown): string[] {
  if (!Array.isArray(keys)) fail('ERR_ARG', `${op}: keys must be an array of strings`);
  return keys.map((k) => checkKey(op, k));
}

/**
 * The key-value store that ranks rendezvous through, compatible in spirit with
 * `torch.distributed.TCPStore`: `set`/`get`/`add`/`wait`/`check`/`deleteKey` on byte values.
 * Requests block the calling thread (a `get` or `wait` until its key is set or its timeout
 * passes, then ERR_TIMEOUT naming the keys); a lost server gives ERR_DIST. The server refuses,
 * and logs to stderr, any client without the job's token.
 */
export class TCPStore {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  private server: NativeStoreServer | null = null;
  private client: NativeStoreClient | null;

  constructor(options: TCPStoreOptions) {
    if (typeof options !== 'object' || options === null) fail('ERR_ARG', 'TCPStore: options must be an object');
    const { host = '127.0.0.1', port, isServer = false, token = process.env.IGNIS_STORE_TOKEN ?? '' } = options;
    const timeoutMs = checkTimeout('TCPStore', options.timeoutMs ?? 300000);
    if (typeof host !== 'string' || host === '') fail('ERR_ARG', 'TCPStore: host must be a non-empty string');
    if (!Number.isInteger(port) || port < 0 || port > 65535 || (port === 0 && !isServer)) {
      fail('ERR_ARG', `TCPStore: port must be an integer in [1, 65535] (0 only with isServer), got ${String(port)}`);
    }
    if (typeof token !== 'string') fail('ERR_ARG', 'TCPStore: token must be a string');
    let actualPort = port;
    if (isServer) {
      this.server = new native.StoreServer(host, port, token);
      actualPort = this.server.port();
    }
    try {
      this.client = new native.StoreClient(host, actualPort, token, timeoutMs);
    } catch (e) {
      this.server?.close();
      throw e;
    }
    this.host = host;
    this.port = actualPort;
    this.timeoutMs = timeoutMs;
  }

  private use(op: string): NativeStoreClient {
    if (this.client === null) fail('ERR_DIST', `TCPStore.${op}: the store was closed`);
    return this.client;
  }

  /** Sets `key` to `value` (a string is stored as UTF-8). */
  set(key: string, value: string | Uint8Array): void {
    if (typeof value !== 'string' && !(value instanceof Uint8Array)) fail('ERR_ARG', 'TCPStore.set: value must be a string or a Uint8Array');
    this.use('set').set(checkKey('TCPStore.set', key), value);
  }

  /** The value of `key`, waiting until it is set (ERR_TIMEOUT after `timeoutMs`). */
  get(key: string, options: { timeoutMs?: number } = {}): Buffer {
    return this.use('get').get(checkKey('TCPStore.get', key), checkTimeout('TCPStore.get', options.timeoutMs ?? this.timeoutMs));
  }

  /** Adds `delta` to the integer counter at `key` (0 when unset) and returns the new value. */
  add(key: string, delta: number): number {
    if (!Number.isSafeInteger(delta)) fail('ERR_ARG', `TCPStore.add: delta must be an integer, got ${String(delta)}`);
    return this.use('add').add(checkKey('TCPStore.add', key), delta);
  }

  /** Waits until every key is set; ERR_TIMEOUT naming the missing ones after `timeoutMs`. */
  wait(keys: string[], options: { timeoutMs?: number } = {}): void {
    this.use('wait').wait(checkKeys('TCPStore.wait', keys), checkTimeout('TCPStore.wait', options.timeoutMs ?? this.timeoutMs));
  }

  /** Whether every key is set, without waiting. */
  check(keys: string[]): boolean {
    return this.use('check').check(checkKeys('TCPStore.check', keys));
  }

  /** Deletes `key`; returns whether it existed. */
  deleteKey(key: string): boolean {
    return this.use('deleteKey').deleteKey(checkKey('TCPStore.deleteKey', key));
  }

  /** Closes the connection, and stops the server if this store runs it. Idempotent. */
  close(): void {
    this.client?.close();
    this.client = null;
    this.server?.close();
    this.server = null;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
