/** The native entry points of the distributed part (native/napi/dist.cc). @internal */
import { addon, NativeHandle } from '../native';

export interface NativeStoreServer {
  port(): number;
  close(): void;
}

export interface NativeStoreClient {
  set(key: string, value: string | Uint8Array): void;
  get(key: string, timeoutMs: number): Buffer;
  add(key: string, delta: number): number;
  wait(keys: string[], timeoutMs: number): void;
  check(keys: string[]): boolean;
  deleteKey(key: string): boolean;
  close(): void;
}

export interface GroupOptions {
  rank: number;
  size: number;
  storeHost: string;
  storePort: number;
  token: string;
  prefix: string;
  timeoutMs: number;
  debug: boolean;
  iface: string;
  /** NCCL: the CUDA device of this rank. */
  device: number;
  /** NCCL: the Gloo group's prefix, whose keys tell which ranks are gone. */
  peersPrefix: string;
}

/**
 * Each method queues an operation (Gloo: on the group's comm thread; NCCL: on its comm stream)
 * and returns its work id.
 */
export interface NativeGroup {
  initWork(): number;
  allReduce(t: NativeHandle, op: number, timeoutMs: number): number;
  allGather(input: NativeHandle, outputs: NativeHandle[], timeoutMs: number): number;
  reduceScatter(inputs: NativeHandle[], output: NativeHandle, op: number, timeoutMs: number): number;
  broadcast(t: NativeHandle, src: number, timeoutMs: number): number;
  barrier(timeoutMs: number): number;
  send(t: NativeHandle, dst: number, tag: number, timeoutMs: number): number;
  recv(t: NativeHandle, src: number, tag: number, timeoutMs: number): number;
  /**
   * Blocks until the work is done and throws its error (true); returns at once for a reported
   * work (true). NCCL: makes the device's current stream wait for the work instead (false).
   */
  wait(id: number): boolean;
  destroy(): void;
}

export interface DistNative {
  StoreServer: new (host: string, port: number, token: string) => NativeStoreServer;
  StoreClient: new (host: string, port: number, token: string, timeoutMs: number) => NativeStoreClient;
  GlooGroup: new (options: GroupOptions, onDone: (id: number, error: Error | null) => void) => NativeGroup;
  /** ERR_DEVICE saying why in a build without CUDA, or where CUDA or NCCL cannot be used. */
  NcclGroup: new (options: GroupOptions, onDone: (id: number, error: Error | null) => void) => NativeGroup;
  /** NCCL's version; ERR_DEVICE saying why NCCL cannot be used. */
  ncclVersion(): string;
}

export const native = addon as DistNative;
