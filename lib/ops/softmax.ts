/** softmax and logSoftmax along a dim. */
import { fail } from '../errors';
import { Tensor } from '../tensor';

// UNWRITTEN (softmax family, in progress)
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const softmax = (_t: Tensor, _dim: number): Tensor => pending('softmax');
export const logSoftmax = (_t: Tensor, _dim: number): Tensor => pending('logSoftmax');
