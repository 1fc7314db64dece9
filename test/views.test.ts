import test from 'ava';
import * as ig from '../lib';
import { DType, Tensor } from '../lib';
import { core } from '../lib/native';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, makeTensor, numel, randomShape, refFromFn, rowMajorStrides, UNAVAILABLE_DEVICE, unravel } from './helpers';

const DTYPES: DType[] = ['float32', 'float64', 'bfloat16', 'float16', 'int32', 'int64', 'bool'];

/** Where a tensor's elements live: its native view. */
function meta(t: Tensor) {
  return core.meta(t.handle('meta'));
}

const storages = () => ig.memory().storages;

/** A random tensor of small integers (exact in every dtype) in a random layout, with its reference values. */
function sample(rng: Rng, shape: number[], dtype: DType = rng.pick(DTYPES)): { t: Tensor; ref: Ref } {
  return makeTensor(refFromFn(shape, () => rng.int(-4, 4)), dtype, rng.pick(LAYOUTS));
}

/** The reference of a view: out[idx] = ref[source(idx)]. */
function refGather(ref: Ref, shape: number[], source: (idx: number[]) => number[]): Ref {
  const strides = rowMajorStrides(ref.shape);
  return refFromFn(shape, (i) => {
    const from = source(unravel(i, shape));
    return ref.data[from.reduce((acc, v, d) => acc + v * strides[d], 0)];
  });
}

/** Element address of a multi-index in a native view. */
function address(m: { strides: number[]; offset: number }, idx: number[]): number {
  return idx.reduce((acc, v, d) => acc + v * m.strides[d], m.offset);
}

/**
 * Whether `shape` can view t's elements without a copy, by brute force: the strides the new
 * dims would need (from the addresses of their first steps) must place every element where
 * the row-major order says. Returns those strides (size-1 dims: null), or null.
 */
function bruteForceView(t: Tensor, shape: number[]): (number | null)[] | null {
  const m = meta(t);
  const n = t.numel;
  if (n === 0) return shape.map(() => null);
  const oldAddress = (linear: number) => address(m, unravel(linear, t.shape));
  const rm = rowMajorStrides(shape);
  const strides = shape.map((size, d) => (size > 1 ? oldAddress(rm[d]) - oldAddress(0) : null));
  for (let i = 0; i < n; i++) {
    const idx = unravel(i, shape);
    const at = idx.reduce((acc, v, d) => acc + (strides[d] ?? 0) * v, oldAddress(0));
    if (at !== oldAddress(i)) return null;
  }
  return strides;
}

/** A random shape with `n` elements, sometimes with a -1. */
function randomFactorisation(rng: Rng, n: number): number[] {
  const dims: number[] = [];
  let rest = n;
  while (rest > 1 && dims.length < 5) {
    const divisors = Array.from({ length: rest }, (_, i) => i + 1).filter((d) => rest % d === 0 && d > 1);
    const d = rng.pick(divisors);
    dims.push(d);
    rest /= d;
    if (rng.next() < 0.2) dims.push(1);
  }
  if (rest !== 1 || dims.length === 0) dims.push(rest);
  for (let i = dims.length - 1; i > 0; i--) {
    const j = rng.int(0, i);
    [dims[i], dims[j]] = [dims[j], dims[i]];
  }
  return dims;
}

