/**
 * scaledDotProductAttention: values against a float64 reference written from the formula
 * (bottom-right causal alignment, broadcast masks, grouped-query heads, layouts, every float
 * dtype, rows that see no key), gradients by gradcheck and against the composed ops on shapes
 * that span several tiles, results independent of the thread count, bad inputs, memory.
 */
import test, { ExecutionContext } from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { addon, core, NativeHandle } from '../../lib/native';
import { Ref, Rng, assertClose, assertCode, numel, randomTensor, refOf, rowMajorStrides } from '../helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const operandCopies = (): number => (addon as { matmulOperandCopies(): number }).matmulOperandCopies();
const live = () => ig.memory().tensors;

/** Output tolerances per dtype (outputs are convex combinations of values in [-1, 1]). */
const TOLERANCE: Record<DType, [number, number]> = {
  float64: [1e-12, 1e-12],
  float32: [1e-5, 1e-5],
  float16: [4e-3, 2e-3],
  bfloat16: [2e-2, 2e-2],
  int32: [0, 0],
  int64: [0, 0],
  bool: [0, 0],
};

/**
 * Memory layouts of a [B, heads, L, D] input: contiguous; `heads`, a [B, L, heads, D] tensor
 * seen through transpose(1, 2) (how projections arrive); `columns`, the last two dims swapped in
 * memory; `strided`, every other element; `broadcast`, the batch expanded from one.
 */
type Layout = 'contiguous' | 'heads' | 'columns' | 'strided' | 'broadcast';
const LAYOUTS: Layout[] = ['contiguous', 'heads', 'columns', 'strided', 'broadcast'];

function input(rng: Rng, shape: number[], dtype: DType, layout: Layout = 'contiguous'): { t: Tensor; ref: Ref } {
  if (layout === 'heads') {
    const [b, h, l, d] = shape;
    const base = randomTensor(rng, [b, l, h, d], dtype);
    const t = base.t.transpose(1, 2);
    base.t.dispose();
    return { t, ref: refOf(t) };
  }
  return randomTensor(rng, shape, dtype, layout === 'columns' ? 'transposed' : layout);
}

/** The flat index into `shape`'s row-major data of element (b, h, i, j) of its broadcast to 4 dims. */
function broadcastIndex(shape: number[]): (idx: number[]) => number {
  const strides = rowMajorStrides(shape);
  const lead = 4 - shape.length;
  return (idx) => shape.reduce((acc, size, d) => acc + (size === 1 ? 0 : idx[lead + d] * strides[d]), 0);
}

/**
 * softmax(scale * q k^T + mask) v in float64, query head h reading key/value head
 * floor(h / (H / Hkv)); under `causal` query i sees keys j <= Lk - Lq + i. A row that sees no
 * key is zeros.
 */
function refAttention(q: Ref, k: Ref, v: Ref, causal: boolean, scale: number, mask: Ref | null): Ref {
  const [B, H, Lq, D] = q.shape;
  const [, Hkv, Lk] = k.shape;
  const Dv = v.shape[3];
  const group = H / Hkv;
  const maskAt = mask ? broadcastIndex(mask.shape) : null;
  const out = new Float64Array(B * H * Lq * Dv);
  const scores = new Float64Array(Lk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / group);
      const kBase = (b * Hkv + g) * Lk;
      for (let i = 0; i < Lq; i++) {
        const qRow = ((b * H + h) * Lq + i) * D;
        let top = -Infinity;
        for (let j = 0; j < Lk; j++) {
          let s = -Infinity;
          if (!causal || j <= Lk - Lq + i) {
            let dot = 0;
            for (let d = 0; d < D; d++) dot += q.data[qRow + d] * k.data[(kBase + j) * D + d];
            s = scale * dot + (mask && maskAt ? mask.data[maskAt([b, h, i, j])] : 0);
          }
          scores[j] = s;
          top = Math.max(top, s);
        }
        if (top === -Infinity) continue;
        let total = 0;
        for (let j = 0; j < Lk; j++) total += Math.exp(scores[j] - top);
        const oRow = ((b * H + h) * Lq + i) * Dv;
        for (let j = 0; j < Lk; j++) {
          const p = Math.exp(scores[j] - top) / total;
          for (let c = 0; c < Dv; c++) out[oRow + c] += p * v.data[(kBase + j) * Dv + c];
        }
      }
    }
  }
  return { shape: [B, H, Lq, Dv], data: out };
}

