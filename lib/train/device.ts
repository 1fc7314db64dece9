/** Choosing the device fine-tuning and generation run on. */
import { deviceCount, isAvailable } from '../cuda';
import { checkDevice, Device } from '../device';
import * as dist from '../dist';
import { fail } from '../errors';

/**
 * The device for `requested`: 'auto' is the current CUDA device when `ig.cuda.isAvailable()`,
 * else the CPU; 'cpu'; 'cuda' / 'cuda:N' when that device is usable (ERR_DEVICE with the reason
 * otherwise). Anything else is ERR_ARG. In a process group of several ranks on this machine,
 * each rank takes its own GPU (`cuda:LOCAL_RANK`, as NCCL needs): 'auto' is the CPU unless there
 * is a GPU per rank, and 'cuda' with fewer GPUs than ranks is ERR_DEVICE.
 */
export function resolveDevice(requested: string, op: string): Device {
  const ranks = dist.isInitialized() ? dist.localWorldSize() : 1;
  if (requested === 'auto') {
    if (!isAvailable()) return 'cpu';
    if (ranks === 1) return checkDevice('cuda', op);
    return deviceCount() >= ranks ? checkDevice(`cuda:${dist.localRank()}`, op) : 'cpu';
  }
  if (requested === 'cuda' && ranks > 1) {
    if (isAvailable() && deviceCount() < ranks) {
      fail('ERR_DEVICE', `${op}: ${ranks} ranks on this machine share ${deviceCount()} CUDA device(s); NCCL needs one per rank (train on 'cpu', or run fewer processes)`);
    }
    return checkDevice(`cuda:${dist.localRank()}`, op);
  }
  if (requested === 'cpu' || (typeof requested === 'string' && /^cuda(:\d+)?$/.test(requested))) return checkDevice(requested, op);
  fail('ERR_ARG', `${op}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got ${JSON.stringify(requested)}`);
}
