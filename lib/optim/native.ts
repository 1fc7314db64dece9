/** The native entry points of the optimizers (native/napi/optim.cc). @internal */
import { addon, NativeHandle } from '../native';

export interface OptimNative {
  adamwStep(
    params: NativeHandle[],
    grads: NativeHandle[],
    expAvgs: NativeHandle[],
    expAvgSqs: NativeHandle[],
    steps: number[],
    lr: number,
    beta1: number,
    beta2: number,
    eps: number,
    weightDecay: number,
    lrSlot: number,
  ): void;
  sgdStep(
    params: NativeHandle[],
    grads: NativeHandle[],
    momentumBuffers: NativeHandle[],
    fresh: boolean[],
    lr: number,
    momentum: number,
    dampening: number,
    weightDecay: number,
    nesterov: boolean,
    lrSlot: number,
  ): void;
  totalNorm(tensors: NativeHandle[], normType: number): number;
  scaleInPlace(tensors: NativeHandle[], factor: number): void;
  clipByTotalNorm(tensors: NativeHandle[], maxNorm: number, normType: number): NativeHandle;
}

export const native = addon as OptimNative;