/** A mask of `shape` with values in [-2, 2) and about `hidden` of them -Infinity. */
function randomMask(rng: Rng, shape: number[], dtype: DType, hidden = 0.2): { t: Tensor; ref: Ref } {
  const data = Float64Array.from({ length: numel(shape) }, () => (rng.next() < hidden ? -Infinity : rng.uniform(-2, 2)));
  const wide = ig.tensor(data, { shape });
  const t = wide.to(dtype);
  wide.dispose();
  return { t, ref: refOf(t) };
}

interface Problem {
  B: number;
  H: number;
  Hkv: number;
  Lq: number;
  Lk: number;
  D: number;
  Dv: number;
}

function masksFor(p: Problem): number[][] {
  return [[p.Lq, p.Lk], [p.Lk], [p.B, 1, p.Lq, p.Lk], [1, p.H, p.Lq, p.Lk], [p.B, p.H, p.Lq, p.Lk], [p.B, p.H, 1, p.Lk], [1, 1, p.Lq, 1]];
}

function checkForward(t: ExecutionContext, rng: Rng, p: Problem, dtype: DType, causal: boolean, maskShape: number[] | null, layouts: Layout[], scale?: number) {
  const q = input(rng, [p.B, p.H, p.Lq, p.D], dtype, layouts[0]);
  const k = input(rng, [p.B, p.Hkv, p.Lk, p.D], dtype, layouts[1]);
  const v = input(rng, [p.B, p.Hkv, p.Lk, p.Dv], dtype, layouts[2]);
  const mask = maskShape ? randomMask(rng, maskShape, dtype) : null;
  const out = ig.scaledDotProductAttention(q.t, k.t, v.t, { causal, mask: mask?.t, scale });
  t.is(out.dtype, dtype);
  const expected = refAttention(q.ref, k.ref, v.ref, causal, scale ?? 1 / Math.sqrt(p.D), mask?.ref ?? null);
  const what = `${JSON.stringify(p)} ${dtype} causal ${causal} mask ${JSON.stringify(maskShape)} layouts ${layouts} scale ${scale}`;
  assertClose(t, out, expected, TOLERANCE[dtype], what);
  for (const u of [q.t, k.t, v.t, mask?.t, out]) u?.dispose();
}

test('values against the float64 reference: random shapes, GQA, causal (Lq <, =, > Lk), masks, layouts, dtypes', (t) => {
  const rng = new Rng(41);
  for (let trial = 0; trial < 80; trial++) {
    const Hkv = rng.int(1, 2);
    const D = rng.pick([1, 3, 4, 5, 8]);
    const p: Problem = { B: rng.int(1, 2), H: Hkv * rng.pick([1, 2, 4]), Hkv, Lq: rng.int(1, 6), Lk: rng.int(1, 7), D, Dv: rng.next() < 0.5 ? D : rng.int(1, 6) };
    const causal = rng.next() < 0.5;
    const maskShape = rng.next() < 0.5 ? rng.pick(masksFor(p)) : null;
    const layouts = [0, 1, 2].map(() => rng.pick(LAYOUTS));
    const scale = rng.next() < 0.2 ? rng.uniform(0.1, 2) : undefined;
    checkForward(t, rng, p, rng.pick(FLOATS), causal, maskShape, layouts, scale);
  }
});

test('values on shapes spanning several query blocks and key tiles (online softmax), decoding and long keys', (t) => {
  const rng = new Rng(42);
  const problems: [Problem, boolean, number[] | null][] = [
    [{ B: 1, H: 2, Hkv: 1, Lq: 130, Lk: 130, D: 16, Dv: 16 }, true, null],
    [{ B: 1, H: 2, Hkv: 2, Lq: 70, Lk: 600, D: 8, Dv: 12 }, true, [70, 600]],
    [{ B: 2, H: 4, Hkv: 2, Lq: 1, Lk: 600, D: 16, Dv: 16 }, true, null],
    [{ B: 1, H: 1, Hkv: 1, Lq: 65, Lk: 300, D: 5, Dv: 3 }, false, [1, 1, 65, 300]],
  ];
  for (const [p, causal, maskShape] of problems) {
    for (const dtype of ['float32', 'float64', 'bfloat16'] as DType[]) checkForward(t, rng, p, dtype, causal, maskShape, ['heads', 'heads', 'heads']);
  }
});

