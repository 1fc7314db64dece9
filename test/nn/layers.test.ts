import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor, nn } from '../../lib';
import { LAYOUTS, Layout, Ref, Rng, assertClose, assertCode, numel, randomShape, randomTensor, refOf } from '../helpers';
import { randomizeParameters } from './models';
import { refLinear, refRmsNorm } from './reference';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const MACHINE_EPS: Record<string, number> = { float32: 2 ** -23, float64: 2 ** -52, bfloat16: 2 ** -7, float16: 2 ** -10 };

function stats(values: ArrayLike<number>): { mean: number; variance: number; min: number; max: number } {
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    sum += values[i];
    min = Math.min(min, values[i]);
    max = Math.max(max, values[i]);
  }
  const mean = sum / values.length;
  let sq = 0;
  for (let i = 0; i < values.length; i++) sq += (values[i] - mean) ** 2;
  return { mean, variance: sq / values.length, min, max };
}

test('Linear: forward against a float64 reference (dtypes, layouts, leading dims, with and without bias)', (t) => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 60; trial++) {
    const dtype = rng.pick(FLOATS);
    const [inF, outF] = [rng.int(1, 9), rng.int(1, 9)];
    const bias = rng.next() < 0.5;
    const lin = new nn.Linear(inF, outF, { bias, dtype });
    t.is(lin.weight.dtype, dtype);
    t.deepEqual(lin.namedParameters().map(([n, p]) => [n, p.shape]), bias ? [['weight', [outF, inF]], ['bias', [outF]]] : [['weight', [outF, inF]]]);
    const x = randomTensor(rng, [...randomShape(rng, 3, 4), inF], dtype, rng.pick(LAYOUTS));
    const y = lin.call(x.t);
    assertClose(t, y, refLinear(x.ref, refOf(lin.weight), lin.bias && refOf(lin.bias)), undefined, `Linear ${dtype} ${inF}->${outF} bias ${bias}`);
    for (const u of [x.t, y]) u.dispose();
    lin.dispose();
  }
});

test('Linear: Kaiming-uniform init within +-1/sqrt(inFeatures), seeded', (t) => {
  ig.manualSeed(21);
  const lin = new nn.Linear(400, 300);
  const bound = 1 / Math.sqrt(400);
  for (const [name, p] of lin.namedParameters()) {
    const s = stats(refOf(p).data);
    const n = p.numel;
    t.true(s.min >= -bound && s.max < bound, `${name} within [-${bound}, ${bound}): [${s.min}, ${s.max}]`);
    t.true(s.max > bound * (1 - 20 / n) && s.min < -bound * (1 - 20 / n), `${name} spans the range`);
    const sd = bound / Math.sqrt(3);
    t.true(Math.abs(s.mean) < (5 * sd) / Math.sqrt(n), `${name} mean ${s.mean}`);
    if (n > 1000) t.true(Math.abs(s.variance / (sd * sd) - 1) < 0.03, `${name} variance ${s.variance} vs ${sd * sd}`);
  }
  ig.manualSeed(21);
  const again = new nn.Linear(400, 300);
  t.deepEqual(refOf(again.weight).data, refOf(lin.weight).data, 'the same seed gives the same weights');
  t.deepEqual(refOf(again.bias!).data, refOf(lin.bias!).data);
  const other = new nn.Linear(400, 300);
  t.notDeepEqual(refOf(other.weight).data, refOf(lin.weight).data);
  for (const m of [lin, again, other]) m.dispose();
  for (const dtype of ['bfloat16', 'float16', 'float64'] as DType[]) {
    const small = new nn.Linear(16, 8, { dtype });
    const s = stats(refOf(small.weight).data);
    t.true(s.min >= -0.25 && s.max <= 0.25, `${dtype} within the bound`);
    small.dispose();
  }
  const empty = new nn.Linear(0, 3);
  t.deepEqual(empty.weight.shape, [3, 0]);
  t.deepEqual(empty.bias!.toArray(), [0, 0, 0], 'no inputs: a zero bias');
  empty.dispose();
});

