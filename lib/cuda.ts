/**
 * `ig.cuda`: CUDA devices, streams, events, the caching allocator and the matmul precision.
 * Without a CUDA backend in the build, a driver or a device, {@link isAvailable} is false,
 * {@link unavailableReason} says why, and every other call (and any use of a `'cuda'` device)
 * raises ERR_DEVICE with that reason.
 */
import { checkDevice, cudaStatus, currentCudaDevice, Device, setCurrentCudaDevice } from './device';
import { fail } from './errors';
import { addon } from './native';

/** What {@link getDeviceProperties} returns. */
export interface DeviceProperties {
  name: string;
  /** Bytes of device memory. */
  totalMemory: number;
  /** Compute capability, e.g. 9.0 for an H100. */
  major: number;
  minor: number;
  multiProcessorCount: number;
}

/** A run-time library as {@link libraries} reports it. */
export interface LibraryInfo {
  /** 'cublasLt', 'cublas' or 'nccl'. */
  name: string;
  loaded: boolean;
  /** The file opened. */
  path: string;
  version: string;
  /** Why it is not loaded, with every place looked ('' when loaded). */
  error: string;
}

/**
 * The caching allocator of a device (see {@link memoryStats}). Sizes are bytes, rounded up to
 * the allocator's blocks of 512 bytes.
 */
export interface MemoryStats {
  /** In tensors now. */
  allocated: number;
  /** Taken from the device (allocated, plus cached for reuse). */
  reserved: number;
  peakAllocated: number;
  peakReserved: number;
  activeBlocks: number;
  segments: number;
  /** cudaMalloc calls so far (one per segment). */
  mallocs: number;
  /** Segments given back with cudaFree (emptyCache, or before retrying a failed cudaMalloc). */
  frees: number;
  /** Times a failed cudaMalloc was retried after giving the cache back. */
  oomRetries: number;
}

interface CudaNative {
  cudaDeviceProperties(device: number): DeviceProperties;
  cudaSynchronize(device: number): void;
  cudaVersions(): { runtime: string; driver: string };
  cudaLibraries(): LibraryInfo[];
  cudaCreateStream(device: number): number;
  cudaDefaultStream(device: number): number;
  cudaCurrentStream(device: number): number;
  cudaSetStream(stream: number): void;
  cudaStreamDevice(stream: number): number;
  cudaStreamSynchronize(stream: number): void;
  cudaStreamQuery(stream: number): boolean;
  cudaStreamWaitEvent(stream: number, event: unknown): void;
  cudaCreateEvent(device: number, timing: boolean): unknown;
  cudaEventRecord(event: unknown, stream: number): void;
  cudaEventSynchronize(event: unknown): void;
  cudaEventQuery(event: unknown): boolean;
  cudaEventElapsed(start: unknown, end: unknown): number;
  cudaMemoryStats(device: number): MemoryStats;
  cudaResetPeakMemoryStats(device: number): void;
  cudaEmptyCache(device: number): void;
  setMatmulTf32(allow: boolean): void;
  getMatmulTf32(): boolean;
  cudaGraphBegin(device: number): unknown;
  cudaGraphEnd(graph: unknown): void;
  cudaGraphAbort(graph: unknown): void;
  cudaGraphReplay(graph: unknown, scalars: number[]): void;
  cudaGraphIndexErrors(graph: unknown): number;
  cudaGraphDispose(graph: unknown): void;
}
const native = addon as CudaNative;

/** Whether this build of ignis has the CUDA backend (built with `npm run build:cuda`). */
export function isBuilt(): boolean {
  return cudaStatus().built;
}

/** Whether CUDA tensors can be made here: a build with the CUDA backend, a driver and a device. */
export function isAvailable(): boolean {
  return cudaStatus().available;
}

/** Why CUDA cannot be used here ('' when it can): no CUDA backend in this build, no driver, no device. */
export function unavailableReason(): string {
  return cudaStatus().reason;
}

/** The number of CUDA devices (0 when CUDA is not available). */
export function deviceCount(): number {
  return cudaStatus().deviceCount;
}

