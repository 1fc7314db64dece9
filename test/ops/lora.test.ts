import test, { ExecutionContext } from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { addon, NativeHandle } from '../../lib/native';
import { LAYOUTS, Layout, Ref, Rng, assertClose, assertCode, makeTensor, numel, onCuda, randomShape, randomTensor, refBroadcast, refOf } from '../helpers';

const diagnostics = addon as { matmulOperandCopies(): number };

/** The tensors of one layer, each with its float64 reference values. */
interface Layer {
  x: { t: Tensor; ref: Ref };
  w: { t: Tensor; ref: Ref };
  bias: { t: Tensor; ref: Ref } | null;
  a: { t: Tensor; ref: Ref };
  b: { t: Tensor; ref: Ref };
  mask: { t: Tensor; ref: Ref } | null;
  scale: number;
}

function disposeLayer(l: Layer): void {
  for (const p of [l.x, l.w, l.bias, l.a, l.b, l.mask]) p?.t.dispose();
}

/** Rows of x (all leading dims together) and its features. */
function rowsOf(x: Ref): [number, number] {
  const inF = x.shape[x.shape.length - 1];
  return [numel(x.shape.slice(0, -1)), inF];
}

/** dropout(x) and the mask broadcast to x's shape, as references (no mask: x and ones). */
function refDropout(l: Layer): { xd: Ref; mask: Ref } {
  const mask = l.mask ? refBroadcast(l.x.ref, l.mask.ref, (_, m) => m) : { shape: l.x.ref.shape, data: new Float64Array(numel(l.x.ref.shape)).fill(1) };
  return { xd: refBroadcast(l.x.ref, mask, (x, m) => x * m), mask };
}

/** PEFT's forward in float64 loops: y = x W^T + bias + s * dropout(x) A^T B^T, and xa. */
function refForward(l: Layer): { y: Ref; xa: Ref } {
  const [n, inF] = rowsOf(l.x.ref);
  const [out, r] = l.b.ref.shape;
  const { xd } = refDropout(l);
  const lead = l.x.ref.shape.slice(0, -1);
  const xa = new Float64Array(n * r);
  const y = new Float64Array(n * out);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let k = 0; k < inF; k++) s += xd.data[i * inF + k] * l.a.ref.data[j * inF + k];
      xa[i * r + j] = s;
    }
    for (let o = 0; o < out; o++) {
      let base = l.bias ? l.bias.ref.data[o] : 0;
      for (let k = 0; k < inF; k++) base += l.x.ref.data[i * inF + k] * l.w.ref.data[o * inF + k];
      let lora = 0;
      for (let j = 0; j < r; j++) lora += xa[i * r + j] * l.b.ref.data[o * r + j];
      y[i * out + o] = base + l.scale * lora;
    }
  }
  return { y: { shape: [...lead, out], data: y }, xa: { shape: [...lead, r], data: xa } };
}

/** The gradients in float64 loops, with the dropout's backward on the LoRA path of dx. */
function refBackward(l: Layer, dy: Ref, xa: Ref): { dx: Ref; da: Ref; db: Ref } {
  const [n, inF] = rowsOf(l.x.ref);
  const [out, r] = l.b.ref.shape;
  const { xd, mask } = refDropout(l);
  const g = new Float64Array(n * r);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let o = 0; o < out; o++) s += dy.data[i * out + o] * l.b.ref.data[o * r + j];
      g[i * r + j] = s;
    }
  }
  const db = new Float64Array(out * r);
  for (let o = 0; o < out; o++) {
    for (let j = 0; j < r; j++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += dy.data[i * out + o] * xa.data[i * r + j];
      db[o * r + j] = l.scale * s;
    }
  }
  const da = new Float64Array(r * inF);
  for (let j = 0; j < r; j++) {
    for (let k = 0; k < inF; k++) {
      let s = 0;
      for (let i = 0; i < n; i++) s += g[i * r + j] * xd.data[i * inF + k];
      da[j * inF + k] = l.scale * s;
    }
  }
  const dx = new Float64Array(n * inF);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < inF; k++) {
      let base = 0;
      for (let o = 0; o < out; o++) base += dy.data[i * out + o] * l.w.ref.data[o * inF + k];
      let lora = 0;
      for (let j = 0; j < r; j++) lora += g[i * r + j] * l.a.ref.data[j * inF + k];
      dx[i * inF + k] = base + l.scale * lora * mask.data[i * inF + k];
    }
  }
  return { dx: { shape: l.x.ref.shape.slice(), data: dx }, da: { shape: [r, inF], data: da }, db: { shape: [out, r], data: db } };
}

