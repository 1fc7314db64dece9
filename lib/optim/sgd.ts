/** SGD with momentum, dampening, Nesterov momentum and weight decay, one fused native step per group. */
import { fail } from '../errors';
import { keep } from '../memory';
import { emptyLike } from '../ops/creation';
import { Tensor } from '../tensor';
import { native } from './native';
import { Optimizer, Params, checkRange, stateDtype } from './optimizer';

/** Options of {@link SGD} (and of each of its parameter groups), as torch.optim.SGD's. */
export interface SGDOptions {
  /** Learning rate. Default 1e-3. */
  lr: number;
  /** Momentum factor; 0 keeps no state. Default 0. */
  momentum: number;
  /** Dampening of the momentum: the new gradient enters the buffer scaled by `1 - dampening`. Default 0. */
  dampening: number;
  /** L2 penalty: `weightDecay * p` is added to the gradient. Default 0. */
  weightDecay: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0). Default false. */
  nesterov: boolean;
}

/**
 * torch.optim.SGD. For each param with a grad g: `d = g + wd*p`; with momentum,
 * `buf = d` on the buffer's first step, else `buf = momentum*buf + (1-dampening)*d`, and
 * `d = nesterov ? d + momentum*buf : buf`; then `p -= lr*d`. One native call per group updates
 * all of its params in place; bfloat16/float16 params keep a float32 momentum buffer and are
 * computed in float32. State per param, as in stateDict(): `momentumBuffer` (a tensor), once a
 * step with momentum has run. Also exported at the top level.
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Params<SGDOptions>, options?: Partial<SGDOptions>) {
    super('SGD', params, { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false }, options, { momentumBuffer: 'tensor' });
  }

  protected checkOptions(o: Record<string, unknown>, prefix: string): SGDOptions {
    const op = this.name;
    if (typeof o.nesterov !== 'boolean') fail('ERR_ARG', `${op}: ${prefix}nesterov must be a boolean, got ${String(o.nesterov)}`);
    const options = {
      lr: checkRange(o.lr, op, `${prefix}lr`, 0),
      momentum: checkRange(o.momentum, op, `${prefix}momentum`, 0),
      dampening: checkRange(o.dampening, op, `${prefix}dampening`, -Infinity),
      weightDecay: checkRange(o.weightDecay, op, `${prefix}weightDecay`, 0),
      nesterov: o.nesterov,
    };
    if (options.nesterov && (options.momentum <= 0 || options.dampening !== 0)) {
      fail('ERR_ARG', `${op}: ${prefix}nesterov needs a positive momentum and zero dampening, got momentum ${options.momentum} and dampening ${options.dampening}`);
    }
    return options;
  }

  protected update(o: SGDOptions, params: Tensor[], grads: Tensor[], lrSlot: number): void {
    const op = `${this.name}.step`;
    const step = (buffers: Tensor[], fresh: boolean[]) =>
      native.sgdStep(
        params.map((p) => p.handle(op)),
        grads.map((g) => g.handle(op)),
        buffers.map((b) => b.handle(op)),
        fresh,
        o.lr,
        o.momentum,
        o.dampening,
        o.weightDecay,
        o.nesterov,
        lrSlot,
      );
    if (o.momentum === 0) {
      step([], []);
      return;
    }
    // A new buffer is filled by its first step (buf = d), so it starts uninitialised.
    const init = (p: Tensor) => ({ momentumBuffer: keep(emptyLike(p, { dtype: stateDtype(p.dtype) })) });
    this.withStates(params, init, (states, isNew) => step(states.map((s) => s.momentumBuffer as Tensor), isNew));
  }
}