test('view and reshape: -1 inference, strides exactly when no copy is needed, copies otherwise', (t) => {
  const rng = new Rng(1);
  let views = 0;
  let copies = 0;
  for (let trial = 0; trial < 150; trial++) {
    const shape = randomShape(rng, 4, 4);
    const { t: x, ref } = sample(rng, shape, rng.pick(['float32', 'float64', 'int64']));
    // some inputs permuted or sliced further, so their strides are irregular
    let base = x;
    if (x.ndim >= 2 && rng.next() < 0.4) base = x.transpose(0, x.ndim - 1);
    const baseRef = base === x ? ref : refGather(ref, base.shape.slice(), (idx) => { const s = idx.slice(); [s[0], s[s.length - 1]] = [s[s.length - 1], s[0]]; return s; });
    const target = randomFactorisation(rng, base.numel);
    const request = target.slice();
    if (rng.next() < 0.3 && request.length > 0) request[rng.int(0, request.length - 1)] = -1;
    const expectStrides = bruteForceView(base, target);
    const before = storages();
    if (expectStrides) {
      const v = base.view(...request);
      views++;
      t.deepEqual(v.shape, target);
      t.is(storages(), before, 'a view allocates nothing');
      const m = meta(v);
      t.is(m.offset, meta(base).offset);
      t.is(m.storageBytes, meta(base).storageBytes);
      expectStrides.forEach((s, d) => s !== null && t.is(m.strides[d], s, `stride of dim ${d}`));
      assertClose(t, v, { shape: target, data: baseRef.data }, [0, 0]);
      const r = base.reshape(...request);
      t.deepEqual(meta(r).strides, m.strides, 'reshape is a view when a view exists');
      v.dispose();
      r.dispose();
    } else {
      copies++;
      assertCode(t, () => base.view(...request), 'ERR_SHAPE', /view.*reshape/);
      const r = base.reshape(...request);
      t.is(storages(), before + 1, 'reshape copied');
      t.true(r.isContiguous());
      assertClose(t, r, { shape: target, data: baseRef.data }, [0, 0]);
      r.dispose();
    }
    if (base !== x) base.dispose();
    x.dispose();
  }
  t.true(views > 20 && copies > 10, `${views} views, ${copies} copies`);
  const x = ig.zeros([2, 3, 4]);
  t.deepEqual(x.view(-1).shape, [24]);
  t.deepEqual(x.view([4, -1]).shape, [4, 6]);
  t.deepEqual(x.reshape(2, -1, 2).shape, [2, 6, 2]);
  t.deepEqual(ig.zeros([0, 3]).view(-1, 3).shape, [0, 3]);
  t.deepEqual(ig.tensor(5).view(1, 1).shape, [1, 1]);
  t.deepEqual(ig.zeros([1, 1]).view().shape, []);
  assertCode(t, () => x.view(5, -1), 'ERR_SHAPE');
  assertCode(t, () => x.view(-1, -1), 'ERR_ARG');
  assertCode(t, () => x.view(25), 'ERR_SHAPE');
  assertCode(t, () => x.view(2.5, 4), 'ERR_ARG');
  assertCode(t, () => x.view(-2, -12), 'ERR_ARG');
  assertCode(t, () => ig.zeros([0, 3]).view(-1, 0), 'ERR_SHAPE');
  assertCode(t, () => x.mT.view(24), 'ERR_SHAPE', /without copying/);
});

test('permute, transpose and mT: values and strides', (t) => {
  const rng = new Rng(2);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 5, 4, 1);
    const { t: x, ref } = sample(rng, shape);
    const dims = shape.map((_, i) => i);
    for (let i = dims.length - 1; i > 0; i--) {
      const j = rng.int(0, i);
      [dims[i], dims[j]] = [dims[j], dims[i]];
    }
    const given = dims.map((d) => (rng.next() < 0.3 ? d - shape.length : d));
    const before = storages();
    const p = x.permute(...given);
    t.is(storages(), before);
    t.deepEqual(p.shape, dims.map((d) => shape[d]));
    t.deepEqual(meta(p).strides, dims.map((d) => meta(x).strides[d]));
    assertClose(t, p, refGather(ref, p.shape.slice(), (idx) => { const s = new Array<number>(shape.length); dims.forEach((d, i) => (s[d] = idx[i])); return s; }), [0, 0]);
    const [a, b] = [rng.int(0, shape.length - 1), rng.int(0, shape.length - 1)];
    const tr = x.transpose(a, b - (rng.next() < 0.5 ? shape.length : 0));
    assertClose(t, tr, refGather(ref, tr.shape.slice(), (idx) => { const s = idx.slice(); [s[a], s[b]] = [s[b], s[a]]; return s; }), [0, 0]);
    if (shape.length >= 2) {
      const n = shape.length;
      assertClose(t, x.mT, refGather(ref, x.mT.shape.slice(), (idx) => { const s = idx.slice(); [s[n - 2], s[n - 1]] = [s[n - 1], s[n - 2]]; return s; }), [0, 0]);
    }
    for (const v of [x, p, tr]) v.dispose();
  }
  const x = ig.zeros([2, 3]);
  t.deepEqual(x.permute([1, 0]).shape, [3, 2]);
  assertCode(t, () => x.permute(0), 'ERR_SHAPE');
  assertCode(t, () => x.permute(0, 0), 'ERR_ARG');
  assertCode(t, () => x.permute(0, 2), 'ERR_INDEX');
  assertCode(t, () => x.permute(0, 0.5), 'ERR_ARG');
  assertCode(t, () => x.transpose(0, 2), 'ERR_INDEX');
  assertCode(t, () => ig.zeros([3]).mT, 'ERR_SHAPE');
  t.deepEqual(ig.tensor(1).transpose(0, -1).shape, []);
});

