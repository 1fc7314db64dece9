/**
 * The one module that loads the native addon. `IGNIS_ADDON` may name a .node file to load
 * instead of the one node-gyp-build finds (a prebuild, then build/Release).
 * @internal
 */
import * as path from 'path';
import { IgnisError } from './errors';

/** A native tensor handle: a number naming a slot of the addon's handle table. */
export type NativeHandle = number & { readonly __nativeHandle: unique symbol };

export interface NativeMeta {
  shape: number[];
  strides: number[];
  offset: number;
  dtype: number;
  /** -1 for the CPU, N for cuda:N. */
  device: number;
  contiguous: boolean;
  storageBytes: number;
}

/** The tensor functions every family builds on (native/napi/tensor.cc). */
export interface CoreNative {
  setErrorClass(cls: typeof IgnisError): void;
  /** Device codes: -1 (or omitted) for the CPU, N for cuda:N. */
  empty(shape: number[], dtype: number, device?: number): NativeHandle;
  fromBuffer(data: ArrayBufferView, shape: number[], dtype: number, device?: number): NativeHandle;
  /** The elements, row-major, copied to the host. */
  toBuffer(h: NativeHandle): ArrayBuffer;
  meta(h: NativeHandle): NativeMeta;
  isContiguous(h: NativeHandle): boolean;
  dispose(h: NativeHandle): void;
  view(h: NativeHandle, shape: number[]): NativeHandle;
  reshape(h: NativeHandle, shape: number[]): NativeHandle;
  permute(h: NativeHandle, dims: number[]): NativeHandle;
  narrow(h: NativeHandle, dim: number, start: number, length: number): NativeHandle;
  slice(h: NativeHandle, dim: number, start: number, end: number, step: number): NativeHandle;
  expand(h: NativeHandle, shape: number[]): NativeHandle;
  squeeze(h: NativeHandle, dim: number | null): NativeHandle;
  unsqueeze(h: NativeHandle, dim: number): NativeHandle;
  alias(h: NativeHandle): NativeHandle;
  /** Whether h is the only view of its storage and covers all of it, row-major. */
  ownsStorage(h: NativeHandle): boolean;
  contiguous(h: NativeHandle): NativeHandle;
  clone(h: NativeHandle): NativeHandle;
  toDtype(h: NativeHandle, dtype: number): NativeHandle;
  /** An alias on the same device, else a contiguous copy on `device`. */
  toDevice(h: NativeHandle, device: number): NativeHandle;
  copyInto(dst: NativeHandle, src: NativeHandle): void;
  fill(h: NativeHandle, value: number): void;
  memory(): { handles: number; tensors: number; storages: number; cpuBytes: number; cudaBytes: number; cpuPeakBytes: number; cudaPeakBytes: number };
  resetPeakMemory(): void;
  setNumThreads(n: number): void;
  getNumThreads(): number;
}

function load(): unknown {
  const override = process.env.IGNIS_ADDON;
  if (override) return require(path.resolve(override));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
  return nodeGypBuild(path.join(__dirname, '..', '..'));
}

/**
 * The addon. Each op family types the part it uses:
 * `const native = addon as unknown as CoreNative & MyFamilyNative`.
 */
export const addon: unknown = load();
export const core = addon as CoreNative;
core.setErrorClass(IgnisError);

/** Set by the test runner: every tensor's shape and dtype are checked against the native view. */
export const DEBUG = process.env.IGNIS_DEBUG === '1';
