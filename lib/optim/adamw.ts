/** AdamW: Adam with decoupled weight decay, one fused native step per parameter group. */
import { isCapturing, onReplay } from '../cuda';
import { fail } from '../errors';
import { keep } from '../memory';
import { zerosLike } from '../ops/creation';
import { Tensor } from '../tensor';
import { native } from './native';
import { Optimizer, ParamState, Params, checkRange, stateDtype } from './optimizer';

/** Options of {@link AdamW} (and of each of its parameter groups), as torch.optim.AdamW's. */
export interface AdamWOptions {
  /** Learning rate. Default 1e-3. */
  lr: number;
  /** Decay rates of the running averages of the gradient and of its square, each in [0, 1). Default [0.9, 0.999]. */
  betas: [number, number];
  /** Added to the denominator for numerical stability. Default 1e-8. */
  eps: number;
  /** Decoupled weight decay: each step first scales the params by `1 - lr * weightDecay`. Default 1e-2. */
  weightDecay: number;
}

/**
 * torch.optim.AdamW (Loshchilov & Hutter): Adam with bias correction and decoupled weight decay.
 * For each param with a grad g, at its step t:
 * `p *= 1 - lr*wd; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g^2;
 *  p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)`.
 * One native call per group updates all of its params in place, in parallel over the elements of
 * all of them. float32/float64 params keep state of their dtype; bfloat16/float16 params keep
 * float32 state, are computed in float32 and rounded once per step. State per param, as in
 * stateDict(): `step` (a count), `expAvg` and `expAvgSq` (tensors). Also exported at the top level.
 */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: Params<AdamWOptions>, options?: Partial<AdamWOptions>) {
    super('AdamW', params, { lr: 1e-3, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2 }, options, {
      step: 'count',
      expAvg: 'tensor',
      expAvgSq: 'tensor',
    });
  }

  protected checkOptions(o: Record<string, unknown>, prefix: string): AdamWOptions {
    const op = this.name;
    const betas = o.betas;
    if (!Array.isArray(betas) || betas.length !== 2) fail('ERR_ARG', `${op}: ${prefix}betas must be an array of two numbers, got ${String(betas)}`);
    return {
      lr: checkRange(o.lr, op, `${prefix}lr`, 0),
      betas: [checkRange(betas[0], op, `${prefix}betas[0]`, 0, 1), checkRange(betas[1], op, `${prefix}betas[1]`, 0, 1)],
      eps: checkRange(o.eps, op, `${prefix}eps`, 0),
      weightDecay: checkRange(o.weightDecay, op, `${prefix}weightDecay`, 0),
    };
  }

  protected update(o: AdamWOptions, params: Tensor[], grads: Tensor[], lrSlot: number): void {
    const op = `${this.name}.step`;
    const init = (p: Tensor): ParamState => {
      const dtype = stateDtype(p.dtype);
      return { step: 0, expAvg: keep(zerosLike(p, { dtype })), expAvgSq: keep(zerosLike(p, { dtype })) };
    };
    this.withStates(params, init, (states) => {
      const steps = states.map((s) => (s.step as number) + 1);
      native.adamwStep(
        params.map((p) => p.handle(op)),
        grads.map((g) => g.handle(op)),
        states.map((s) => (s.expAvg as Tensor).handle(op)),
        states.map((s) => (s.expAvgSq as Tensor).handle(op)),
        steps,
        o.lr,
        o.betas[0],
        o.betas[1],
        o.eps,
        o.weightDecay,
        lrSlot,
      );
      // A captured step runs only when replayed, each replay one more step (the kernel reads the
      // replay count on the device): the counts advance with the replays.
      if (isCapturing(params[0].device)) onReplay(params[0].device, () => states.forEach((s) => (s.step as number)++));
      else states.forEach((s, i) => (s.step = steps[i]));
    });
  }
}