test('narrow, slice (steps, negative and clamped bounds) and select', (t) => {
  const rng = new Rng(3);
  for (let trial = 0; trial < 120; trial++) {
    const shape = randomShape(rng, 4, 6, 1);
    const { t: x, ref } = sample(rng, shape);
    const d = rng.int(0, shape.length - 1);
    const dim = rng.next() < 0.3 ? d - shape.length : d;
    const size = shape[d];
    const before = storages();

    const start = rng.int(0, size);
    const length = rng.int(0, size - start);
    const negStart = rng.next() < 0.3 && start < size;
    const n = x.narrow(dim, negStart ? start - size : start, length);
    const nShape = shape.slice();
    nShape[d] = length;
    t.deepEqual(n.shape, nShape);
    assertClose(t, n, refGather(ref, nShape, (idx) => { const s = idx.slice(); s[d] += start; return s; }), [0, 0]);
    if (length > 0) t.is(meta(n).offset, meta(x).offset + start * meta(x).strides[d]);

    // Python slicing: any start/end, clamped; step >= 1
    const full = rng.next() < 0.2;
    const s0 = rng.int(-size - 3, size + 3);
    const e0 = rng.int(-size - 3, size + 3);
    const step = rng.int(1, 4);
    const sl = full ? x.slice(dim) : x.slice(dim, s0, e0, step);
    const clamp = (i: number) => Math.min(Math.max(i < 0 ? i + size : i, 0), size);
    const [from, to, st] = full ? [0, size, 1] : [clamp(s0), clamp(e0), step];
    const picked: number[] = [];
    for (let i = from; i < to; i += st) picked.push(i);
    const sShape = shape.slice();
    sShape[d] = picked.length;
    t.deepEqual(sl.shape, sShape, `slice(${dim}, ${s0}, ${e0}, ${step}) of ${size}`);
    assertClose(t, sl, refGather(ref, sShape, (idx) => { const s = idx.slice(); s[d] = picked[idx[d]]; return s; }), [0, 0]);
    if (picked.length > 1) t.is(meta(sl).strides[d], meta(x).strides[d] * st);

    const index = rng.int(-size, size - 1);
    const sel = x.select(dim, index);
    t.deepEqual(sel.shape, shape.filter((_, k) => k !== d));
    const at = index < 0 ? index + size : index;
    assertClose(t, sel, refGather(ref, sel.shape.slice(), (idx) => [...idx.slice(0, d), at, ...idx.slice(d)]), [0, 0]);

    t.is(storages(), before, 'narrow, slice and select are views');
    for (const v of [x, n, sl, sel]) v.dispose();
  }
  const x = ig.arange(10);
  t.deepEqual(x.slice(0, -3, 100, 2).toArray(), [7, 9]);
  t.deepEqual(x.slice(0, -100, 3).toArray(), [0, 1, 2]);
  t.deepEqual(x.slice(0, 5, 2).toArray(), []);
  t.deepEqual(x.narrow(0, -2, 2).toArray(), [8, 9]);
  t.deepEqual(x.select(0, -1).toArray(), 9);
  assertCode(t, () => x.narrow(0, 8, 3), 'ERR_INDEX');
  assertCode(t, () => x.narrow(0, -11, 1), 'ERR_INDEX');
  assertCode(t, () => x.narrow(0, 0, -1), 'ERR_INDEX');
  assertCode(t, () => x.narrow(1, 0, 1), 'ERR_INDEX');
  assertCode(t, () => x.narrow(0, 0.5, 1), 'ERR_ARG');
  assertCode(t, () => x.slice(0, 0, 5, 0), 'ERR_ARG');
  assertCode(t, () => x.slice(0, 0, 5, -1), 'ERR_ARG');
  assertCode(t, () => x.slice(0, 0.5), 'ERR_ARG');
  assertCode(t, () => x.select(0, 10), 'ERR_INDEX');
  assertCode(t, () => x.select(0, -11), 'ERR_INDEX');
  assertCode(t, () => x.select(0, 1.5), 'ERR_ARG');
  assertCode(t, () => ig.tensor(1).select(0, 0), 'ERR_SHAPE');
  assertCode(t, () => ig.tensor(1).narrow(0, 0, 1), 'ERR_SHAPE');
  assertCode(t, () => ig.tensor(1).slice(0), 'ERR_SHAPE');
});