test('the scores grow along the keys: later tiles rescale what earlier ones accumulated', (t) => {
  // q . k_j grows with j, so each tile of 256 keys holds a larger maximum than the last
  const [Lk, D] = [700, 4];
  const q = ig.ones([1, 1, 1, D]);
  const kData = Float32Array.from({ length: Lk * D }, (_, i) => Math.floor(i / D) / 40);
  const k = ig.tensor(kData, { shape: [1, 1, Lk, D] });
  const v = randomTensor(new Rng(43), [1, 1, Lk, 3]);
  const out = ig.scaledDotProductAttention(q, k, v.t, { scale: 1 });
  assertClose(t, out, refAttention(refOf(q), refOf(k), v.ref, false, 1, null), TOLERANCE.float32);
  for (const u of [q, k, v.t, out]) u.dispose();
});

test('outputs and gradients keep their inputs\' layouts; projections seen through transpose(1, 2) are not copied', (t) => {
  const rng = new Rng(44);
  const [B, H, L, D] = [2, 4, 5, 8];
  const q = input(rng, [B, H, L, D], 'float32', 'heads').t;
  const k = input(rng, [B, 2, L, D], 'float32', 'heads').t;
  const v = input(rng, [B, 2, L, D], 'float32', 'columns').t;
  const copies = operandCopies();
  const out = ig.scaledDotProductAttention(q, k, v, { causal: true });
  t.is(operandCopies(), copies, 'no operand was copied');
  t.deepEqual(out.strides, [L * H * D, D, H * D, 1], '[B, Lq, H, Dv] in memory, as q');
  t.true(out.transpose(1, 2).isContiguous());
  // the native backward's gradients (a leaf's .grad is a contiguous copy of its own)
  const native = addon as { attentionForward(...args: unknown[]): number[]; attentionBackward(...args: unknown[]): number[] };
  const [hq, hk, hv] = [q, k, v].map((x) => x.handle('test'));
  const [hout, hlse] = native.attentionForward(hq, hk, hv, null, true, 0.5);
  const grads = native.attentionBackward(hout, hq, hk, hv, hout, hlse, null, true, 0.5);
  t.deepEqual(grads.map((h) => core.meta(h as NativeHandle).strides), [
    [L * H * D, D, H * D, 1],
    [L * 2 * D, D, 2 * D, 1],
    [2 * L * D, L * D, D, 1],
  ]);
  for (const h of [hout, hlse, ...grads]) core.dispose(h as NativeHandle);
  const plain = input(rng, [B, H, L, D], 'float32').t;
  const contiguousOut = ig.scaledDotProductAttention(plain, k, v);
  t.true(contiguousOut.isContiguous());
  for (const u of [q, k, v, out, plain, contiguousOut]) u.dispose();
});

test('rows that see no key give zeros and zero gradients, not NaN', (t) => {
  const rng = new Rng(45);
  for (const dtype of FLOATS) {
    // causal with Lq > Lk: queries 0 and 1 sit before every key; the mask hides all keys of row 3
    const [Lq, Lk, D] = [5, 3, 4];
    const q = input(rng, [1, 2, Lq, D], dtype).t.requiresGrad_();
    const k = input(rng, [1, 1, Lk, D], dtype).t.requiresGrad_();
    const v = input(rng, [1, 1, Lk, D], dtype).t.requiresGrad_();
    const maskData = Float64Array.from({ length: Lq * Lk }, (_, i) => (Math.floor(i / Lk) === 3 ? -Infinity : 0));
    const mask = ig.tensor(maskData, { shape: [Lq, Lk], dtype });
    const out = ig.scaledDotProductAttention(q, k, v, { causal: true, mask });
    const values = refOf(out).data;
    for (const h of [0, 1]) {
      for (const i of [0, 1, 3]) t.true(values.slice(((h * Lq + i) * D), (h * Lq + i + 1) * D).every((x) => x === 0), `${dtype} row ${i} head ${h} is zeros`);
      t.true(values.slice(((h * Lq + 2) * D), (h * Lq + 3) * D).some((x) => x !== 0));
    }
    out.backward(ig.onesLike(out));
    const dq = refOf(q.grad!).data;
    t.true([...dq, ...refOf(k.grad!).data, ...refOf(v.grad!).data].every(Number.isFinite), `${dtype} gradients are finite`);
    for (const h of [0, 1]) for (const i of [0, 1, 3]) t.true(dq.slice((h * Lq + i) * D, (h * Lq + i + 1) * D).every((x) => x === 0));
    for (const u of [q, k, v, mask, out]) u.dispose();
  }
});

