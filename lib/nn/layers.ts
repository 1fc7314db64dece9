/** Basic layers with PyTorch's parameter names and initialisation: Linear, Embedding, LayerNorm, RMSNorm, Dropout. */
import { DType } from '../dtype';
import { fail } from '../errors';
import { tidy } from '../memory';
import { checkShape, checkTensor } from '../ops/check';
import { ones, rand, randn, zeros } from '../ops/creation';
import { ge, mul, sub } from '../ops/elementwise';
import { embedding } from '../ops/indexing';
import { linear } from '../ops/matmul';
import { layerNorm, rmsNorm } from '../ops/norm';
import { Tensor } from '../tensor';
import { checkSize, floatDtype, Module, parameter } from './module';

/** Uniform samples in [-bound, bound) of `dtype`, drawn in float32 (float64 for float64) from the global generator. */
function uniform(shape: number[], bound: number, dtype: DType): Tensor {
  return tidy(() => {
    const u = rand(shape, { dtype: dtype === 'float64' ? 'float64' : 'float32' });
    return sub(mul(u, 2 * bound), bound).to(dtype);
  });
}

/** Options of {@link Linear}. */
export interface LinearOptions {
  /** Whether the layer adds a learned bias (default true). */
  bias?: boolean;
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/**
 * `y = x W^T + b`, as PyTorch's `nn.Linear`: weight [outFeatures, inFeatures], bias
 * [outFeatures]. Both are drawn from U(-1/sqrt(inFeatures), 1/sqrt(inFeatures)) (PyTorch's
 * Kaiming-uniform with a = sqrt(5)), weight first, from the global generator ({@link manualSeed}).
 */
export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;
  weight: Tensor;
  bias: Tensor | null;

  constructor(inFeatures: number, outFeatures: number, opts: LinearOptions = {}) {
    super();
    this.inFeatures = checkSize(inFeatures, 'Linear', 'inFeatures');
    this.outFeatures = checkSize(outFeatures, 'Linear', 'outFeatures');
    const dtype = floatDtype(opts.dtype, 'Linear');
    const bound = inFeatures > 0 ? 1 / Math.sqrt(inFeatures) : 0;
    this.weight = parameter(uniform([outFeatures, inFeatures], bound, dtype));
    this.bias = (opts.bias ?? true) ? parameter(uniform([outFeatures], bound, dtype)) : null;
  }

  /** x [..., inFeatures] -> [..., outFeatures]. */
  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}

/** Options of {@link Embedding}. */
export interface EmbeddingOptions {
  /** The weight's dtype (default float32). */
  dtype?: DType;
}

/**
 * A lookup table, as PyTorch's `nn.Embedding`: weight [numEmbeddings, embeddingDim] drawn from
 * N(0, 1); the rows picked by integer indices of any shape.
 */
export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  weight: Tensor;

  constructor(numEmbeddings: number, embeddingDim: number, opts: EmbeddingOptions = {}) {
    super();
    this.numEmbeddings = checkSize(numEmbeddings, 'Embedding', 'numEmbeddings');
    this.embeddingDim = checkSize(embeddingDim, 'Embedding', 'embeddingDim');
    const dtype = floatDtype(opts.dtype, 'Embedding');
    this.weight = parameter(tidy(() => randn([numEmbeddings, embeddingDim], { dtype: dtype === 'float64' ? 'float64' : 'float32' }).to(dtype)));
  }

  /** indices (int32 or int64) [...] -> [..., embeddingDim]; ERR_INDEX for an index out of range. */
  forward(indices: Tensor): Tensor {
    return embedding(indices, this.weight);
  }
}

/** The normalised shape of a norm layer, as a list of sizes. */
function normalizedShapeOf(shape: number | number[], op: string): number[] {
  const list = checkShape(typeof shape === 'number' ? [shape] : shape, op).slice();
  if (list.length === 0) fail('ERR_SHAPE', `${op}: normalizedShape must have at least one dim`);
  return list;
}

/** Options of {@link LayerNorm}. */
export interface LayerNormOptions {
  /** Added to the variance (default 1e-5). */
  eps?: number;
  /** Whether the layer has a learned weight (ones) and bias (zeros) (default true). */
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether it has the bias (default true). */
  bias?: boolean;
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/** Layer normalisation over the trailing `normalizedShape` dims, as PyTorch's `nn.LayerNorm`. */
export class LayerNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number;
  weight: Tensor | null;
  bias: Tensor | null;

  constructor(normalizedShape: number | number[], opts: LayerNormOptions = {}) {
    super();
    this.normalizedShape = normalizedShapeOf(normalizedShape, 'LayerNorm');
    this.eps = opts.eps ?? 1e-5;
    const dtype = floatDtype(opts.dtype, 'LayerNorm');
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? parameter(ones(this.normalizedShape, { dtype })) : null;
    this.bias = affine && (opts.bias ?? true) ? parameter(zeros(this.normalizedShape, { dtype })) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}

/** Options of {@link RMSNorm}. */
export interface RMSNormOptions {
  /** Added to the mean of squares (default: the machine epsilon of the input's dtype, as PyTorch; LLaMA uses 1e-6). */
  eps?: number;
  /** Whether the layer has a learned weight (ones) (default true). */
  elementwiseAffine?: boolean;
  /** The weight's dtype (default float32). */
  dtype?: DType;
}

/**
 * RMS normalisation over the trailing `normalizedShape` dims, as PyTorch's `nn.RMSNorm` and
 * LLaMA's RMSNorm: x / sqrt(mean(x^2) + eps) * weight (16-bit inputs computed in float32).
 */
export class RMSNorm extends Module {
  readonly normalizedShape: number[];
  readonly eps: number | undefined;
  weight: Tensor | null;

  constructor(normalizedShape: number | number[], opts: RMSNormOptions = {}) {
    super();
    this.normalizedShape = normalizedShapeOf(normalizedShape, 'RMSNorm');
    this.eps = opts.eps;
    const dtype = floatDtype(opts.dtype, 'RMSNorm');
    this.weight = (opts.elementwiseAffine ?? true) ? parameter(ones(this.normalizedShape, { dtype })) : null;
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.normalizedShape, this.weight, this.eps);
  }
}

/**
 * Dropout, as PyTorch's `nn.Dropout`: in training mode each element is zeroed with probability
 * `p` (the mask drawn with {@link rand} from the global generator) and the others are scaled
 * by 1 / (1 - p); in evaluation mode, or with p = 0, the input itself is returned.
 */
export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) fail('ERR_ARG', `Dropout: p must be a probability in [0, 1], got ${String(p)}`);
    this.p = p;
  }

  forward(x: Tensor): Tensor {
    checkTensor(x, 'Dropout');
    if (!this.training || this.p === 0) return x;
    if (this.p === 1) return mul(x, 0);
    return tidy(() => {
      const keepMask = ge(rand(x.shape.slice(), { device: x.device }), this.p);
      return mul(mul(x, keepMask), 1 / (1 - this.p));
    });
  }
}