/** The index of a device given as a number, `'cuda'`/`'cuda:N'`, or nothing (the current device), checked. */
function deviceIndex(device: number | Device | undefined, op: string): number {
  if (device === undefined) device = 'cuda';
  if (typeof device === 'number') {
    if (!Number.isInteger(device) || device < 0) fail('ERR_ARG', `${op}: device index must be a non-negative integer, got ${device}`);
    device = `cuda:${device}`;
  }
  const d = checkDevice(device, op);
  if (d === 'cpu') fail('ERR_DEVICE', `${op}: expected a CUDA device, got 'cpu'`);
  return Number(d.slice(5));
}

/** The device `'cuda'` stands for (0 unless {@link setDevice} changed it). */
export function currentDevice(): number {
  return currentCudaDevice();
}

/** Makes `'cuda'` stand for device `index` in later calls. */
export function setDevice(index: number): void {
  setCurrentCudaDevice(deviceIndex(index, 'setDevice'));
}

/** Name, memory, compute capability and multiprocessor count of a device (default: the current one). */
export function getDeviceProperties(device?: number | Device): DeviceProperties {
  return native.cudaDeviceProperties(deviceIndex(device, 'getDeviceProperties'));
}

/** Waits until all work queued on the device (default: the current one) is done. */
export function synchronize(device?: number | Device): void {
  native.cudaSynchronize(deviceIndex(device, 'synchronize'));
}

/** The CUDA runtime this build carries and the CUDA version the driver supports, e.g. '13.0'. */
export function versions(): { runtime: string; driver: string } {
  if (!cudaStatus().built) fail('ERR_DEVICE', `versions: ${cudaStatus().reason}`);
  return native.cudaVersions();
}

/**
 * cuBLAS, cuBLASLt and NCCL as found (and opened) by the run-time loader: path and version, or
 * why not, with every place looked. Does not need a GPU.
 */
export function libraries(): LibraryInfo[] {
  if (!cudaStatus().built) fail('ERR_DEVICE', `libraries: ${cudaStatus().reason}`);
  return native.cudaLibraries();
}

/**
 * A queue of GPU work. Ops run on the current stream of their device ({@link currentStream};
 * each device starts on its default stream). Streams made with {@link Stream.create} run
 * concurrently with each other but are ordered with the default stream (CUDA's blocking
 * streams), and are kept for the life of the process: make a few and reuse them. Between two
 * created streams, order work with {@link Stream.waitStream} or events.
 */
export class Stream {
  /** @internal */
  constructor(
    readonly id: number,
    readonly device: number,
  ) {}

  /** A new stream on a device (default: the current one). */
  static create(device?: number | Device): Stream {
    const index = deviceIndex(device, 'Stream.create');
    return new Stream(native.cudaCreateStream(index), index);
  }

  /** Waits until the work queued on this stream is done. */
  synchronize(): void {
    native.cudaStreamSynchronize(this.id);
  }

  /** Whether the work queued on this stream is done. */
  query(): boolean {
    return native.cudaStreamQuery(this.id);
  }

  /** Makes the work queued on this stream from now on wait for `event`. */
  waitEvent(event: Event): void {
    native.cudaStreamWaitEvent(this.id, event._event);
  }

  /** Makes the work queued on this stream from now on wait for what `other` has queued so far. */
  waitStream(other: Stream): void {
    this.waitEvent(new Event({ device: other.device }).record(other));
  }

  /** Records an event (a new one unless given) at this point of the stream. */
  recordEvent(event?: Event): Event {
    return (event ?? new Event({ device: this.device })).record(this);
  }
}

/** The stream the ops of a device (default: the current one) run on now. */
export function currentStream(device?: number | Device): Stream {
  const index = deviceIndex(device, 'currentStream');
  return new Stream(native.cudaCurrentStream(index), index);
}

/** A device's default stream. */
export function defaultStream(device?: number | Device): Stream {
  const index = deviceIndex(device, 'defaultStream');
  return new Stream(native.cudaDefaultStream(index), index);
}

/** Makes `stream` the current stream of its device. */
export function setStream(stream: Stream): void {
  if (!(stream instanceof Stream)) fail('ERR_ARG', 'setStream: expected a cuda.Stream');
  native.cudaSetStream(stream.id);
}

/** Runs fn with `stream` current on its device, then restores the stream that was current. */
export function withStream<T>(stream: Stream, fn: () => T): T {
  if (!(stream instanceof Stream)) fail('ERR_ARG', 'withStream: expected a cuda.Stream');
  const previous = currentStream(stream.device);
  setStream(stream);
  try {
    return fn();
  } finally {
    setStream(previous);
  }
}