/**
 * Tolerance for a result whose terms (inputs within [-1, 1]) add up to at most `magnitude` in
 * absolute value: the dtype's rounding of the result plus accumulation error.
 */
function tol(dtype: DType, magnitude: number): [number, number] {
  const perUnit: Record<string, number> = { float64: 1e-14, float32: 1e-6, bfloat16: 8e-3, float16: 2e-3 };
  const rtol: Record<string, number> = { float64: 1e-12, float32: 1e-5, bfloat16: 1e-2, float16: 2e-3 };
  return [rtol[dtype], perUnit[dtype] * Math.max(1, magnitude)];
}

interface LayerSpec {
  lead: number[];
  inF: number;
  out: number;
  r: number;
  dtype: DType;
  wDtype?: DType;
  /** A and B's dtype when not the input's (float32 with a 16-bit input). */
  aDtype?: DType;
  bias?: boolean;
  maskShape?: number[] | null;
  layouts?: Partial<Record<'x' | 'w' | 'a' | 'b' | 'mask', Layout>>;
  scale?: number;
}

function makeLayer(rng: Rng, spec: LayerSpec): Layer {
  const lay = spec.layouts ?? {};
  const mask = spec.maskShape
    ? (() => {
        const p = 0.25;
        // values 0 or 1 / (1 - p), as loraDropoutMask draws them
        const m = randomTensor(rng, spec.maskShape, spec.dtype, lay.mask ?? 'contiguous', 0, 1);
        const values = m.ref.data.map((u) => (u < 1 - p ? 1 / (1 - p) : 0));
        m.t.dispose();
        return makeTensor({ shape: spec.maskShape, data: values }, spec.dtype, lay.mask ?? 'contiguous');
      })()
    : null;
  return {
    x: randomTensor(rng, [...spec.lead, spec.inF], spec.dtype, lay.x ?? 'contiguous'),
    w: randomTensor(rng, [spec.out, spec.inF], spec.wDtype ?? spec.dtype, lay.w ?? 'contiguous'),
    bias: spec.bias ? randomTensor(rng, [spec.out], spec.wDtype ?? spec.dtype) : null,
    a: randomTensor(rng, [spec.r, spec.inF], spec.aDtype ?? spec.dtype, lay.a ?? 'contiguous'),
    b: randomTensor(rng, [spec.out, spec.r], spec.aDtype ?? spec.dtype, lay.b ?? 'contiguous'),
    mask,
    scale: spec.scale ?? 0.5,
  };
}

function forward(l: Layer): ig.LoraForwardResult {
  return ig.loraLinearForward(l.x.t, l.w.t, l.bias?.t ?? null, l.a.t, l.b.t, l.scale, { dropoutMask: l.mask?.t });
}

/** Sums of absolute terms bounding each result, for `tol` (inputs within [-1, 1], mask within 4/3). */
function magnitudes(spec: LayerSpec, signedScale: number) {
  const scale = Math.abs(signedScale);
  const n = Math.max(1, numel(spec.lead));
  const m = spec.maskShape ? 4 / 3 : 1;
  return {
    y: spec.inF + 1 + scale * spec.r * spec.inF * m,
    xa: spec.inF * m,
    dx: spec.out + scale * spec.r * spec.out * m,
    da: scale * n * spec.out * m,
    db: scale * n * spec.inF * m,
  };
}

