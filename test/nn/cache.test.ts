/**
 * KVCache: a DecoderBlock stack run on a whole sequence equals the same stack run on a prefix and
 * then token by token (or chunk by chunk) through the cache, with causal and explicit padding
 * masks; the cache's bookkeeping, reuse after reset, bad inputs, and memory.
 */
import test, { ExecutionContext } from 'ava';
import * as ig from '../../lib';
import { DType, Tensor, nn } from '../../lib';
import { Rng, assertClose, assertCode, randomTensor, refOf } from '../helpers';
import { randomizeParameters } from './models';

const live = () => ig.memory().tensors;

const CONFIG = { hiddenSize: 16, intermediateSize: 24, numAttentionHeads: 4, numKeyValueHeads: 2 };
const HEAD_DIM = CONFIG.hiddenSize / CONFIG.numAttentionHeads;

/** A stack of decoder blocks with random weights and its rotary embedding. */
function stack(rng: Rng, layers: number, dtype: DType) {
  const blocks = Array.from({ length: layers }, () => {
    const block = new nn.DecoderBlock({ ...CONFIG, dtype });
    randomizeParameters(block, rng, -0.4, 0.4);
    return block;
  });
  const rope = new nn.RotaryEmbedding(HEAD_DIM);
  const dispose = () => {
    for (const b of blocks) b.dispose();
    rope.dispose();
  };
  return { blocks, rope, dispose };
}

/**
 * Runs the stack on x [batch, n, hidden] at positions [from, from + n) (with the layers' caches
 * when given), returning the last hidden states.
 */
function run(s: ReturnType<typeof stack>, x: Tensor, from: number, cache: nn.KVCache | null, mask: Tensor | null = null): Tensor {
  return ig.noGrad(() =>
    ig.tidy(() => {
      const n = x.shape[1];
      const pe = s.rope.call(ig.arange(from, from + n, { dtype: 'int64' }), x.dtype);
      let h = x;
      s.blocks.forEach((block, i) => {
        h = block.call(h, pe, mask, cache ? cache.layer(i) : null);
      });
      return h;
    }),
  );
}

const TOLERANCE: Record<string, [number, number]> = { float64: [1e-10, 1e-12], float32: [1e-5, 1e-5], bfloat16: [5e-2, 5e-2] };

/** Runs `x` through the cache in chunks of the given sizes and checks the concatenation against `full`. */
function checkChunks(t: ExecutionContext, s: ReturnType<typeof stack>, x: Tensor, full: Tensor, chunks: number[], maskOf: ((from: number, n: number) => Tensor) | null, what: string) {
  const [batch, seq] = x.shape;
  const cache = new nn.KVCache({ numLayers: s.blocks.length, batchSize: batch, numKeyValueHeads: 2, headDim: HEAD_DIM, maxLength: seq + 3, dtype: x.dtype });
  const outs: Tensor[] = [];
  let from = 0;
  for (const n of chunks) {
    t.is(cache.length, from);
    const mask = maskOf ? maskOf(from, n) : null;
    outs.push(run(s, x.narrow(1, from, n), from, cache, mask));
    mask?.dispose();
    from += n;
  }
  t.is(from, seq);
  t.is(cache.length, seq);
  t.true(cache.layers.every((l) => l.length === seq));
  const joined = ig.cat(outs, 1);
  assertClose(t, joined, refOf(full), TOLERANCE[x.dtype], `${what} ${x.dtype} chunks ${chunks}`);
  for (const u of [...outs, joined]) u.dispose();
  cache.dispose();
}

test('a stack run through the KV cache (prefix, then one token at a time, or in chunks) equals the whole sequence at once', (t) => {
  const rng = new Rng(51);
  for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
    const s = stack(rng, 2, dtype);
    const x = randomTensor(rng, [2, 7, CONFIG.hiddenSize], dtype).t;
    const full = run(s, x, 0, null);
    checkChunks(t, s, x, full, [3, 1, 1, 1, 1], null, 'causal');
    checkChunks(t, s, x, full, [1, 1, 1, 1, 1, 1, 1], null, 'causal');
    checkChunks(t, s, x, full, [2, 3, 2], null, 'causal');
    for (const u of [x, full]) u.dispose();
    s.dispose();
  }
});

test('with a padding mask over every cached position: the same outputs as the whole sequence with the whole mask', (t) => {
  const rng = new Rng(52);
  const [batch, seq] = [2, 6];
  // batch 1 is left-padded by two tokens: keys 0 and 1 are hidden from its later queries
  const maskValue = (b: number, i: number, j: number) => (j > i ? -Infinity : b === 1 && j < 2 && i >= 2 ? -Infinity : 0);
  const maskFor = (from: number, n: number) => {
    const data = new Float64Array(batch * n * (from + n));
    for (let b = 0; b < batch; b++) for (let i = 0; i < n; i++) for (let j = 0; j < from + n; j++) data[(b * n + i) * (from + n) + j] = maskValue(b, from + i, j);
    return ig.tensor(data, { shape: [batch, 1, n, from + n] });
  };
  for (const dtype of ['float64', 'float32'] as DType[]) {
    const s = stack(rng, 2, dtype);
    const x = randomTensor(rng, [batch, seq, CONFIG.hiddenSize], dtype).t;
    const wholeMask = maskFor(0, seq);
    const full = run(s, x, 0, null, wholeMask);
    checkChunks(t, s, x, full, [3, 1, 1, 1], maskFor, 'padding mask');
    checkChunks(t, s, x, full, [2, 2, 2], maskFor, 'padding mask');
    for (const u of [x, full, wholeMask]) u.dispose();
    s.dispose();
  }
});

