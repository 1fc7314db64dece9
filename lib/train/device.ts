/** Choosing the device fine-tuning and generation run on. */
import { fail } from '../errors';
import { isAvailable, unavailableReason } from '../cuda';

/**
 * The device for `requested`: 'cpu', or 'auto' (the CPU for now). 'cuda' / 'cuda:N' are
 * ERR_DEVICE saying why: the CUDA backend does not yet have every kernel a training step needs
 * (reductions, softmax, norms, losses, attention, LoRA, optimizers), and when no GPU is usable,
 * the reason.
 */
export function resolveDevice(requested: string, op: string): 'cpu' {
  if (requested === 'auto' || requested === 'cpu') return 'cpu';
  if (/^cuda(:\d+)?$/.test(requested)) {
    const gpu = isAvailable() ? 'a GPU is available, but' : `no GPU is usable (${unavailableReason()}), and`;
    fail('ERR_DEVICE', `${op}: device ${requested}: ${gpu} the CUDA backend lacks kernels a training step needs (reductions, softmax, norms, losses, attention, LoRA, optimizers); use --device cpu`);
  }
  fail('ERR_ARG', `${op}: device must be 'auto', 'cpu' or 'cuda', got ${JSON.stringify(requested)}`);
}