test('expand (-1 keeps a size, new leading dims) shares storage with stride 0', (t) => {
  const rng = new Rng(4);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 3, 4).map((s) => (rng.next() < 0.4 ? 1 : s));
    const { t: x, ref } = sample(rng, shape);
    const lead = Array.from({ length: rng.int(0, 2) }, () => rng.int(1, 3));
    const grown = shape.map((s) => (s === 1 ? rng.int(1, 4) : s));
    const request = [...lead, ...grown.map((g, i) => (g === shape[i] && rng.next() < 0.4 ? -1 : g))];
    const target = [...lead, ...grown];
    const before = storages();
    const e = x.expand(...request);
    t.is(storages(), before);
    t.deepEqual(e.shape, target);
    const m = meta(e);
    target.forEach((size, d) => {
      const own = d - lead.length;
      if (size > 1 && (own < 0 || shape[own] === 1)) t.is(m.strides[d], 0, `broadcast dim ${d}`);
    });
    assertClose(t, e, refGather(ref, target, (idx) => idx.slice(lead.length).map((v, k) => (shape[k] === 1 ? 0 : v))), [0, 0]);
    x.dispose();
    e.dispose();
  }
  const x = ig.zeros([3, 1]);
  t.deepEqual(x.expand(-1, 4).shape, [3, 4]);
  t.deepEqual(x.expand([2, 3, 5]).shape, [2, 3, 5]);
  assertCode(t, () => x.expand(4, 4), 'ERR_SHAPE');
  assertCode(t, () => x.expand(4), 'ERR_SHAPE');
  assertCode(t, () => x.expand(-1, -1, 4), 'ERR_ARG');
  assertCode(t, () => x.expand(3, -2), 'ERR_ARG');
});

test('squeeze, unsqueeze and flatten', (t) => {
  const rng = new Rng(5);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 4, 3).map((s) => (rng.next() < 0.4 ? 1 : s));
    const { t: x, ref } = sample(rng, shape);
    const before = storages();
    const all = x.squeeze();
    t.deepEqual(all.shape, shape.filter((s) => s !== 1));
    assertClose(t, all, { shape: all.shape.slice(), data: ref.data }, [0, 0]);
    if (shape.length > 0) {
      const d = rng.int(-shape.length, shape.length - 1);
      const one = x.squeeze(d);
      const dd = d < 0 ? d + shape.length : d;
      t.deepEqual(one.shape, shape[dd] === 1 ? shape.filter((_, k) => k !== dd) : shape);
      one.dispose();
    }
    const u = rng.int(-shape.length - 1, shape.length);
    const un = x.unsqueeze(u);
    const uu = u < 0 ? u + shape.length + 1 : u;
    t.deepEqual(un.shape, [...shape.slice(0, uu), 1, ...shape.slice(uu)]);
    assertClose(t, un, { shape: un.shape.slice(), data: ref.data }, [0, 0]);
    t.is(storages(), before, 'squeeze and unsqueeze are views');

    const f = x.flatten();
    t.deepEqual(f.shape, shape.length ? [numel(shape)] : [1]);
    if (shape.length >= 2) {
      const s = rng.int(0, shape.length - 1);
      const e = rng.int(s, shape.length - 1);
      const part = x.flatten(s, e);
      t.deepEqual(part.shape, [...shape.slice(0, s), numel(shape.slice(s, e + 1)), ...shape.slice(e + 1)]);
      assertClose(t, part, { shape: part.shape.slice(), data: ref.data }, [0, 0]);
      part.dispose();
    }
    for (const v of [x, all, un, f]) v.dispose();
  }
  t.deepEqual(ig.tensor(5).flatten().shape, [1]);
  t.deepEqual(ig.tensor(5).squeeze(0).shape, []);
  t.deepEqual(ig.tensor(5).unsqueeze(-1).shape, [1]);
  assertCode(t, () => ig.zeros([2, 1]).squeeze(2), 'ERR_INDEX');
  assertCode(t, () => ig.zeros([2, 1]).unsqueeze(3), 'ERR_INDEX');
  assertCode(t, () => ig.zeros([2, 1]).unsqueeze(0.5), 'ERR_ARG');
  assertCode(t, () => ig.zeros([2, 1, 3]).flatten(2, 1), 'ERR_ARG');
});