function checkLayer(t: ExecutionContext, rng: Rng, spec: LayerSpec, what: string): void {
  const l = makeLayer(rng, spec);
  const mag = magnitudes(spec, l.scale);
  const { y, xa } = forward(l);
  t.is(y.dtype, spec.dtype);
  t.is(xa.dtype, spec.dtype);
  const expected = refForward(l);
  assertClose(t, y, expected.y, tol(spec.dtype, mag.y), `${what} y`);
  assertClose(t, xa, expected.xa, tol(spec.dtype, mag.xa), `${what} xa`);

  const dy = randomTensor(rng, [...spec.lead, spec.out], spec.dtype, rng.pick(LAYOUTS));
  const grads = ig.loraLinearBackward(dy.t, l.x.t, l.w.t, l.a.t, l.b.t, xa, l.scale, { dropoutMask: l.mask?.t });
  // the forward's xa as it came back (rounded to the dtype) is what the backward reads
  const want = refBackward(l, dy.ref, refOf(xa));
  assertClose(t, grads.dx!, want.dx, tol(spec.dtype, mag.dx), `${what} dx`);
  // float32 adapters' gradients are float32 sums of the 16-bit inputs (x * mask is rounded to x's dtype)
  const gradDtype = spec.aDtype ?? spec.dtype;
  const daTol = tol(spec.maskShape ? spec.dtype : gradDtype, mag.da);
  assertClose(t, grads.da, want.da, daTol, `${what} da`);
  assertClose(t, grads.db, want.db, tol(gradDtype, mag.db), `${what} db`);
  t.is(grads.dx!.dtype, spec.dtype);
  t.is(grads.da.dtype, gradDtype);
  t.is(grads.db.dtype, gradDtype);

  const noInput = ig.loraLinearBackward(dy.t, l.x.t, l.w.t, l.a.t, l.b.t, xa, l.scale, { dropoutMask: l.mask?.t, needInputGrad: false });
  t.is(noInput.dx, null);
  assertClose(t, noInput.da, want.da, daTol, `${what} da without dx`);
  for (const x of [y, xa, dy.t, grads.dx!, grads.da, grads.db, noInput.da, noInput.db]) x.dispose();
  disposeLayer(l);
}

function randomSpec(rng: Rng, dtype: DType): LayerSpec {
  const lead = randomShape(rng, 3, 4);
  const inF = rng.int(1, 7);
  const maskKind = rng.int(0, 3);
  const maskShape = maskKind === 0 ? null : maskKind === 1 ? [...lead, inF] : maskKind === 2 ? [inF] : [...lead.map(() => 1), inF];
  return {
    lead,
    inF,
    out: rng.int(1, 7),
    r: rng.int(1, 4),
    dtype,
    bias: rng.next() < 0.5,
    maskShape,
    scale: rng.uniform(-2, 2),
    layouts: { x: rng.pick(LAYOUTS), w: rng.pick(LAYOUTS), a: rng.pick(LAYOUTS), b: rng.pick(LAYOUTS), mask: rng.pick(LAYOUTS) },
  };
}

for (const dtype of ['float32', 'float64'] as DType[]) {
  test(`loraLinear ${dtype}: random shapes, leading dims, layouts, bias and dropout masks against float64`, (t) => {
    const rng = new Rng(dtype === 'float32' ? 101 : 202);
    for (let trial = 0; trial < 60; trial++) {
      const spec = randomSpec(rng, dtype);
      checkLayer(t, rng, spec, `${JSON.stringify(spec)}`);
    }
  });
}

test('loraLinear: bfloat16 and float16 base weights with float32 input and adapters', (t) => {
  const rng = new Rng(7);
  for (const wDtype of ['bfloat16', 'float16'] as DType[]) {
    for (let trial = 0; trial < 12; trial++) {
      // the reference reads W's rounded values; the rest is float32
      const spec = { ...randomSpec(rng, 'float32'), wDtype };
      checkLayer(t, rng, spec, `${wDtype} weight ${JSON.stringify(spec)}`);
    }
  }
});

test('loraLinear: everything in bfloat16 or float16 (computed in float32)', (t) => {
  const rng = new Rng(8);
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    for (let trial = 0; trial < 10; trial++) checkLayer(t, rng, { ...randomSpec(rng, dtype), maskShape: null }, `${dtype}`);
  }
});

test('loraLinear: bfloat16 and float16 inputs with float32 adapters (their gradients summed and kept in float32)', (t) => {
  const rng = new Rng(9);
  for (const dtype of ['bfloat16', 'float16'] as DType[]) {
    for (let trial = 0; trial < 10; trial++) {
      const spec = { ...randomSpec(rng, dtype), aDtype: 'float32' as DType };
      checkLayer(t, rng, spec, `${dtype} input, float32 adapters ${JSON.stringify(spec)}`);
    }
  }
});

test('loraLinear: sizes large enough for OpenBLAS threads and blocking', (t) => {
  const rng = new Rng(9);
  checkLayer(t, rng, { lead: [3, 70], inF: 150, out: 130, r: 8, dtype: 'float32', bias: true, scale: 0.25 }, 'large');
  checkLayer(t, rng, { lead: [200], inF: 90, out: 70, r: 16, dtype: 'float32', maskShape: [200, 90], layouts: { x: 'transposed' } }, 'large, dropout');
});

