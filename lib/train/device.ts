/** Choosing the device fine-tuning and generation run on. */
import { isAvailable } from '../cuda';
import { checkDevice, Device } from '../device';
import { fail } from '../errors';

/**
 * The device for `requested`: 'auto' is the current CUDA device when `ig.cuda.isAvailable()`,
 * else the CPU; 'cpu'; 'cuda' / 'cuda:N' when that device is usable (ERR_DEVICE with the reason
 * otherwise). Anything else is ERR_ARG.
 */
export function resolveDevice(requested: string, op: string): Device {
  if (requested === 'auto') return isAvailable() ? checkDevice('cuda', op) : 'cpu';
  if (requested === 'cpu' || (typeof requested === 'string' && /^cuda(:\d+)?$/.test(requested))) return checkDevice(requested, op);
  fail('ERR_ARG', `${op}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(requested)}`);
}