/** Options of {@link Event}. */
export interface EventOptions {
  /** Whether {@link Event.elapsedTime} can measure from this event (default false). */
  enableTiming?: boolean;
  /** Default: the current device. */
  device?: number | Device;
}

/** A point in a stream's work, to wait for or to time. Freed when garbage-collected. */
export class Event {
  /** @internal */
  readonly _event: unknown;
  readonly device: number;

  constructor(opts: EventOptions = {}) {
    this.device = deviceIndex(opts.device, 'Event');
    this._event = native.cudaCreateEvent(this.device, opts.enableTiming === true);
  }

  /** Records this event at the current point of `stream` (default: the current stream); returns this. */
  record(stream?: Stream): this {
    native.cudaEventRecord(this._event, (stream ?? currentStream(this.device)).id);
    return this;
  }

  /** Waits until the work before the recorded point is done. */
  synchronize(): void {
    native.cudaEventSynchronize(this._event);
  }

  /** Whether the work before the recorded point is done. */
  query(): boolean {
    return native.cudaEventQuery(this._event);
  }

  /** Milliseconds from this event to `end`, both recorded and made with `enableTiming`. */
  elapsedTime(end: Event): number {
    return native.cudaEventElapsed(this._event, end._event);
  }
}

/** The caching allocator's figures for a device (default: the current one). */
export function memoryStats(device?: number | Device): MemoryStats {
  return native.cudaMemoryStats(deviceIndex(device, 'memoryStats'));
}

/** Starts peakAllocated and peakReserved again from the current figures. */
export function resetPeakMemoryStats(device?: number | Device): void {
  native.cudaResetPeakMemoryStats(deviceIndex(device, 'resetPeakMemoryStats'));
}

/** Gives the device memory that the allocator caches and no tensor uses back to the driver. */
export function emptyCache(device?: number | Device): void {
  native.cudaEmptyCache(deviceIndex(device, 'emptyCache'));
}

/** How float32 matmuls on CUDA run: `'highest'` in full float32, `'high'` on TF32 tensor cores. */
export type MatmulPrecision = 'highest' | 'high';

/**
 * Lets float32 matmuls on CUDA use TF32 tensor cores (`'high'`, several times faster, about 10
 * bits of mantissa in the products) or not (`'highest'`, the default), as PyTorch's
 * `torch.set_float32_matmul_precision`. bfloat16 and float16 matmuls are not affected.
 */
export function setMatmulPrecision(precision: MatmulPrecision): void {
  if (precision !== 'highest' && precision !== 'high') {
    fail('ERR_ARG', `setMatmulPrecision: expected 'highest' or 'high', got ${String(precision)}`);
  }
  native.setMatmulTf32(precision === 'high');
}

/** The precision set by {@link setMatmulPrecision}. */
export function getMatmulPrecision(): MatmulPrecision {
  return native.getMatmulTf32() ? 'high' : 'highest';
}

/** Options of {@link graph}. */
export interface GraphOptions {
  /** The device whose ops are captured (default: the current one). */
  device?: number | Device;
}

/** What the replays of a graph must also do on the host. */
interface Capture {
  /** Run after each replay is queued. */
  hooks: (() => void)[];
  /** Read before each replay: the values of the graph's per-replay scalars, by slot. */
  scalars: (() => number)[];
}

/** The graph being captured on each device. */
const capturing = new Map<number, Capture>();

/** The capture under way on `device`, if any ('cpu': never). */
function captureOn(device: Device): Capture | undefined {
  return device === 'cpu' ? undefined : capturing.get(Number(device.slice(5)));
}

/** @internal Whether a CUDA graph is being captured on `device` ('cpu': never). */
export function isCapturing(device: Device): boolean {
  return captureOn(device) !== undefined;
}

/**
 * @internal Registers `hook` to run on the host at each replay of the graph being captured on
 * `device` (an optimizer advancing its step counts), if one is.
 */
export function onReplay(device: Device, hook: () => void): void {
  captureOn(device)?.hooks.push(hook);
}