test('reset() forgets the positions and the cache runs the next sequence the same; update() writes in place', (t) => {
  const rng = new Rng(53);
  const s = stack(rng, 1, 'float32');
  const cache = new nn.KVCache({ numLayers: 1, batchSize: 1, numKeyValueHeads: 2, headDim: HEAD_DIM, maxLength: 5 });
  const x = randomTensor(rng, [1, 5, CONFIG.hiddenSize]).t;
  const first = run(s, x, 0, cache);
  t.is(cache.length, 5);
  cache.reset();
  t.is(cache.length, 0);
  const second = run(s, x, 0, cache);
  t.deepEqual(refOf(second).data, refOf(first).data);
  // update() directly: new positions land after the held ones, views of all come back
  const layer = new nn.KVCache({ numLayers: 1, batchSize: 2, numKeyValueHeads: 1, headDim: 2, valueHeadDim: 3, maxLength: 4 }).layer(0);
  const k1 = randomTensor(rng, [2, 1, 3, 2]);
  const v1 = randomTensor(rng, [2, 1, 3, 3]);
  ig.tidy(() => layer.update(k1.t, v1.t));
  const k2 = randomTensor(rng, [2, 1, 1, 2], 'float32', 'strided');
  const v2 = randomTensor(rng, [2, 1, 1, 3]);
  const both = layer.update(k2.t, v2.t);
  t.deepEqual(both.keys.shape, [2, 1, 4, 2]);
  t.deepEqual(both.values.shape, [2, 1, 4, 3]);
  const keys = both.keys.toArray() as number[][][][];
  const expected = (a: { ref: { data: Float64Array } }, n: number, b: number, i: number) => Array.from(a.ref.data.slice((b * n + i) * 2, (b * n + i + 1) * 2));
  for (let b = 0; b < 2; b++) {
    for (let i = 0; i < 3; i++) t.deepEqual(keys[b][0][i], expected(k1, 3, b, i).map(Math.fround));
    t.deepEqual(keys[b][0][3], expected(k2, 1, b, 0).map(Math.fround));
  }
  for (const u of [x, first, second, k1.t, v1.t, k2.t, v2.t, both.keys, both.values]) u.dispose();
  layer.dispose();
  cache.dispose();
  s.dispose();
});

