/** Indexing and joining: embedding, gather, cat, stack. */
import { fail } from '../errors';
import { Tensor } from '../tensor';

// UNWRITTEN (indexing family, in progress)
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const embedding = (_indices: Tensor, _weight: Tensor): Tensor => pending('embedding');
export const gather = (_t: Tensor, _dim: number, _index: Tensor): Tensor => pending('gather');
export const cat = (_tensors: Tensor[], _dim = 0): Tensor => pending('cat');
export const stack = (_tensors: Tensor[], _dim = 0): Tensor => pending('stack');