/**
 * @internal A per-replay scalar of the graph being captured on `device`: `read()` is called before
 * each replay and its value copied to the device, where the captured kernels given the returned
 * slot read it (a scheduled learning rate). Only while capturing.
 */
export function replayScalar(device: Device, read: () => number): number {
  const capture = captureOn(device);
  if (!capture) fail('ERR_CUDA', `replayScalar: ${device} is not capturing a graph`);
  capture.scalars.push(read);
  return capture.scalars.length - 1;
}

/**
 * A captured CUDA graph (see {@link graph}): {@link replay} runs the captured work again on the
 * device's current stream, reading and writing the same tensors.
 */
export class CudaGraph<T = unknown> {
  /** @internal */
  constructor(
    private handle: unknown,
    /** What the captured function returned (tensors the replays write into, such as the loss). */
    readonly output: T,
    private readonly capture: Capture,
  ) {}

  /** Runs the captured work again, on the tensors' current contents. Returns at once (asynchronous, as any GPU op). */
  replay(): void {
    if (this.handle === null) fail('ERR_ARG', 'CudaGraph.replay: the graph was disposed');
    native.cudaGraphReplay(
      this.handle,
      this.capture.scalars.map((read) => read()),
    );
    for (const hook of this.capture.hooks) hook();
  }

  /**
   * How many out-of-range indices the captured `embedding`, `gather` and `crossEntropy` ops met,
   * summed over the replays so far (waits for the device). A captured op cannot raise ERR_INDEX
   * (that needs the indices on the host): it reads zeros for a bad index (a bad cross-entropy
   * target counts as ignored) and counts it here instead.
   */
  indexErrors(): number {
    if (this.handle === null) fail('ERR_ARG', 'CudaGraph.indexErrors: the graph was disposed');
    return native.cudaGraphIndexErrors(this.handle);
  }

  /** Frees the graph and its private memory pool (tensors from it that are still held stay valid until disposed). */
  dispose(): void {
    if (this.handle === null) return;
    native.cudaGraphDispose(this.handle);
    this.handle = null;
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Captures the GPU work of `fn` (for example a training step: forward, backward and optimizer
 * step) into a CUDA graph, as `torch.cuda.graph`: `fn` runs once, its ops are recorded on a side
 * stream (not run), and {@link CudaGraph.replay} then launches them all at once, without the
 * host's per-op overhead. Tensors made during the capture come from a private memory pool kept
 * with the graph; the graph reads and writes the same memory at each replay, so feed new inputs
 * by copying into the tensors the capture read, and keep every tensor it used alive.
 *
 * Run the step eagerly once or more before capturing (optimizer state, cuBLAS and the caching
 * allocator warm up then). Each replay reads the optimizers' current learning rate (so an
 * schedule stepped between replays applies), AdamW's bias corrections advance with
 * each replay, and random ops (dropout) draw fresh numbers from the global generator at each
 * replay, exactly as the eager step would from the same generator state (the capture itself
 * draws nothing and leaves the generator as it was); other optimizer
 * options are fixed at capture. Anything that waits for the device
 * or moves data to or from the host (`.data()`, `.item()`, `.to('cpu')`, clipGradNorm's norm,
 * synchronize) raises ERR_CUDA naming the op during the capture (clip with
 * clipGradNormTensor, which keeps the norm on the device); on any error the capture is
 * ended and its memory freed before the error propagates. Without a usable GPU, ERR_DEVICE
 * with the reason.
 */
export function graph<T>(fn: () => T, opts: GraphOptions = {}): CudaGraph<T> {
  if (typeof fn !== 'function') fail('ERR_ARG', 'graph: expected a function');
  const device = deviceIndex(opts.device, 'graph');
  if (capturing.has(device)) fail('ERR_CUDA', `graph: cuda:${device} is already capturing a graph (captures do not nest)`);
  const handle = native.cudaGraphBegin(device);
  const capture: Capture = { hooks: [], scalars: [] };
  capturing.set(device, capture);
  let output: T;
  try {
    output = fn();
  } catch (err) {
    capturing.delete(device);
    native.cudaGraphAbort(handle);
    throw err;
  }
  capturing.delete(device);
  try {
    native.cudaGraphEnd(handle);
  } catch (err) {
    native.cudaGraphDispose(handle);
    throw err;
  }
  return new CudaGraph(handle, output, capture);
}
