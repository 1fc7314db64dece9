/** Reductions along dims. */
import { fail } from '../errors';
import { Tensor } from '../tensor';

// UNWRITTEN (reduce family, in progress)
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const sum = (_t: Tensor, _dim?: number | number[], _keepdim = false): Tensor => pending('sum');
export const mean = (_t: Tensor, _dim?: number | number[], _keepdim = false): Tensor => pending('mean');
export const max = (_t: Tensor, _dim?: number, _keepdim = false): Tensor => pending('max');
export const min = (_t: Tensor, _dim?: number, _keepdim = false): Tensor => pending('min');
export const argmax = (_t: Tensor, _dim?: number, _keepdim = false): Tensor => pending('argmax');
export const argmin = (_t: Tensor, _dim?: number, _keepdim = false): Tensor => pending('argmin');
export const variance = (_t: Tensor, _dim?: number | number[], _keepdim = false, _correction = 1): Tensor => pending('var');
export const logsumexp = (_t: Tensor, _dim: number | number[], _keepdim = false): Tensor => pending('logsumexp');
