/** Choosing the device a command runs on. */
import { fail } from '../errors';

/**
 * The device for `requested`: 'cpu', 'cuda' / 'cuda:N', or 'auto' (CUDA when this build has it
 * and a GPU is present, else CPU). 'cuda' without a usable GPU is ERR_DEVICE saying why.
 */
export function resolveDevice(requested: string, op: string): 'cpu' {
  if (requested === 'auto' || requested === 'cpu') return 'cpu';
  if (/^cuda(:\d+)?$/.test(requested)) fail('ERR_DEVICE', `${op}: device ${requested} is not available: this build of ignis has no CUDA backend`);
  fail('ERR_ARG', `${op}: device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(requested)}`);
}
