import { cudaStatus, currentCudaDevice } from '../device';
import { fail } from '../errors';
import { LaunchEnv, readLaunchEnv, storeBindHost } from './env';
import { GroupOptions, native, NativeGroup, NativeStoreServer } from './native';
import { Work, WorkOwner } from './work';

/** Which library carries the collectives: Gloo (TCP) for CPU tensors, NCCL for CUDA tensors. */
export type Backend = 'gloo' | 'nccl' | 'auto';

/** Options of {@link init}. */
export interface InitOptions {
  /**
   * `'gloo'` (CPU tensors only), `'nccl'` (CUDA tensors through NCCL, made at init on the device
   * of `LOCAL_RANK`; CPU tensors through Gloo) or `'auto'` (default: Gloo, and NCCL for CUDA
   * tensors, made at the first collective on a CUDA tensor).
   */
  backend?: Backend;
  /** Default bound on every operation, the rendezvous included (default 300000 ms = 5 min). */
  timeoutMs?: number;
}

/** @internal One native process group (Gloo or NCCL) and the works issued on it. */
export class Channel implements WorkOwner {
  readonly pending = new Map<number, Work<unknown>>();
  readonly native: NativeGroup;
  constructor(make: new (options: GroupOptions, onDone: (id: number, error: Error | null) => void) => NativeGroup, options: GroupOptions) {
    this.native = new make(options, this.onDone);
  }
  waitNative(id: number): boolean {
    return this.native.wait(id);
  }
  /** Called on the JS thread when the native group finished a work. */
  private onDone = (id: number, error: Error | null): void => {
    this.pending.get(id)?._settle(error);
  };
  /** Resolves once the native group's rendezvous is done. */
  connected(): Work<void> {
    return new Work<void>(this, this.native.initWork(), undefined);
  }
}

/** @internal The process group this process belongs to: Gloo, and NCCL for CUDA tensors. */
export class Group {
  /** The NCCL communicator: made by init() ('nccl') or at the first CUDA collective ('auto'). */
  nccl: Channel | null = null;
  constructor(
    readonly gloo: Channel,
    readonly env: LaunchEnv,
    readonly server: NativeStoreServer | null,
    readonly backend: Backend,
    /** The Gloo group's options, from which NCCL's are made. */
    readonly options: GroupOptions,
  ) {}

  /** The channel that carries tensors on `device`: Gloo for 'cpu', NCCL for CUDA devices. */
  channel(op: string, device: string): Channel {
    if (device === 'cpu') return this.gloo;
    if (this.backend === 'gloo') {
      fail('ERR_DEVICE', `${op}: the gloo backend handles CPU tensors, got a tensor on ${device} (init with backend 'nccl' or 'auto' for CUDA tensors)`);
    }
    const index = device === 'cuda' ? currentCudaDevice() : Number(device.slice(5));
    if (this.nccl === null) {
      checkNccl(op);
      this.nccl = ncclChannel(this.options, index);
    }
    return this.nccl;
  }

  destroy(): void {
    this.nccl?.native.destroy();
    this.gloo.native.destroy();
    this.server?.close();
  }
}

/** ERR_DEVICE saying why NCCL cannot be used here (no CUDA build, no driver or device, no libnccl). */
function checkNccl(op: string): void {
  try {
    native.ncclVersion();
  } catch (e) {
    fail('ERR_DEVICE', `${op}: NCCL cannot be used for CUDA tensors: ${(e as Error).message}`);
  }
}

function ncclChannel(options: GroupOptions, device: number): Channel {
  return new Channel(native.NcclGroup, { ...options, prefix: `${options.prefix}/nccl`, peersPrefix: options.prefix, device });
}

/** The CUDA device of this rank: `LOCAL_RANK`'s, or the only one a process is given. */
function localDevice(env: LaunchEnv): number {
  const count = cudaStatus().deviceCount;
  if (env.localRank < count) return env.localRank;
  if (count === 1) return 0;
  fail('ERR_DEVICE', `dist.init: LOCAL_RANK is ${env.localRank} but this machine has ${count} CUDA devices`);
}

/**
 * The version of NCCL that CUDA tensors would go through ("2.27.3"); ERR_DEVICE saying why when
 * NCCL cannot be used (no CUDA backend in this build, no driver or device, libnccl not found:
 * with every place looked).
 */
export function ncclVersion(): string {
  return native.ncclVersion();
}

/** The backend given to init(): which library carries CPU and CUDA tensors. */
export function backend(): Backend {
  return group('dist.backend').backend;
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
 * `WORLD_SIZE`, the process is a world of one. With `'nccl'`, the NCCL communicator is made too
 * (ERR_DEVICE saying why when CUDA or NCCL cannot be used here).
 */
export async function init(options: InitOptions = {}): Promise<void> {
  if (typeof options !== 'object' || options === null) fail('ERR_ARG', 'dist.init: options must be an object');
  const backend = options.backend ?? 'auto';
  if (backend !== 'gloo' && backend !== 'nccl' && backend !== 'auto') {
    fail('ERR_ARG', `dist.init: backend must be 'gloo', 'nccl' or 'auto', got ${String(backend)}`);
  }
  if (backend === 'nccl') checkNccl('dist.init');
  const timeoutMs = checkTimeout('dist.init', options.timeoutMs) || DEFAULT_TIMEOUT_MS;
  if (current !== null || starting) fail('ERR_DIST', 'dist.init: already initialized (call dist.destroy() first)');
  const env = readLaunchEnv();
  const device = backend === 'nccl' ? localDevice(env) : 0;
  let server: NativeStoreServer | null = null;
  let port = env.masterPort;
  if (env.rank === 0 && !env.storeHosted) {
    server = new native.StoreServer(storeBindHost(env.masterAddr), port, env.token);
    port = server.port();
  }
  starting = true;
  let g: Group | null = null;
  try {
    const options: GroupOptions = {
      rank: env.rank,
      size: env.worldSize,
      storeHost: env.masterAddr,
      storePort: port,
      token: env.token,
      prefix: `ignis/pg${generation++}`,
      timeoutMs,
      debug: process.env.IGNIS_DIST_DEBUG === '1',
      iface: process.env.GLOO_SOCKET_IFNAME ?? '',
      device: 0,
      peersPrefix: '',
    };
    g = new Group(new Channel(native.GlooGroup, options), env, server, backend, options);
    await g.gloo.connected();
    if (backend === 'nccl') {
      g.nccl = ncclChannel(options, device);
      await g.nccl.connected();
    }
  } catch (e) {
    if (g) g.destroy();
    else server?.close();
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

/** The number of processes of the group on this node (`LOCAL_WORLD_SIZE`). */
export function localWorldSize(): number {
  return group('dist.localWorldSize').env.localWorldSize;
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
  g.destroy();
}
