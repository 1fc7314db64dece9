/**
 * A key/value cache for generation: each attention layer keeps the keys and values of the
 * positions seen so far, so that a model runs the prompt once and then one token at a time.
 */
import { needsGrad } from '../autograd/graph';
import { checkDevice, Device } from '../device';
import { DType } from '../dtype';
import { fail } from '../errors';
import { keep } from '../memory';
import { core } from '../native';
import { checkTensor, fmtShape } from '../ops/check';
import { zeros } from '../ops/creation';
import { Tensor } from '../tensor';
import { checkSize, floatDtype } from './module';

/** Options of {@link KVCache}. */
export interface KVCacheOptions {
  /** Attention layers: one {@link LayerKVCache} each. */
  numLayers: number;
  /** Sequences generated side by side (the input's batch dim). */
  batchSize: number;
  /** Key/value heads of each layer (LlamaConfig's num_key_value_heads). */
  numKeyValueHeads: number;
  /** Size of a key head. */
  headDim: number;
  /** Size of a value head (default headDim). */
  valueHeadDim?: number;
  /** The positions the cache can hold: prompt and generated tokens together. */
  maxLength: number;
  /** The dtype of the keys and values: the model's (default float32). */
  dtype?: DType;
  /** Where the keys and values live: the model's device (default 'cpu'). */
  device?: Device;
}

/** The keys and values a layer attends to after an update: views of its cache. */
export interface CachedKeysValues {
  /** [batch, numKeyValueHeads, length, headDim]: every position so far. */
  keys: Tensor;
  /** [batch, numKeyValueHeads, length, valueHeadDim]. */
  values: Tensor;
}

/**
 * One layer's cache: keys [batch, numKeyValueHeads, maxLength, headDim] and values
 * [batch, numKeyValueHeads, maxLength, valueHeadDim], allocated once and filled in place,
 * position by position. Made by {@link KVCache}; handed to `CausalSelfAttention.forward` (or
 * `DecoderBlock.forward`), which calls {@link LayerKVCache.update}.
 */
export class LayerKVCache {
  readonly batchSize: number;
  readonly numKeyValueHeads: number;
  readonly headDim: number;
  readonly valueHeadDim: number;
  readonly maxLength: number;
  readonly dtype: DType;
  readonly device: Device;
  #keys: Tensor | null;
  #values: Tensor | null;
  #length = 0;

  /** @internal Use {@link KVCache}. */
  constructor(opts: Required<Omit<KVCacheOptions, 'numLayers'>>) {
    this.batchSize = opts.batchSize;
    this.numKeyValueHeads = opts.numKeyValueHeads;
    this.headDim = opts.headDim;
    this.valueHeadDim = opts.valueHeadDim;
    this.maxLength = opts.maxLength;
    this.dtype = opts.dtype;
    this.device = opts.device;
    const shape = [opts.batchSize, opts.numKeyValueHeads, opts.maxLength];
    this.#keys = keep(zeros([...shape, opts.headDim], { dtype: opts.dtype, device: opts.device }));
    this.#values = keep(zeros([...shape, opts.valueHeadDim], { dtype: opts.dtype, device: opts.device }));
  }

  /** Positions held: the keys and values [0, length) are filled. */
  get length(): number {
    return this.#length;
  }

  get isDisposed(): boolean {
    return this.#keys === null;
  }