test('split and chunk: piece sizes as PyTorch, views of the input', (t) => {
  const rng = new Rng(6);
  for (let trial = 0; trial < 60; trial++) {
    const shape = randomShape(rng, 3, 7, 1);
    const { t: x, ref } = sample(rng, shape);
    const d = rng.int(0, shape.length - 1);
    const size = shape[d];
    const before = storages();
    const check = (pieces: Tensor[], sizes: number[], what: string) => {
      t.deepEqual(pieces.map((p) => p.shape[d]), sizes, what);
      let at = 0;
      for (const p of pieces) {
        const from = at;
        assertClose(t, p, refGather(ref, p.shape.slice(), (idx) => { const s = idx.slice(); s[d] += from; return s; }), [0, 0]);
        at += p.shape[d];
      }
    };
    const each = rng.int(1, size + 1);
    const bySize = x.split(each, d);
    check(bySize, Array.from({ length: Math.ceil(size / each) }, (_, i) => Math.min(each, size - i * each)), `split(${each}) of ${size}`);
    const sizes: number[] = [];
    for (let left = size; left > 0; ) {
      const s = rng.int(0, left);
      sizes.push(s);
      left -= s;
    }
    check(x.split(sizes, d), sizes, `split([${sizes}])`);
    const n = rng.int(1, 8);
    const per = Math.ceil(size / n);
    check(x.chunk(n, d), Array.from({ length: Math.ceil(size / per) }, (_, i) => Math.min(per, size - i * per)), `chunk(${n}) of ${size}`);
    t.is(storages(), before, 'pieces are views');
  }
  t.deepEqual(ig.zeros([0]).split(2).map((p) => p.shape), [[0]]);
  t.deepEqual(ig.zeros([0]).chunk(3).map((p) => p.shape), [[0], [0], [0]]);
  t.deepEqual(ig.zeros([3, 0]).chunk(2, 1).map((p) => p.shape), [[3, 0], [3, 0]]);
  t.deepEqual(ig.zeros([6]).chunk(4).map((p) => p.shape[0]), [2, 2, 2]);
  t.deepEqual(ig.zeros([5]).chunk(4).map((p) => p.shape[0]), [2, 2, 1]);
  const x = ig.zeros([2, 3]);
  assertCode(t, () => x.split([1, 1], 1), 'ERR_SHAPE');
  assertCode(t, () => x.split([4, -1], 1), 'ERR_SHAPE');
  assertCode(t, () => x.split(0), 'ERR_ARG');
  assertCode(t, () => x.split('1' as unknown as number), 'ERR_ARG');
  assertCode(t, () => x.split(1, 2), 'ERR_INDEX');
  assertCode(t, () => x.chunk(0), 'ERR_ARG');
  assertCode(t, () => x.chunk(1.5), 'ERR_ARG');
  assertCode(t, () => ig.tensor(1).split(1), 'ERR_SHAPE');
  assertCode(t, () => ig.tensor(1).chunk(1), 'ERR_SHAPE');
});

test('contiguous, clone and to(): when they share storage and when they copy', (t) => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 40; trial++) {
    const shape = randomShape(rng, 4, 4, 1);
    const { t: x, ref } = sample(rng, shape);
    let before = storages();
    const c = x.contiguous();
    t.true(c.isContiguous());
    assertClose(t, c, ref, [0, 0]);
    if (x.isContiguous()) {
      t.is(storages(), before, 'contiguous of a contiguous tensor is an alias');
      t.is(meta(c).offset, meta(x).offset);
    } else {
      t.is(storages(), before + 1);
      t.deepEqual(meta(c).strides, rowMajorStrides(shape));
    }
    before = storages();
    const k = x.clone();
    t.is(storages(), before + 1, 'clone always copies');
    t.true(k.isContiguous());
    assertClose(t, k, ref, [0, 0]);
    before = storages();
    const same = x.to(x.dtype);
    const moved = x.to('cpu');
    t.is(storages(), before, 'to() the same dtype or device is an alias');
    assertClose(t, same, ref, [0, 0]);
    assertClose(t, moved, ref, [0, 0]);
    const other = x.to(x.dtype === 'float64' ? 'float32' : 'float64');
    t.is(storages(), before + 1);
    for (const v of [x, c, k, same, moved, other]) v.dispose();
  }
  const x = ig.zeros([2]);
  assertCode(t, () => x.to(UNAVAILABLE_DEVICE), 'ERR_DEVICE');
  assertCode(t, () => x.to('cuda:99'), 'ERR_DEVICE');
  assertCode(t, () => x.to('float8' as DType), 'ERR_ARG');
  assertCode(t, () => x.to(3 as unknown as DType), 'ERR_ARG');
});