test('bad inputs: overflow past the capacity (nothing written), mismatched batch, heads, dtype, masks; grad mode; disposed', (t) => {
  const rng = new Rng(54);
  const s = stack(rng, 2, 'float32');
  const attn = s.blocks[0].self_attn;
  const cache = new nn.KVCache({ numLayers: 2, batchSize: 1, numKeyValueHeads: 2, headDim: HEAD_DIM, maxLength: 4 });
  const x3 = randomTensor(rng, [1, 3, CONFIG.hiddenSize]).t;
  const x2 = randomTensor(rng, [1, 2, CONFIG.hiddenSize]).t;
  run(s, x3, 0, cache).dispose();
  assertCode(t, () => run(s, x2, 3, cache), 'ERR_INDEX', /do not fit/);
  t.is(cache.length, 3, 'nothing was written');
  t.true(cache.layers.every((l) => l.length === 3));
  const layer = cache.layer(0);
  const k = ig.zeros([1, 2, 2, HEAD_DIM]);
  assertCode(t, () => layer.update(k, k), 'ERR_INDEX');
  t.is(layer.length, 3);
  const pe1 = s.rope.call(ig.arange(3, 4, { dtype: 'int64' }));
  const pe3 = s.rope.call(ig.arange(0, 3, { dtype: 'int64' }));
  const xb = randomTensor(rng, [2, 1, CONFIG.hiddenSize]).t;
  const pe1b = { cos: pe1.cos.unsqueeze(0).expand(2, 1, HEAD_DIM), sin: pe1.sin.unsqueeze(0).expand(2, 1, HEAD_DIM) };
  assertCode(t, () => ig.noGrad(() => attn.call(xb, pe1b, null, layer)), 'ERR_SHAPE', /batch/);
  const x1 = x2.narrow(1, 0, 1);
  const x64 = x1.to('float64');
  assertCode(t, () => ig.noGrad(() => attn.call(x64, pe1, null, layer)), 'ERR_DTYPE');
  const other = new nn.KVCache({ numLayers: 1, batchSize: 1, numKeyValueHeads: 1, headDim: HEAD_DIM, maxLength: 4 });
  assertCode(t, () => ig.noGrad(() => attn.call(x1, pe1, null, other.layer(0))), 'ERR_SHAPE', /heads/);
  assertCode(t, () => ig.noGrad(() => attn.call(x1, pe1, null, cache as unknown as nn.LayerKVCache)), 'ERR_ARG');
  // an explicit mask must cover the cached positions too: [1, 3 + 1], not [1, 1]
  const short = ig.zeros([1, 1]);
  assertCode(t, () => ig.noGrad(() => attn.call(x1, pe1, short, layer)), 'ERR_SHAPE', /attentionMask/);
  t.is(layer.length, 3);
  // the cache keeps no history: recording with trainable weights is refused
  assertCode(t, () => attn.call(x1, pe1, null, layer), 'ERR_GRAD');
  t.is(layer.length, 3);
  // update() checks
  const wrongShape = ig.zeros([1, 2, 1, HEAD_DIM + 2]);
  const wrongDtype = ig.zeros([1, 2, 1, HEAD_DIM], { dtype: 'float64' });
  const one = ig.zeros([1, 2, 1, HEAD_DIM]);
  const two = ig.zeros([1, 2, 2, HEAD_DIM]);
  assertCode(t, () => layer.update(wrongShape, one), 'ERR_SHAPE');
  assertCode(t, () => layer.update(one, two), 'ERR_SHAPE');
  assertCode(t, () => layer.update(wrongDtype, wrongDtype), 'ERR_DTYPE');
  assertCode(t, () => layer.update(one, null as unknown as Tensor), 'ERR_ARG');
  t.is(layer.length, 3);
  assertCode(t, () => cache.layer(2), 'ERR_INDEX');
  assertCode(t, () => cache.layer(-1), 'ERR_INDEX');
  // options
  const base = { numLayers: 1, batchSize: 1, numKeyValueHeads: 2, headDim: 4, maxLength: 8 };
  assertCode(t, () => new nn.KVCache({ ...base, maxLength: -1 }), 'ERR_ARG');
  assertCode(t, () => new nn.KVCache({ ...base, headDim: 0 }), 'ERR_ARG');
  assertCode(t, () => new nn.KVCache({ ...base, numLayers: 1.5 }), 'ERR_ARG');
  assertCode(t, () => new nn.KVCache({ ...base, dtype: 'int32' }), 'ERR_DTYPE');
  assertCode(t, () => new nn.KVCache({ ...base, device: 'tpu' as ig.Device }), 'ERR_DEVICE', /unknown device/);
  if (!ig.cuda.isAvailable()) assertCode(t, () => new nn.KVCache({ ...base, device: 'cuda' }), 'ERR_DEVICE', /not available/);
  assertCode(t, () => new nn.KVCache(null as unknown as nn.KVCacheOptions), 'ERR_ARG');
  // disposed
  other.dispose();
  const gone = new nn.KVCache({ numLayers: 1, batchSize: 1, numKeyValueHeads: 2, headDim: HEAD_DIM, maxLength: 4 });
  gone.dispose();
  t.true(gone.layer(0).isDisposed);
  assertCode(t, () => gone.layer(0).update(one, one), 'ERR_DISPOSED');
  assertCode(t, () => ig.noGrad(() => attn.call(x1, pe1, null, gone.layer(0))), 'ERR_DISPOSED');
  for (const u of [x3, x2, k, pe1.cos, pe1.sin, pe3.cos, pe3.sin, xb, pe1b.cos, pe1b.sin, x1, x64, short, wrongShape, wrongDtype, one, two]) u.dispose();
  cache.dispose();
  s.dispose();
});

test('memory: decoding in tidy() leaves only the cache; dispose() frees it', (t) => {
  const rng = new Rng(55);
  const s = stack(rng, 2, 'float32');
  const x = randomTensor(rng, [1, 6, CONFIG.hiddenSize]).t;
  ig.tidy(() => s.rope.call(ig.arange(8, { dtype: 'int64' })));  // the rotary tables, grown once
  const level = live();
  const bytes = ig.memory().bytes.cpu;
  const cache = new nn.KVCache({ numLayers: 2, batchSize: 1, numKeyValueHeads: 2, headDim: HEAD_DIM, maxLength: 8 });
  t.is(live(), level + 4, 'keys and values per layer');
  for (let from = 0; from < 6; from += from === 0 ? 3 : 1) {
    const n = from === 0 ? 3 : 1;
    ig.tidy(() => {
      run(s, x.narrow(1, from, n), from, cache);
    });
    t.is(live(), level + 4);
  }
  t.is(ig.memory().bytes.cpu, bytes + 2 * 2 * (2 * 8 * HEAD_DIM * 4));
  cache.dispose();
  t.is(live(), level);
  t.is(ig.memory().bytes.cpu, bytes);
  x.dispose();
  s.dispose();
});