test('gradcheck in float64: causal, non-causal, GQA, masks, Lq < Lk, separate value dim', (t) => {
  const rng = new Rng(46);
  const cases: [Problem, boolean, number[] | null][] = [
    [{ B: 1, H: 2, Hkv: 2, Lq: 3, Lk: 3, D: 3, Dv: 3 }, true, null],
    [{ B: 2, H: 2, Hkv: 1, Lq: 3, Lk: 4, D: 2, Dv: 3 }, false, null],
    [{ B: 1, H: 4, Hkv: 1, Lq: 2, Lk: 5, D: 3, Dv: 2 }, true, null],
    [{ B: 2, H: 2, Hkv: 2, Lq: 3, Lk: 4, D: 2, Dv: 2 }, false, [2, 1, 3, 4]],
    [{ B: 1, H: 2, Hkv: 1, Lq: 4, Lk: 4, D: 3, Dv: 2 }, true, [4, 4]],
  ];
  for (const [p, causal, maskShape] of cases) {
    const q = input(rng, [p.B, p.H, p.Lq, p.D], 'float64', 'heads').t.requiresGrad_();
    const k = input(rng, [p.B, p.Hkv, p.Lk, p.D], 'float64').t.requiresGrad_();
    const v = input(rng, [p.B, p.Hkv, p.Lk, p.Dv], 'float64', 'columns').t.requiresGrad_();
    const mask = maskShape ? randomMask(rng, maskShape, 'float64', 0.1).t : null;
    t.true(ig.gradcheck((a, b, c) => ig.scaledDotProductAttention(a, b, c, { causal, mask }), [q, k, v]), JSON.stringify(p));
    for (const u of [q, k, v, mask]) u?.dispose();
  }
});

/** softmax(scale * q k^T + mask) v from matmul, softmax and views, with k and v repeated over the groups. */
function composed(q: Tensor, k: Tensor, v: Tensor, causal: boolean, mask: Tensor | null): Tensor {
  return ig.tidy(() => {
    const [B, H, Lq, D] = q.shape;
    const [, Hkv, Lk] = k.shape;
    const repeat = (x: Tensor) => x.unsqueeze(2).expand(B, Hkv, H / Hkv, Lk, x.shape[3]).reshape(B, H, Lk, x.shape[3]);
    let scores = ig.mul(ig.matmul(q, repeat(k).mT), 1 / Math.sqrt(D));
    if (causal) {
      const hide = Float64Array.from({ length: Lq * Lk }, (_, i) => (i % Lk > Lk - Lq + Math.floor(i / Lk) ? -Infinity : 0));
      scores = ig.add(scores, ig.tensor(hide, { shape: [Lq, Lk], dtype: q.dtype }));
    }
    if (mask) scores = ig.add(scores, mask);
    return ig.matmul(ig.softmax(scores, -1), repeat(v));
  });
}

/** The gradients of sum(f(q, k, v) * w) for leaves q, k, v (left as they were), as references. */
function gradsOf(f: (q: Tensor, k: Tensor, v: Tensor) => Tensor, inputs: Tensor[], weight: Tensor): Ref[] {
  return ig.tidy(() => {
    inputs.forEach((x) => x.requiresGrad_());
    f(inputs[0], inputs[1], inputs[2]).backward(weight);
    const grads = inputs.map((x) => refOf(x.grad!));
    inputs.forEach((x) => {
      x.grad!.dispose();
      x.grad = null;
      x.requiresGrad_(false);
    });
    return grads;
  });
}

