/** Matrix products through BLAS. */
import { fail } from '../errors';
import { Tensor } from '../tensor';

// UNWRITTEN (matmul family, in progress)
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const matmul = (_a: Tensor, _b: Tensor): Tensor => pending('matmul');
export const linear = (_x: Tensor, _w: Tensor, _b?: Tensor | null): Tensor => pending('linear');