test('loraLinear: products large enough to be split over the thread pool, and on one thread', (t) => {
  // 2100 * 256 * 16 multiply-adds per LoRA product: above twice the split threshold (2^22)
  const rng = new Rng(16);
  const threads = ig.getNumThreads();
  for (const n of threads > 1 ? [threads, 1] : [1]) {
    ig.setNumThreads(n);
    try {
      checkLayer(t, rng, { lead: [2100], inF: 256, out: 256, r: 16, dtype: 'float32', maskShape: [256], scale: 0.3 }, `${n} threads, dropout`);
      checkLayer(t, rng, { lead: [3, 700], inF: 256, out: 256, r: 16, dtype: 'float64', bias: true, scale: -0.7 }, `${n} threads`);
    } finally {
      ig.setNumThreads(threads);
    }
  }
});

test('loraLinear: a row-vector input, a single row, r = 1, and empty sizes', (t) => {
  const rng = new Rng(10);
  for (const spec of [
    { lead: [], inF: 5, out: 3, r: 2 },
    { lead: [1], inF: 4, out: 6, r: 1, bias: true },
    { lead: [5], inF: 1, out: 1, r: 1, maskShape: [5, 1] },
    { lead: [0], inF: 4, out: 3, r: 2, bias: true },
    { lead: [2, 0], inF: 4, out: 3, r: 2 },
    { lead: [3], inF: 0, out: 3, r: 2, bias: true },
    { lead: [3], inF: 4, out: 0, r: 2 },
  ]) {
    checkLayer(t, rng, { ...spec, dtype: 'float32' }, JSON.stringify(spec));
  }
});

test('loraLinear: a transposed 2-D input reaches BLAS without a copy', (t) => {
  const rng = new Rng(11);
  const l = makeLayer(rng, { lead: [9], inF: 6, out: 5, r: 3, dtype: 'float32', layouts: { x: 'transposed' } });
  t.false(l.x.t.isContiguous());
  const copies = diagnostics.matmulOperandCopies();
  const { y, xa } = forward(l);
  const dy = ig.ones([9, 5]);
  const grads = ig.loraLinearBackward(dy, l.x.t, l.w.t, l.a.t, l.b.t, xa, l.scale);
  t.is(diagnostics.matmulOperandCopies(), copies);
  assertClose(t, y, refForward(l).y, tol('float32', 30));
  for (const x of [y, xa, dy, grads.dx!, grads.da, grads.db]) x.dispose();
  disposeLayer(l);
});

/** Float64 tensors of the layer's values (contiguous), for finite differences. */
function gradcheck(t: ExecutionContext, withMask: boolean): void {
  const rng = new Rng(withMask ? 12 : 13);
  const l = makeLayer(rng, { lead: [2, 3], inF: 4, out: 5, r: 2, dtype: 'float64', bias: true, maskShape: withMask ? [2, 3, 4] : null, scale: 0.7 });
  const dy = randomTensor(rng, [2, 3, 5], 'float64');
  // loss = sum(y * dy): its gradient with respect to y is dy
  const loss = (x: Tensor, a: Tensor, b: Tensor): number => {
    const { y, xa } = ig.loraLinearForward(x, l.w.t, l.bias!.t, a, b, l.scale, { dropoutMask: l.mask?.t });
    const yv = y.data() as Float64Array;
    let s = 0;
    for (let i = 0; i < yv.length; i++) s += yv[i] * dy.ref.data[i];
    y.dispose();
    xa.dispose();
    return s;
  };
  const { y, xa } = forward(l);
  const grads = ig.loraLinearBackward(dy.t, l.x.t, l.w.t, l.a.t, l.b.t, xa, l.scale, { dropoutMask: l.mask?.t });
  const h = 1e-3;
  const numeric = (which: 0 | 1 | 2): Ref => {
    const base = [l.x.ref, l.a.ref, l.b.ref][which];
    const out = new Float64Array(base.data.length);
    for (let i = 0; i < out.length; i++) {
      const at = (delta: number) => {
        const data = base.data.slice();
        data[i] += delta;
        const moved = ig.tensor(data, { shape: base.shape });
        const args: Tensor[] = [l.x.t, l.a.t, l.b.t];
        args[which] = moved;
        const v = loss(args[0], args[1], args[2]);
        moved.dispose();
        return v;
      };
      // the loss is linear in each of x, A and B: central differences are exact up to rounding
      out[i] = (at(h) - at(-h)) / (2 * h);
    }
    return { shape: base.shape, data: out };
  };
  assertClose(t, grads.dx!, numeric(0), [1e-8, 1e-9], 'dx');
  assertClose(t, grads.da, numeric(1), [1e-8, 1e-9], 'da');
  assertClose(t, grads.db, numeric(2), [1e-8, 1e-9], 'db');
  for (const x of [y, xa, dy.t, grads.dx!, grads.da, grads.db]) x.dispose();
  disposeLayer(l);
}

