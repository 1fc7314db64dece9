import { fail } from '../errors';
import { LaunchEnv, readLaunchEnv, storeBindHost } from './env';
import { native, NativeGlooGroup, NativeStoreServer } from './native';
import { Work, WorkOwner } from './work';

/** Which library carries the collectives: Gloo (TCP) for CPU tensors, NCCL for CUDA tensors. */
export type Backend = 'gloo' | 'nccl' | 'auto';

/** Options of {@link init}. */
export interface InitOptions {
  /** `'gloo'`, `'nccl'` (needs the CUDA backend) or `'auto'` (default: NCCL on CUDA, else Gloo). */
  backend?: Backend;
  /** Default bound on every operation, the rendezvous included (default 300000 ms = 5 min). */
  timeoutMs?: number;
}

/** @internal The process group this process belongs to. */
export class Group implements WorkOwner {
  readonly pending = new Map<number, Work<unknown>>();
  constructor(
    readonly native: NativeGlooGroup,
    readonly env: LaunchEnv,
    readonly server: NativeStoreServer | null,
  ) {}
  waitNative(id: number): void {
    this.native.wait(id);
  }
  /** Called on the JS thread when the comm thread finished a work. */
  onDone = (id: number, error: Error | null): void => {
    this.pending.get(id)?._settle(error);
  };
}

let current: Group | null = null;
let starting = false;
let generation = 0; // every init() uses fresh store keys; ranks init and destroy in step
let launcherWatch: NodeJS.Timeout | null = null;

/** Default timeout of init() and of every operation. */
export const DEFAULT_TIMEOUT_MS = 300000;

/** @internal Checks a per-call or init timeout: undefined gives 0 (the group's default). */
export function checkTimeout(op: string, ms: unknown): number {
  if (ms === undefined) return 0;
  if (typeof ms !== 'number' || !Number.isInteger(ms) || ms <= 0) {
    fail('ERR_ARG', `${op}: timeoutMs must be a positive integer (milliseconds), got ${String(ms)}`);
  }
  return ms;
}

/** @internal The current group, or ERR_DIST naming `op`. */
export function group(op: string): Group {
  if (current === null) fail('ERR_DIST', `${op}: the process group is not initialized (await dist.init() first)`);
  return current;
}

// A worker whose launcher died would be left running: it exits when the launcher is gone.
function watchLauncher(): void {
  const pid = Number(process.env.IGNIS_LAUNCHER_PID);
  if (!Number.isInteger(pid) || pid <= 0 || launcherWatch !== null) return;
  launcherWatch = setInterval(() => {
    if (process.ppid !== pid) {
      process.stderr.write(`ignis dist: the launcher (pid ${pid}) is gone; exiting\n`);
      process.exit(1);
    }
  }, 1000);
  launcherWatch.unref();
}

/**
 * Joins the process group described by the environment (torchrun's `RANK`, `WORLD_SIZE`,
 * `MASTER_ADDR`, `MASTER_PORT`, and `IGNIS_STORE_TOKEN`, as the launcher sets them): connects to
 * the store (rank 0 serves it unless the launcher does) and to every other rank. Resolves once
 * all ranks joined; ERR_TIMEOUT naming the missing ranks after `timeoutMs`. Without
 * `WORLD_SIZE`, the process is a world of one. The `'nccl'` backend is not available yet
 * (ERR_DEVICE); `'auto'` picks Gloo.
 */
export async function init(options: InitOptions = {}): Promise<void> {
  if (typeof options !== 'object' || options === null) fail('ERR_ARG', 'dist.init: options must be an object');
  const backend = options.backend ?? 'auto';
  if (backend !== 'gloo' && backend !== 'nccl' && backend !== 'auto') {
    fail('ERR_ARG', `dist.init: backend must be 'gloo', 'nccl' or 'auto', got ${String(backend)}`);
  }
  if (backend === 'nccl') fail('ERR_DEVICE', 'dist.init: the nccl backend needs the CUDA backend, which is not available in this build');
  const timeoutMs = checkTimeout('dist.init', options.timeoutMs) || DEFAULT_TIMEOUT_MS;
  if (current !== null || starting) fail('ERR_DIST', 'dist.init: already initialized (call dist.destroy() first)');
  const env = readLaunchEnv();
  let server: NativeStoreServer | null = null;
  let port = env.masterPort;
  if (env.rank === 0 && !env.storeHosted) {
    server = new native.StoreServer(storeBindHost(env.masterAddr), port, env.token);
    port = server.port();
  }
  starting = true;
  let g: Group | null = null;
  try {
    const ref: { group: Group | null } = { group: null };
    const handle = new native.GlooGroup(
      {
        rank: env.rank,
        size: env.worldSize,
        storeHost: env.masterAddr,
        storePort: port,
        token: env.token,
        prefix: `ignis/pg${generation++}`,
        timeoutMs,
        debug: process.env.IGNIS_DIST_DEBUG === '1',
        iface: process.env.GLOO_SOCKET_IFNAME ?? '',
      },
      (id, error) => ref.group?.onDone(id, error),
    );
    g = ref.group = new Group(handle, env, server);
    await new Work<void>(g, handle.initWork(), undefined);
  } catch (e) {
    g?.native.destroy();
    server?.close();
    throw e;
  } finally {
    starting = false;
  }
  current = g;
  watchLauncher();
}

/** Whether this process joined a process group (and did not destroy it). */
export function isInitialized(): boolean {
  return current !== null;
}

/** This process's rank in the group, in [0, worldSize()). */
export function rank(): number {
  return group('dist.rank').env.rank;
}

/** The number of processes in the group. */
export function worldSize(): number {
  return group('dist.worldSize').env.worldSize;
}

/** This process's rank among the processes of its node (`LOCAL_RANK`). */
export function localRank(): number {
  return group('dist.localRank').env.localRank;
}

/**
 * Leaves the process group: operations still queued or running fail with ERR_DIST, the
 * connections close, and on rank 0 the store stops (when rank 0 serves it, the other ranks should
 * be done with it: a barrier() first). Idempotent; init() may be called again after it.
 */
export function destroy(): void {
  const g = current;
  current = null;
  if (g === null) return;
  g.native.destroy();
  g.server?.close();
}