test('views keep their storage alive after the base is disposed', (t) => {
  const base = ig.tidy(() => ig.arange(12, { dtype: 'float32' }).reshape(3, 4));
  const before = ig.memory();
  const transposed = base.mT;
  const v = transposed.slice(0, 1, 3);
  base.dispose();
  transposed.dispose();
  t.is(ig.memory().storages, before.storages, 'the storage stays while a view uses it');
  t.deepEqual(v.toArray(), [[1, 5, 9], [2, 6, 10]]);
  v.dispose();
  t.is(ig.memory().storages, before.storages - 1, 'and goes with the last view');
});

test('random chains of view ops against the reference', (t) => {
  const rng = new Rng(8);
  for (let trial = 0; trial < 60; trial++) {
    let { t: x, ref } = sample(rng, randomShape(rng, 4, 4, 1));
    for (let step = 0; step < 6; step++) {
      const shape = x.shape.slice();
      const n = shape.length;
      const op = rng.pick(['permute', 'slice', 'select', 'expand', 'unsqueeze', 'reshape', 'squeeze', 'narrow']);
      let next: Tensor;
      let nextRef: Ref;
      if (n === 0 && !['unsqueeze', 'reshape', 'expand'].includes(op)) continue;
      switch (op) {
        case 'permute': {
          const dims = shape.map((_, i) => i).sort(() => rng.next() - 0.5);
          next = x.permute(...dims);
          nextRef = refGather(ref, dims.map((d) => shape[d]), (idx) => { const s = new Array<number>(n); dims.forEach((d, i) => (s[d] = idx[i])); return s; });
          break;
        }
        case 'slice': case 'narrow': {
          const d = rng.int(0, n - 1);
          const start = rng.int(0, shape[d]);
          const step = op === 'slice' ? rng.int(1, 3) : 1;
          const end = rng.int(start, shape[d]);
          next = op === 'slice' ? x.slice(d, start, end, step) : x.narrow(d, start, end - start);
          const out = shape.slice();
          out[d] = Math.ceil((end - start) / step);
          nextRef = refGather(ref, out, (idx) => { const s = idx.slice(); s[d] = start + idx[d] * step; return s; });
          break;
        }
        case 'select': {
          const d = rng.int(0, n - 1);
          if (shape[d] === 0) continue;
          const i = rng.int(0, shape[d] - 1);
          next = x.select(d, i);
          nextRef = refGather(ref, shape.filter((_, k) => k !== d), (idx) => [...idx.slice(0, d), i, ...idx.slice(d)]);
          break;
        }
        case 'expand': {
          const target = [rng.int(1, 3), ...shape.map((s) => (s === 1 ? rng.int(1, 3) : s))];
          next = x.expand(...target);
          nextRef = refGather(ref, target, (idx) => idx.slice(1).map((v, k) => (shape[k] === 1 ? 0 : v)));
          break;
        }
        case 'unsqueeze': {
          const d = rng.int(0, n);
          next = x.unsqueeze(d);
          nextRef = { shape: [...shape.slice(0, d), 1, ...shape.slice(d)], data: ref.data };
          break;
        }
        case 'squeeze': {
          next = x.squeeze();
          nextRef = { shape: shape.filter((s) => s !== 1), data: ref.data };
          break;
        }
        default: {
          const target = randomFactorisation(rng, x.numel);
          next = x.reshape(...target);
          nextRef = { shape: target, data: ref.data };
        }
      }
      assertClose(t, next, nextRef, [0, 0], `${op} step ${step}`);
      x.dispose();
      [x, ref] = [next, nextRef];
      if (x.numel > 2000) break;
    }
    x.dispose();
  }
});