test('loraLinearBackward: finite differences of the forward (float64)', (t) => gradcheck(t, false));
test('loraLinearBackward: finite differences of the forward with a dropout mask (float64)', (t) => gradcheck(t, true));

test('loraDropoutMask: values 0 or 1 / (1 - p), the kept fraction, seeded, p = 0 and p = 1', (t) => {
  ig.manualSeed(42);
  const m = ig.loraDropoutMask([400, 250], 0.3);
  t.deepEqual(m.shape, [400, 250]);
  t.is(m.dtype, 'float32');
  const values = m.data() as Float32Array;
  const scale = Math.fround(1 / 0.7);
  let kept = 0;
  for (const v of values) {
    if (v === scale) kept++;
    else t.is(v, 0);
  }
  const fraction = kept / values.length;
  t.true(Math.abs(fraction - 0.7) < 0.01, `kept ${fraction}`);
  ig.manualSeed(42);
  const again = ig.loraDropoutMask([400, 250], 0.3);
  t.deepEqual(again.data(), values);
  const none = ig.loraDropoutMask([3, 4], 0, { dtype: 'float64' });
  t.is(none.dtype, 'float64');
  t.true((none.data() as Float64Array).every((v) => v === 1));
  const all = ig.loraDropoutMask([5], 1);
  t.true((all.data() as Float32Array).every((v) => v === 0));
  for (const x of [m, again, none, all]) x.dispose();
});

test('loraScaling and loraAdapters: PEFT scaling and initialisation', (t) => {
  t.is(ig.loraScaling(32, 16), 2);
  t.is(ig.loraScaling(16, 4, true), 8);
  ig.manualSeed(3);
  const { a, b } = ig.loraAdapters(64, 10, 4);
  t.deepEqual(a.shape, [4, 64]);
  t.deepEqual(b.shape, [10, 4]);
  const av = a.data() as Float32Array;
  const bound = 1 / Math.sqrt(64);
  t.true(av.every((v) => Math.abs(v) <= bound));
  t.true(Math.max(...av) > 0.8 * bound && Math.min(...av) < -0.8 * bound);
  t.true((b.data() as Float32Array).every((v) => v === 0));
  ig.manualSeed(3);
  const again = ig.loraAdapters(64, 10, 4);
  t.deepEqual(again.a.data(), av);
  const half = ig.loraAdapters(8, 2, 2, { dtype: 'bfloat16' });
  t.is(half.a.dtype, 'bfloat16');
  t.is(half.b.dtype, 'bfloat16');
  for (const x of [a, b, again.a, again.b, half.a, half.b]) x.dispose();
});

/** W + sign * scale * B A in float64. */
function refMerged(l: Layer, sign: number): Ref {
  const [out, inF] = l.w.ref.shape;
  const r = l.a.ref.shape[0];
  const data = l.w.ref.data.map((v, i) => {
    const o = Math.floor(i / inF);
    const k = i % inF;
    let s = 0;
    for (let j = 0; j < r; j++) s += l.b.ref.data[o * r + j] * l.a.ref.data[j * inF + k];
    return v + sign * l.scale * s;
  });
  return { shape: [out, inF], data };
}

test('loraMerge / loraUnmerge: in place, equal to the unmerged forward, and back', (t) => {
  const rng = new Rng(14);
  for (const [dtype, wDtype] of [['float32', 'float32'], ['float64', 'float64'], ['float32', 'bfloat16'], ['float32', 'float16']] as [DType, DType][]) {
    const l = makeLayer(rng, { lead: [3, 4], inF: 7, out: 6, r: 3, dtype, wDtype, bias: true, layouts: { a: 'transposed', b: 'strided' } });
    const before = refOf(l.w.t);
    const { y } = forward(l);
    const alias = l.w.t.view(42);
    ig.loraMerge(l.w.t, l.a.t, l.b.t, l.scale);
    // computed in float32 (float64), rounded once to W's dtype
    const wTol: [number, number] = wDtype === 'bfloat16' ? [8e-3, 1e-6] : wDtype === 'float16' ? [1e-3, 1e-6] : tol(wDtype, 8);
    assertClose(t, l.w.t, refMerged(l, 1), wTol, `${wDtype} merged`);
    t.notDeepEqual(refOf(alias).data, before.data, "the merge writes into W's storage");
    if (wDtype === dtype) {
      const merged = ig.linear(l.x.t, l.w.t, l.bias!.t);
      assertClose(t, merged, refOf(y), tol(dtype, 40), `${dtype} merged forward`);
      merged.dispose();
    }
    ig.loraUnmerge(l.w.t, l.a.t, l.b.t, l.scale);
    // rounded once more: within an ulp of W + delta, which may be larger than W
    const backTol: [number, number] = wDtype === 'bfloat16' ? [8e-3, 1e-2] : wDtype === 'float16' ? [1e-3, 2e-3] : tol(wDtype, 8);
    assertClose(t, l.w.t, before, backTol, `${wDtype} unmerged`);
    y.dispose();
    alias.dispose();
    disposeLayer(l);
  }
});