test('Linear, Embedding: bad arguments', (t) => {
  assertCode(t, () => new nn.Linear(-1, 2), 'ERR_ARG');
  assertCode(t, () => new nn.Linear(2.5, 2), 'ERR_ARG');
  assertCode(t, () => new nn.Linear(2, 2, { dtype: 'int32' }), 'ERR_DTYPE');
  assertCode(t, () => new nn.Linear(2, 2, { dtype: 'float8' as DType }), 'ERR_DTYPE');
  assertCode(t, () => new nn.Embedding(3, -2), 'ERR_ARG');
  assertCode(t, () => new nn.Embedding(3, 2, { dtype: 'bool' }), 'ERR_DTYPE');
  const lin = new nn.Linear(3, 2);
  const x = ig.ones([2, 4]);
  assertCode(t, () => lin.call(x), 'ERR_SHAPE');
  const x64 = ig.ones([2, 3], { dtype: 'float64' });
  assertCode(t, () => lin.call(x64), 'ERR_DTYPE');
  for (const u of [x, x64]) u.dispose();
  lin.dispose();
});

test('Embedding: rows picked by int32/int64 indices of any shape; N(0, 1) init', (t) => {
  const rng = new Rng(12);
  for (let trial = 0; trial < 30; trial++) {
    const dtype = rng.pick(FLOATS);
    const [num, dim] = [rng.int(1, 12), rng.int(1, 6)];
    const emb = new nn.Embedding(num, dim, { dtype });
    const shape = randomShape(rng, 3, 4);
    const idx = Array.from({ length: numel(shape) }, () => rng.int(0, num - 1));
    const indices = ig.tensor(Int32Array.from(idx), { shape }).to(rng.pick(['int32', 'int64'] as DType[]));
    const w = refOf(emb.weight);
    const expected: Ref = { shape: [...shape, dim], data: new Float64Array(idx.length * dim) };
    idx.forEach((row, i) => expected.data.set(w.data.subarray(row * dim, (row + 1) * dim), i * dim));
    const out = emb.call(indices);
    assertClose(t, out, expected, [0, 0], `Embedding ${dtype}`);
    for (const u of [indices, out]) u.dispose();
    emb.dispose();
  }
  ig.manualSeed(4);
  const big = new nn.Embedding(1000, 64);
  const s = stats(refOf(big.weight).data);
  t.true(Math.abs(s.mean) < 0.02 && Math.abs(s.variance - 1) < 0.03, `mean ${s.mean}, variance ${s.variance}`);
  const bad = ig.tensor(Int32Array.from([0, 1000]));
  assertCode(t, () => big.call(bad), 'ERR_INDEX');
  const fractional = ig.tensor([0, 1]);
  assertCode(t, () => big.call(fractional), 'ERR_DTYPE');
  for (const u of [bad, fractional]) u.dispose();
  big.dispose();
});

/** Reference normalisation over the trailing n elements of each row. */
function refLayerNorm(x: Ref, n: number, eps: number, w: Ref | null, b: Ref | null): Ref {
  const data = new Float64Array(x.data.length);
  for (let start = 0; start < data.length; start += n) {
    const row = x.data.subarray(start, start + n);
    const mean = row.reduce((a, v) => a + v, 0) / n;
    const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / n;
    for (let i = 0; i < n; i++) data[start + i] = ((row[i] - mean) / Math.sqrt(variance + eps)) * (w ? w.data[i] : 1) + (b ? b.data[i] : 0);
  }
  return { shape: x.shape.slice(), data };
}

/**
 * A random input shape, the trailing part of it to normalise, and a layout: broadcast only along
 * a leading dim (broadcast inside a row would make it constant, where any rounding of the mean
 * is amplified by 1/sqrt(eps)).
 */
function normCase(rng: Rng): { shape: number[]; normalized: number[]; layout: Layout } {
  const shape = randomShape(rng, 4, 6, 1);
  const k = rng.int(1, Math.min(2, shape.length));
  const broadcastDim = shape.findIndex((d) => d > 1);
  const layouts = LAYOUTS.filter((l) => l !== 'broadcast' || (broadcastDim >= 0 && broadcastDim < shape.length - k));
  return { shape, normalized: shape.slice(shape.length - k), layout: rng.pick(layouts) };
}

