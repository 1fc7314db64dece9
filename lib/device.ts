/**
 * Device names: `'cpu'`, `'cuda'` (the current CUDA device) and `'cuda:N'`, checked against what
 * this build and machine have, and the codes the addon takes for them.
 * @internal
 */
import { fail } from './errors';
import { addon } from './native';

/** Where a tensor lives: `'cpu'`, or a CUDA device (`'cuda'` is the current one, see `ig.cuda.setDevice`). */
export type Device = 'cpu' | 'cuda' | `cuda:${number}`;

/** What the addon says of CUDA here: probed once, as it cannot change while the process runs. */
export interface CudaStatus {
  /** Whether this build has the CUDA backend. */
  built: boolean;
  available: boolean;
  /** Why CUDA cannot be used ('' when it can): no CUDA backend in this build, no driver, no device. */
  reason: string;
  deviceCount: number;
}

const native = addon as { cudaStatus(): CudaStatus };
let status: CudaStatus | null = null;

/** @internal */
export function cudaStatus(): CudaStatus {
  status ??= native.cudaStatus();
  return status;
}

let current = 0;

/** @internal The index `'cuda'` stands for. */
export function currentCudaDevice(): number {
  return current;
}

/** @internal */
export function setCurrentCudaDevice(index: number): void {
  current = index;
}

/**
 * A device name made canonical (`'cuda'` becomes `'cuda:N'` with N the current device), checked
 * for `op`: ERR_DEVICE for an unknown name, a build without CUDA, a machine without a driver or
 * device, or a device index beyond the machine's devices.
 */
export function checkDevice(device: unknown, op: string): Device {
  if (device === 'cpu') return 'cpu';
  const match = typeof device === 'string' ? /^cuda(?::(\d+))?$/.exec(device) : null;
  if (!match) fail('ERR_DEVICE', `${op}: unknown device ${String(device)}; expected 'cpu', 'cuda' or 'cuda:N'`);
  const index = match[1] === undefined ? current : Number(match[1]);
  const s = cudaStatus();
  if (!s.available) fail('ERR_DEVICE', `${op}: device ${device} is not available: ${s.reason}`);
  if (index >= s.deviceCount) {
    fail('ERR_DEVICE', `${op}: device cuda:${index} does not exist: this machine has ${s.deviceCount} CUDA device${s.deviceCount === 1 ? '' : 's'}`);
  }
  return `cuda:${index}`;
}

/** @internal The addon's code for a canonical device: -1 for the CPU, N for cuda:N. */
export function deviceCode(device: Device): number {
  return device === 'cpu' ? -1 : Number(device.slice(5));
}

/** @internal The canonical device of an addon code. */
export function deviceOfCode(code: number): Device {
  return code < 0 ? 'cpu' : `cuda:${code}`;
}