test('gradients on shapes spanning several blocks and tiles: float64 against the composed ops, other dtypes against float64', (t) => {
  const rng = new Rng(47);
  const cases: [Problem, boolean, number[] | null][] = [
    [{ B: 1, H: 4, Hkv: 2, Lq: 130, Lk: 300, D: 8, Dv: 6 }, true, null],
    [{ B: 4, H: 4, Hkv: 2, Lq: 40, Lk: 40, D: 16, Dv: 16 }, true, [4, 1, 40, 40]],
    [{ B: 1, H: 3, Hkv: 1, Lq: 70, Lk: 270, D: 5, Dv: 5 }, false, [70, 270]],
  ];
  for (const [p, causal, maskShape] of cases) {
    const q = input(rng, [p.B, p.H, p.Lq, p.D], 'float64', 'heads');
    const k = input(rng, [p.B, p.Hkv, p.Lk, p.D], 'float64', 'heads');
    const v = input(rng, [p.B, p.Hkv, p.Lk, p.Dv], 'float64', 'heads');
    const mask = maskShape ? randomMask(rng, maskShape, 'float64', 0) : null;  // no row fully hidden: the composed ops give NaN there
    const weight = randomTensor(rng, [p.B, p.H, p.Lq, p.Dv], 'float64').t;
    const fused = (a: Tensor, b: Tensor, c: Tensor) => ig.scaledDotProductAttention(a, b, c, { causal, mask: mask?.t });
    const expected = gradsOf(fused, [q.t, k.t, v.t], weight);
    const reference = gradsOf((a, b, c) => composed(a, b, c, causal, mask?.t ?? null), [q.t, k.t, v.t], weight);
    const scaleOf = (r: Ref) => r.data.reduce((m, x) => Math.max(m, Math.abs(x)), 1e-3);
    expected.forEach((g, i) => {
      const asTensor = ig.tensor(g.data, { shape: g.shape, dtype: 'float64' });
      assertClose(t, asTensor, reference[i], [1e-9, 1e-11 * scaleOf(reference[i])], `${JSON.stringify(p)} float64 gradient ${'qkv'[i]}`);
      asTensor.dispose();
    });
    for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
      const low = [q.t, k.t, v.t].map((x) => x.to(dtype));
      const lowMask = mask?.t.to(dtype);
      const lowWeight = weight.to(dtype);
      const got = gradsOf((a, b, c) => ig.scaledDotProductAttention(a, b, c, { causal, mask: lowMask }), low, lowWeight);
      // the same op in float64 on the rounded inputs
      const wide = low.map((x) => x.to('float64'));
      const wideMask = lowMask?.to('float64');
      const want = gradsOf((a, b, c) => ig.scaledDotProductAttention(a, b, c, { causal, mask: wideMask }), wide, lowWeight.to('float64'));
      const rel = { float32: 3e-5, float16: 1e-2, bfloat16: 6e-2 }[dtype as 'float32'];
      got.forEach((g, i) => {
        const asTensor = ig.tensor(g.data, { shape: g.shape, dtype: 'float64' });
        assertClose(t, asTensor, want[i], [rel, rel * scaleOf(want[i])], `${JSON.stringify(p)} ${dtype} gradient ${'qkv'[i]}`);
        asTensor.dispose();
      });
      for (const u of [...low, ...wide, lowMask, wideMask, lowWeight]) u?.dispose();
    }
    for (const u of [q.t, k.t, v.t, mask?.t, weight]) u?.dispose();
  }
});

test('results do not depend on the thread count', (t) => {
  const rng = new Rng(48);
  const threads = ig.getNumThreads();
  const q = input(rng, [1, 4, 150, 16], 'float32', 'heads');
  const k = input(rng, [1, 1, 300, 16], 'float32', 'heads');
  const v = input(rng, [1, 1, 300, 16], 'float32', 'heads');
  const weight = randomTensor(rng, [1, 4, 150, 16]).t;
  const run = (n: number) => {
    ig.setNumThreads(n);
    const grads = gradsOf((a, b, c) => ig.scaledDotProductAttention(a, b, c, { causal: true }), [q.t, k.t, v.t], weight);
    const out = ig.noGrad(() => ig.scaledDotProductAttention(q.t, k.t, v.t, { causal: true }));
    const values = refOf(out);
    out.dispose();
    return [values, ...grads].map((r) => Array.from(r.data));
  };
  try {
    t.deepEqual(run(1), run(Math.max(2, threads)));
  } finally {
    ig.setNumThreads(threads);
  }
  for (const u of [q.t, k.t, v.t, weight]) u.dispose();
});