test('loraMerge / loraUnmerge: a delta with NaN or Inf is refused and W left untouched', (t) => {
  const rng = new Rng(15);
  for (const wDtype of ['float32', 'bfloat16'] as DType[]) {
    const w = randomTensor(rng, [4, 5], wDtype);
    const before = w.t.data().slice();
    const nanA = ig.tensor([[1, 2, NaN, 4, 5]]);
    const b = ig.ones([4, 1]);
    for (const fn of [ig.loraMerge, ig.loraUnmerge]) {
      assertCode(t, () => fn(w.t, nanA, b, 1), 'ERR_ARG', /NaN or Inf.*left unchanged/);
      t.deepEqual(w.t.data(), before);
    }
    // finite adapters whose product overflows float32
    const big = ig.full([1, 5], 1e30);
    const bigB = ig.full([4, 1], 1e30);
    assertCode(t, () => ig.loraMerge(w.t, big, bigB, 1), 'ERR_ARG', /NaN or Inf/);
    t.deepEqual(w.t.data(), before);
    for (const x of [w.t, nanA, b, big, bigB]) x.dispose();
  }
});

test('lora ops: bad arguments, each with its code', (t) => {
  const x = ig.zeros([2, 3, 4]);
  const w = ig.zeros([5, 4]);
  const a = ig.zeros([2, 4]);
  const b = ig.zeros([5, 2]);
  const dy = ig.zeros([2, 3, 5]);
  const xa = ig.zeros([2, 3, 2]);
  const f = (o: Partial<{ x: unknown; w: unknown; bias: unknown; a: unknown; b: unknown; scale: unknown; mask: unknown }>) => () =>
    ig.loraLinearForward(
      (o.x ?? x) as Tensor,
      (o.w ?? w) as Tensor,
      (o.bias ?? null) as Tensor | null,
      (o.a ?? a) as Tensor,
      (o.b ?? b) as Tensor,
      (o.scale ?? 1) as number,
      { dropoutMask: (o.mask ?? null) as Tensor | null },
    );
  const g = (o: Partial<{ dy: unknown; x: unknown; w: unknown; a: unknown; xa: unknown; mask: unknown; scale: unknown; need: unknown }>) => () =>
    ig.loraLinearBackward((o.dy ?? dy) as Tensor, (o.x ?? x) as Tensor, (o.w ?? w) as Tensor, (o.a ?? a) as Tensor, b, (o.xa ?? xa) as Tensor, (o.scale ?? 1) as number, {
      dropoutMask: (o.mask ?? null) as Tensor | null,
      needInputGrad: (o.need ?? true) as boolean,
    });

  // ERR_SHAPE
  assertCode(t, f({ x: ig.zeros([2, 3]) }), 'ERR_SHAPE', /loraLinearForward: input of shape \[2, 3\] does not match weight of shape \[5, 4\]/);
  assertCode(t, f({ x: ig.zeros([]) }), 'ERR_SHAPE', /at least 1 dim/);
  assertCode(t, f({ w: ig.zeros([4]) }), 'ERR_SHAPE', /weight must have 2 dims/);
  assertCode(t, f({ a: ig.zeros([2, 3]) }), 'ERR_SHAPE', /A of shape \[2, 3\]/);
  assertCode(t, f({ a: ig.zeros([0, 4]), b: ig.zeros([5, 0]) }), 'ERR_SHAPE', /r >= 1/);
  assertCode(t, f({ b: ig.zeros([5, 3]) }), 'ERR_SHAPE', /B of shape \[5, 3\].*expected \[5, 2\]/);
  assertCode(t, f({ b: ig.zeros([4, 2]) }), 'ERR_SHAPE', /B of shape/);
  assertCode(t, f({ bias: ig.zeros([4]) }), 'ERR_SHAPE', /bias of shape \[4\]/);
  assertCode(t, f({ mask: ig.zeros([3, 3, 4]) }), 'ERR_SHAPE', /dropout mask of shape \[3, 3, 4\]/);
  assertCode(t, f({ mask: ig.zeros([1, 2, 3, 4]) }), 'ERR_SHAPE', /dropout mask/);
  assertCode(t, g({ dy: ig.zeros([2, 3, 4]) }), 'ERR_SHAPE', /loraLinearBackward: output gradient of shape \[2, 3, 4\].*expected \[2, 3, 5\]/);
  assertCode(t, g({ xa: ig.zeros([6, 2]) }), 'ERR_SHAPE', /saved xa of shape \[6, 2\]/);
  assertCode(t, () => ig.loraMerge(w, ig.zeros([2, 5]), b, 1), 'ERR_SHAPE', /loraMerge: A of shape/);

  // ERR_DTYPE
  const i32 = ig.zeros([2, 3, 4], { dtype: 'int32' });
  assertCode(t, f({ x: i32 }), 'ERR_DTYPE', /input must be a floating-point tensor, got int32/);
  assertCode(t, f({ w: ig.zeros([5, 4], { dtype: 'int64' }) }), 'ERR_DTYPE', /weight must be a floating-point/);
  assertCode(t, f({ a: ig.zeros([2, 4], { dtype: 'float64' }), b: ig.zeros([5, 2], { dtype: 'float64' }) }), 'ERR_DTYPE', /A must have the input's dtype float32, got float64/);
  assertCode(t, f({ b: ig.zeros([5, 2], { dtype: 'float64' }) }), 'ERR_DTYPE', /A and B must have one dtype/);
  const bf16 = ig.zeros([2, 3, 4], { dtype: 'bfloat16' });
  const f64Adapters = { a: ig.zeros([2, 4], { dtype: 'float64' }), b: ig.zeros([5, 2], { dtype: 'float64' }) };
  assertCode(t, f({ x: bf16, ...f64Adapters }), 'ERR_DTYPE', /A must have the input's dtype bfloat16 or float32, got float64/);
  assertCode(t, f({ bias: ig.zeros([5], { dtype: 'bool' }) }), 'ERR_DTYPE', /bias must be a floating-point/);
  assertCode(t, f({ mask: ig.zeros([4], { dtype: 'float64' }) }), 'ERR_DTYPE', /dropout mask must have the input's dtype/);
  assertCode(t, g({ dy: ig.zeros([2, 3, 5], { dtype: 'bfloat16' }) }), 'ERR_DTYPE', /output gradient must have the input's dtype/);
  assertCode(t, g({ xa: ig.zeros([2, 3, 2], { dtype: 'float64' }) }), 'ERR_DTYPE', /saved xa/);
  assertCode(t, () => ig.loraMerge(w, ig.zeros([2, 4], { dtype: 'int32' }), b, 1), 'ERR_DTYPE', /loraMerge: A must be a floating-point/);

  // ERR_ARG
  assertCode(t, f({ x: [1, 2] }), 'ERR_ARG', /input must be a Tensor/);
  assertCode(t, f({ a: 'A' }), 'ERR_ARG', /A must be a Tensor/);
  assertCode(t, f({ scale: NaN }), 'ERR_ARG', /scale must be a finite number/);
  assertCode(t, f({ scale: '1' }), 'ERR_ARG', /scale must be a number/);
  assertCode(t, g({ scale: Infinity }), 'ERR_ARG', /scale/);
  assertCode(t, g({ need: 'yes' }), 'ERR_ARG', /needInputGrad must be a boolean/);
  assertCode(t, () => ig.loraMerge(w.mT.contiguous().mT, a, b, 1), 'ERR_ARG', /loraMerge: weight of shape \[5, 4\] must be contiguous/);
  assertCode(t, () => ig.loraUnmerge(w, a, b, NaN), 'ERR_ARG', /loraUnmerge: scale/);
  assertCode(t, () => ig.loraDropoutMask([2], 1.5), 'ERR_ARG', /p must be in \[0, 1\]/);
  assertCode(t, () => ig.loraDropoutMask([2], NaN), 'ERR_ARG', /p must be in/);
  assertCode(t, () => ig.loraDropoutMask([-1], 0.1), 'ERR_ARG');
  assertCode(t, () => ig.loraScaling(8, 0), 'ERR_ARG', /r must be a positive integer/);
  assertCode(t, () => ig.loraScaling(NaN, 4), 'ERR_ARG', /alpha/);
  assertCode(t, () => ig.loraAdapters(4, 5, 1.5), 'ERR_ARG', /r must be a positive integer/);

  // ERR_DISPOSED, from every tensor argument
  const gone = (shape: number[]) => {
    const d = ig.zeros(shape);
    d.dispose();
    return d;
  };
  assertCode(t, f({ x: gone([2, 3, 4]) }), 'ERR_DISPOSED', /loraLinearForward: input/);
  assertCode(t, f({ w: gone([5, 4]) }), 'ERR_DISPOSED', /weight/);
  assertCode(t, f({ bias: gone([5]) }), 'ERR_DISPOSED', /bias/);
  assertCode(t, f({ a: gone([2, 4]) }), 'ERR_DISPOSED', /A/);
  assertCode(t, f({ b: gone([5, 2]) }), 'ERR_DISPOSED', /B/);
  assertCode(t, f({ mask: gone([4]) }), 'ERR_DISPOSED', /dropout mask/);
  assertCode(t, g({ dy: gone([2, 3, 5]) }), 'ERR_DISPOSED', /output gradient/);
  assertCode(t, g({ xa: gone([2, 3, 2]) }), 'ERR_DISPOSED', /saved xa/);
  assertCode(t, () => ig.loraMerge(gone([5, 4]), a, b, 1), 'ERR_DISPOSED', /loraMerge: weight/);

  // ERR_DEVICE: a tensor on another device (where there is a GPU)
  const elsewhere = onCuda(a);
  if (elsewhere) {
    assertCode(t, f({ a: elsewhere }), 'ERR_DEVICE', /loraLinearForward.*cpu.*cuda:0/);
    assertCode(t, () => ig.loraMerge(w, elsewhere, b, 1), 'ERR_DEVICE');
    elsewhere.dispose();
  }
});

test('lora ops: the native layer validates again', (t) => {
  const native = addon as {
    loraLinearForward(...args: unknown[]): NativeHandle[];
    loraLinearBackward(...args: unknown[]): NativeHandle[];
    loraMerge(...args: unknown[]): void;
    loraDropoutMask(...args: unknown[]): NativeHandle;
  };
  const h = (s: number[], dtype: DType = 'float32') => ig.zeros(s, { dtype }).handle('t');
  assertCode(t, () => native.loraLinearForward(h([2, 3]), h([5, 4]), null, h([2, 4]), h([5, 2]), 1, null), 'ERR_SHAPE', /loraLinearForward: input/);
  assertCode(t, () => native.loraLinearForward(h([2, 4]), h([5, 4]), h([4]), h([2, 4]), h([5, 2]), 1, null), 'ERR_SHAPE', /bias/);
  assertCode(t, () => native.loraLinearForward(h([2, 4]), h([5, 4]), null, h([2, 4]), h([5, 2]), 1, h([3, 4])), 'ERR_SHAPE', /dropout mask/);
  assertCode(t, () => native.loraLinearForward(h([2, 4]), h([5, 4]), null, h([2, 4], 'float64'), h([5, 2], 'float64'), 1, null), 'ERR_DTYPE');
  assertCode(t, () => native.loraLinearForward(h([2, 4], 'float16'), h([5, 4]), null, h([2, 4], 'float64'), h([5, 2], 'float64'), 1, null), 'ERR_DTYPE', /float16 or float32/);
  assertCode(t, () => native.loraLinearForward(h([2, 4]), h([5, 4]), null, h([2, 4]), h([5, 2]), NaN, null), 'ERR_ARG', /scale/);
  assertCode(t, () => native.loraLinearBackward(h([2, 4]), h([2, 4]), h([5, 4]), h([2, 4]), h([5, 2]), h([2, 2]), 1, null, true), 'ERR_SHAPE', /output gradient/);
  assertCode(t, () => native.loraMerge(ig.zeros([4, 5]).mT.handle('t'), h([2, 4]), h([5, 2]), 1), 'ERR_ARG', /contiguous/);
  assertCode(t, () => native.loraMerge(h([5, 4]), h([0, 4]), h([5, 0]), 1), 'ERR_SHAPE', /r >= 1/);
  assertCode(t, () => native.loraDropoutMask(h([3]), -0.5), 'ERR_ARG', /p must be/);
  assertCode(t, () => native.loraDropoutMask(h([3], 'int32'), 0.5), 'ERR_DTYPE');
});