test('LayerNorm: ones/zeros init; forward against a float64 reference (affine or not, bias or not)', (t) => {
  const rng = new Rng(13);
  for (let trial = 0; trial < 50; trial++) {
    const dtype = rng.pick(FLOATS);
    const { shape, normalized, layout } = normCase(rng);
    const affine = rng.next() < 0.8;
    const bias = rng.next() < 0.7;
    const eps = rng.pick([1e-5, 1e-3, 0.1]);
    const ln = new nn.LayerNorm(normalized.length === 1 && rng.next() < 0.5 ? normalized[0] : normalized, { eps, elementwiseAffine: affine, bias, dtype });
    const names = ln.namedParameters().map(([n]) => n);
    t.deepEqual(names, affine ? (bias ? ['weight', 'bias'] : ['weight']) : []);
    if (affine) {
      t.true(refOf(ln.weight!).data.every((v) => v === 1));
      if (bias) t.true(refOf(ln.bias!).data.every((v) => v === 0));
      randomizeParameters(ln, rng, 0.5, 2);
    }
    const x = randomTensor(rng, shape, dtype, layout, -3, 5);
    const out = ln.call(x.t);
    const ref = refLayerNorm(x.ref, numel(normalized), eps, ln.weight && refOf(ln.weight), ln.bias && refOf(ln.bias));
    assertClose(t, out, ref, undefined, `LayerNorm ${dtype} ${JSON.stringify(shape)} over ${JSON.stringify(normalized)}`);
    for (const u of [x.t, out]) u.dispose();
    ln.dispose();
  }
  assertCode(t, () => new nn.LayerNorm([]), 'ERR_SHAPE');
  assertCode(t, () => new nn.LayerNorm([2, -1]), 'ERR_ARG');
  const ln = new nn.LayerNorm(4);
  const x = ig.ones([2, 3]);
  assertCode(t, () => ln.call(x), 'ERR_SHAPE');
  x.dispose();
  ln.dispose();
});

test('RMSNorm: forward against a float64 reference; default eps is the machine epsilon of the dtype', (t) => {
  const rng = new Rng(14);
  for (let trial = 0; trial < 50; trial++) {
    const dtype = rng.pick(FLOATS);
    const { shape, normalized, layout } = normCase(rng);
    const affine = rng.next() < 0.8;
    const eps = rng.pick([undefined, 1e-6, 0.1]);
    const norm = new nn.RMSNorm(normalized, { eps, elementwiseAffine: affine, dtype });
    t.deepEqual(norm.namedParameters().map(([n]) => n), affine ? ['weight'] : []);
    if (affine) randomizeParameters(norm, rng, 0.5, 2);
    // small inputs, where eps matters as much as the mean of squares
    const x = randomTensor(rng, shape, dtype, layout, -0.05, 0.05);
    const out = norm.call(x.t);
    const rows: Ref = { shape: [x.ref.data.length / numel(normalized), numel(normalized)], data: x.ref.data };
    const w = norm.weight ? { shape: [numel(normalized)], data: refOf(norm.weight).data } : null;
    const ref = refRmsNorm(rows, w, eps ?? MACHINE_EPS[dtype]);
    assertClose(t, out, { shape: x.ref.shape, data: ref.data }, undefined, `RMSNorm ${dtype} eps ${eps}`);
    for (const u of [x.t, out]) u.dispose();
    norm.dispose();
  }
});

test('Dropout: evaluation mode and p = 0 return the input itself; p = 1 gives zeros; bad p', (t) => {
  const x = ig.randn([4, 5]);
  const drop = new nn.Dropout(0.3);
  drop.eval();
  t.is(drop.call(x), x);
  const none = new nn.Dropout(0);
  t.true(none.training);
  t.is(none.call(x), x);
  const all = new nn.Dropout(1);
  const zeros = all.call(x);
  t.not(zeros, x);
  t.true(refOf(zeros).data.every((v) => v === 0));
  t.is(new nn.Dropout().p, 0.5);
  for (const p of [-0.1, 1.5, NaN, '0.5' as unknown as number]) assertCode(t, () => new nn.Dropout(p), 'ERR_ARG');
  assertCode(t, () => drop.call([1, 2] as unknown as Tensor), 'ERR_ARG');
  t.deepEqual(drop.namedParameters(), []);
  for (const u of [x, zeros]) u.dispose();
});