test('bad inputs', (t) => {
  const f = (shape: number[], dtype: DType = 'float32') => ig.zeros(shape, { dtype });
  const q = f([2, 4, 3, 8]);
  const k = f([2, 2, 5, 8]);
  const v = f([2, 2, 5, 6]);
  const sdpa = ig.scaledDotProductAttention;
  const made: Tensor[] = [q, k, v];
  const use = (shape: number[], dtype: DType = 'float32') => {
    const x = f(shape, dtype);
    made.push(x);
    return x;
  };
  t.deepEqual(sdpa(q, k, v).shape, [2, 4, 3, 6]);
  // rank
  assertCode(t, () => sdpa(use([4, 3, 8]), k, v), 'ERR_SHAPE', /query must have 4 dims/);
  assertCode(t, () => sdpa(q, use([2, 2, 1, 5, 8]), v), 'ERR_SHAPE', /key must have 4 dims/);
  assertCode(t, () => sdpa(q, k, use([10, 6])), 'ERR_SHAPE', /value must have 4 dims/);
  // mismatched batch, head dim, heads, lengths
  assertCode(t, () => sdpa(q, use([3, 2, 5, 8]), use([3, 2, 5, 6])), 'ERR_SHAPE', /batch/);
  assertCode(t, () => sdpa(q, k, use([1, 2, 5, 6])), 'ERR_SHAPE', /batch/);
  assertCode(t, () => sdpa(q, use([2, 2, 5, 7]), v), 'ERR_SHAPE', /head dims/);
  assertCode(t, () => sdpa(q, use([2, 3, 5, 8]), use([2, 3, 5, 6])), 'ERR_SHAPE', /divide/);
  assertCode(t, () => sdpa(q, k, use([2, 1, 5, 6])), 'ERR_SHAPE', /head counts/);
  assertCode(t, () => sdpa(q, k, use([2, 2, 4, 6])), 'ERR_SHAPE', /lengths/);
  assertCode(t, () => sdpa(use([2, 4, 3, 0]), use([2, 2, 5, 0]), v), 'ERR_SHAPE', /positive/);
  // dtypes
  assertCode(t, () => sdpa(use([2, 4, 3, 8], 'int32'), k, v), 'ERR_DTYPE');
  assertCode(t, () => sdpa(q, use([2, 2, 5, 8], 'int64'), v), 'ERR_DTYPE');
  assertCode(t, () => sdpa(q, k, use([2, 2, 5, 6], 'float64')), 'ERR_DTYPE', /one dtype/);
  assertCode(t, () => sdpa(q, use([2, 2, 5, 8], 'bfloat16'), v), 'ERR_DTYPE', /one dtype/);
  // masks
  assertCode(t, () => sdpa(q, k, v, { mask: use([3, 4]) }), 'ERR_SHAPE', /mask/);
  assertCode(t, () => sdpa(q, k, v, { mask: use([3, 2, 3, 5]) }), 'ERR_SHAPE', /mask/);
  assertCode(t, () => sdpa(q, k, v, { mask: use([1, 2, 4, 3, 5]) }), 'ERR_SHAPE', /mask/);
  assertCode(t, () => sdpa(q, k, v, { mask: use([3, 5], 'float64') }), 'ERR_DTYPE', /mask/);
  assertCode(t, () => sdpa(q, k, v, { mask: use([3, 5], 'bool') }), 'ERR_DTYPE', /mask/);
  assertCode(t, () => sdpa(q, k, v, { mask: [[0]] as unknown as Tensor }), 'ERR_ARG');
  // options and arguments
  assertCode(t, () => sdpa(q, k, v, { causal: 1 as unknown as boolean }), 'ERR_ARG');
  assertCode(t, () => sdpa(q, k, v, { scale: NaN }), 'ERR_ARG');
  assertCode(t, () => sdpa(q, k, v, { scale: Infinity }), 'ERR_ARG');
  assertCode(t, () => sdpa(q, k, v, { scale: '1' as unknown as number }), 'ERR_ARG');
  assertCode(t, () => sdpa(q, k, v, null as unknown as ig.AttentionOpOptions), 'ERR_ARG');
  assertCode(t, () => sdpa(null as unknown as Tensor, k, v), 'ERR_ARG');
  // disposed
  const gone = use([2, 2, 5, 8]);
  gone.dispose();
  assertCode(t, () => sdpa(q, gone, v), 'ERR_DISPOSED');
  const goneMask = use([3, 5]);
  goneMask.dispose();
  assertCode(t, () => sdpa(q, k, v, { mask: goneMask }), 'ERR_DISPOSED');
  for (const x of made) x.dispose();
});