  /**
   * Checks that `count` new positions of a [batch, seq, ...] input fit, before a layer computes
   * anything: the batch size (ERR_SHAPE) and the room left (ERR_INDEX).
   */
  checkRoom(batch: number, count: number, op = 'KVCache'): void {
    if (this.#keys === null) fail('ERR_DISPOSED', `${op}: the KV cache was disposed`);
    if (batch !== this.batchSize) fail('ERR_SHAPE', `${op}: the input's batch of ${batch} does not match the KV cache's ${this.batchSize}`);
    if (this.#length + count > this.maxLength) {
      fail('ERR_INDEX', `${op}: ${count} new positions do not fit in the KV cache: it holds ${this.#length} of ${this.maxLength}`);
    }
  }

  /**
   * Writes the keys k [batch, numKeyValueHeads, n, headDim] and values v
   * [batch, numKeyValueHeads, n, valueHeadDim] of n new positions (any strides, the cache's
   * dtype) at positions [length, length + n), in place, and returns views of every position so
   * far, [0, length + n) (the caller disposes them). Nothing is written when a check fails:
   * ERR_SHAPE, ERR_DTYPE, ERR_INDEX when they do not fit, ERR_DISPOSED. The cache keeps no
   * autograd history: with grad mode on and k or v requiring grad it throws ERR_GRAD (run
   * generation under `noGrad`).
   */
  update(k: Tensor, v: Tensor): CachedKeysValues {
    const op = 'KVCache.update';
    checkTensor(k, op, 'keys');
    checkTensor(v, op, 'values');
    const n = k.ndim === 4 ? k.shape[2] : -1;
    for (const [name, t, dim] of [['keys', k, this.headDim], ['values', v, this.valueHeadDim]] as const) {
      const expected = [this.batchSize, this.numKeyValueHeads, n, dim];
      if (t.ndim !== 4 || t.shape.some((d, i) => d !== expected[i])) {
        const want = `[${this.batchSize}, ${this.numKeyValueHeads}, n, ${dim}]`;
        fail('ERR_SHAPE', `${op}: ${name} of shape ${fmtShape(t.shape)} do not match the cache (expected ${want} for n new positions, n the same for keys and values)`);
      }
      if (t.dtype !== this.dtype) fail('ERR_DTYPE', `${op}: ${name} must have the cache's dtype ${this.dtype}, got ${t.dtype}`);
    }
    if (needsGrad(k, v)) fail('ERR_GRAD', `${op}: the KV cache keeps no autograd history, but the new keys or values require grad (run generation under noGrad())`);
    this.checkRoom(k.shape[0], n, op);
    const keys = this.#keys as Tensor;
    const values = this.#values as Tensor;
    for (const [store, t] of [[keys, k], [values, v]] as const) {
      const slot = store.narrow(2, this.#length, n);
      try {
        core.copyInto(slot.handle(op), t.handle(op));
      } finally {
        slot.dispose();
      }
    }
    this.#length += n;
    return { keys: keys.narrow(2, 0, this.#length), values: values.narrow(2, 0, this.#length) };
  }

  /** Forgets every position (length 0); the memory is kept for the next sequence. */
  reset(): void {
    this.#length = 0;
  }

  /** Frees the keys and values; the cache cannot be used after. */
  dispose(): void {
    this.#keys?.dispose();
    this.#values?.dispose();
    this.#keys = null;
    this.#values = null;
    this.#length = 0;
  }
}

/**
 * A key/value cache for a stack of attention layers, for generation: each layer's
 * {@link LayerKVCache} holds the keys and values of the positions seen so far, preallocated to
 * `maxLength` positions and written in place. A model runs the prompt once, then one token at a
 * time, passing `cache.layer(i)` to layer i:
 *
 * ```ts
 * const cache = new nn.KVCache({ numLayers, batchSize: 1, numKeyValueHeads, headDim, maxLength: 512 });
 * ig.noGrad(() => {
 *   // prompt [1, P]: positions 0..P-1
 *   let past = cache.length;                                   // 0
 *   let pe = rope.call(ig.arange(past, past + P, { dtype: 'int64' }));
 *   for (let i = 0; i < layers.length; i++) h = layers[i].call(h, pe, null, cache.layer(i));
 *   // then each new token [1, 1] at position cache.length
 * });
 * ```
 *
 * Positions are the caller's: the rotary tables passed with n new tokens must be those of
 * positions length..length + n - 1. Causal attention with a cache sees every cached position
 * plus the new ones up to itself; an explicit additive mask then covers the keys of all
 * positions, [n, length + n] (or [batch or 1, 1 or heads, n, length + n]).
 */
export class KVCache {
  readonly layers: readonly LayerKVCache[];
  readonly maxLength: number;

  constructor(opts: KVCacheOptions) {
    const op = 'KVCache';
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: expected options { numLayers, batchSize, numKeyValueHeads, headDim, maxLength, ... }`);
    const numLayers = checkSize(opts.numLayers, op, 'numLayers');
    const sizes = {
      batchSize: checkSize(opts.batchSize, op, 'batchSize'),
      numKeyValueHeads: checkSize(opts.numKeyValueHeads, op, 'numKeyValueHeads'),
      headDim: checkSize(opts.headDim, op, 'headDim'),
      valueHeadDim: checkSize(opts.valueHeadDim ?? opts.headDim, op, 'valueHeadDim'),
      maxLength: checkSize(opts.maxLength, op, 'maxLength'),
    };
    for (const name of ['numKeyValueHeads', 'headDim', 'valueHeadDim'] as const) {
      if (sizes[name] === 0) fail('ERR_ARG', `${op}: ${name} must be positive`);
    }
    const dtype = floatDtype(opts.dtype, op);
    const device = checkDevice(opts.device ?? 'cpu', op);
    this.maxLength = sizes.maxLength;
    const layers: LayerKVCache[] = [];
    try {
      for (let i = 0; i < numLayers; i++) layers.push(new LayerKVCache({ ...sizes, dtype, device }));
    } catch (err) {
      for (const layer of layers) layer.dispose();
      throw err;
    }
    this.layers = layers;
  }

  /** The cache of layer i (ERR_INDEX outside [0, numLayers)). */
  layer(i: number): LayerKVCache {
    if (!Number.isInteger(i) || i < 0 || i >= this.layers.length) fail('ERR_INDEX', `KVCache: layer ${i} is out of range for ${this.layers.length} layers`);
    return this.layers[i];
  }

  /**
   * Positions held: the least over the layers (all layers agree between forward calls of the
   * whole model; during one, the layers already run are ahead). The next token's position.
   */
  get length(): number {
    return this.layers.reduce((m, l) => Math.min(m, l.length), this.layers.length ? Infinity : 0);
  }

  /** Forgets every position of every layer, keeping the memory for the next sequence. */
  reset(): void {
    for (const layer of this.layers) layer.reset();
  }

  /** Frees every layer's keys and values. */
  dispose(): void {
    for (const layer of this.layers) layer.dispose();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
