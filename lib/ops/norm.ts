/** Normalisation layers' math: layerNorm, rmsNorm. */
import { fail } from '../errors';
import { Tensor } from '../tensor';

// UNWRITTEN (norm family, in progress)
const pending = (name: string): never => fail('ERR_INTERNAL', `${name}: not implemented yet`);
export const layerNorm = (_x: Tensor, _normalizedShape: number[], _weight?: Tensor | null, _bias?: Tensor | null, _eps = 1e-5): Tensor =>
  pending('layerNorm');
export const rmsNorm = (_x: Tensor, _normalizedShape: number[], _weight?: Tensor | null, _eps?: number): Tensor => pending('rmsNorm');