test('the native entry points validate on their own', (t) => {
  const native = addon as {
    attentionForward(...args: unknown[]): unknown;
    attentionBackward(...args: unknown[]): unknown;
  };
  const made: Tensor[] = [];
  const h = (shape: number[], dtype: DType = 'float32') => {
    const x = ig.zeros(shape, { dtype });
    made.push(x);
    return x.handle('test');
  };
  const [q, k, v] = [h([1, 2, 3, 4]), h([1, 1, 5, 4]), h([1, 1, 5, 4])];
  assertCode(t, () => native.attentionForward(h([2, 3, 4]), k, v, null, false, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionForward(q, h([1, 1, 5, 3]), v, null, false, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionForward(q, h([1, 3, 5, 4]), h([1, 3, 5, 4]), null, false, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionForward(q, k, h([1, 1, 5, 4], 'int32'), null, false, 0.5), 'ERR_DTYPE');
  assertCode(t, () => native.attentionForward(q, k, v, h([4, 5]), false, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionForward(q, k, v, h([3, 5], 'float64'), false, 0.5), 'ERR_DTYPE');
  assertCode(t, () => native.attentionForward(q, k, v, null, false, NaN), 'ERR_ARG');
  const [dout, out, lse] = [h([1, 2, 3, 4]), h([1, 2, 3, 4]), h([1, 2, 3])];
  assertCode(t, () => native.attentionBackward(h([1, 2, 3, 5]), q, k, v, out, lse, null, true, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionBackward(dout, q, k, v, out, h([1, 2, 4]), null, true, 0.5), 'ERR_SHAPE');
  assertCode(t, () => native.attentionBackward(dout, q, k, v, out, h([1, 2, 3], 'float64'), null, true, 0.5), 'ERR_DTYPE');
  assertCode(t, () => native.attentionBackward(dout, q, k, v, h([1, 2, 3, 4], 'float64'), lse, null, true, 0.5), 'ERR_DTYPE');
  for (const x of made) x.dispose();
});

test('memory: a forward and backward leave only the output and the gradients; the graph keeps q, k, v, out and lse', (t) => {
  const rng = new Rng(49);
  const q = input(rng, [2, 4, 9, 8], 'float32', 'heads').t.requiresGrad_();
  const k = input(rng, [2, 2, 9, 8], 'float32', 'heads').t.requiresGrad_();
  const v = input(rng, [2, 2, 9, 8], 'float32', 'heads').t.requiresGrad_();
  const mask = randomMask(rng, [9, 9], 'float32', 0).t;
  const level = live();
  const bytes = ig.memory().bytes.cpu;
  const out = ig.scaledDotProductAttention(q, k, v, { causal: true, mask });
  t.is(live(), level + 7, 'the output, and the aliases of q, k, v, out, the logsumexp and the mask the graph holds');
  const ones = ig.onesLike(out);
  out.backward(ones);
  ones.dispose();
  t.is(live(), level + 4, 'the output and three gradients');
  t.is(ig.memory().bytes.cpu, bytes + 4 * (2 * (2 * 4 * 9 * 8) + 2 * (2 * 2 * 9 * 8)), 'the logsumexp was freed with the graph');
  for (const x of [out, q, k, v, mask]) x.dispose();
  t.is(live(), level - 4);
  // without grad mode nothing is recorded or kept
  const a = input(rng, [1, 2, 4, 4], 'float32').t;
  const before = live();
  ig.tidy(() => {
    ig.scaledDotProductAttention(a, a, a, { causal: true });
  });
  t.is(live(), before);
  a.dispose();
});
