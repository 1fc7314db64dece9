import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor, nn } from '../../lib';
import { addon } from '../../lib/native';
import { LAYOUTS, Ref, Rng, assertClose, assertCode, randomShape, randomTensor, refOf } from '../helpers';
import { randomizeParameters } from './models';
import { attentionWeights, refAttention, refRopeTables, refRotate, repeatBatch } from './reference';

const live = () => ig.memory().tensors;

/** Integer positions as an int64 tensor of `shape`. */
function positionTensor(values: number[], shape: number[]): Tensor {
  return ig.tensor(BigInt64Array.from(values, BigInt), { shape });
}

test('RotaryEmbedding: inverse frequencies and cos/sin tables as HF computes them', (t) => {
  const rng = new Rng(31);
  for (const dim of [2, 4, 8, 64]) {
    for (const theta of [10000, 500000]) {
      const rope = new nn.RotaryEmbedding(dim, { theta });
      t.is(rope.invFreq.length, dim / 2);
      rope.invFreq.forEach((f, i) => t.true(Math.abs(f * theta ** ((2 * i) / dim) - 1) < 1e-6, `invFreq[${i}] of dim ${dim}`));
      const shape = [2, 7];
      const positions = Array.from({ length: 14 }, () => rng.int(0, 200));
      const ids = positionTensor(positions, shape);
      for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
        const { cos, sin } = rope.call(ids, dtype);
        t.is(cos.dtype, dtype);
        const ref = refRopeTables(positions, dim, theta);
        // float32 angles (position * invFreq, rounded as HF's float32 matmul) are off by up to ~2e-5 at position 200
        const tol: [number, number] = dtype === 'bfloat16' ? [0, 5e-3] : [0, 3e-5];
        assertClose(t, cos, { shape: [...shape, dim], data: ref.cos }, tol, `cos dim ${dim} theta ${theta} ${dtype}`);
        assertClose(t, sin, { shape: [...shape, dim], data: ref.sin }, tol, `sin dim ${dim} theta ${theta} ${dtype}`);
        cos.dispose();
        sin.dispose();
      }
      ids.dispose();
      rope.dispose();
    }
  }
});

test('RotaryEmbedding: float32 angles at large positions, as HF (not the float64 formula)', (t) => {
  const dim = 8;
  const rope = new nn.RotaryEmbedding(dim);
  const ids = positionTensor([123457], [1]);
  const { cos } = rope.call(ids);
  const f = Math.fround;
  // HF: inv_freq = 1.0 / (10000 ** (arange(0, dim, 2).float() / dim)); freqs = inv_freq * position, all float32
  const expected = Float64Array.from({ length: dim }, (_, j) => {
    const i = j % (dim / 2);
    const invFreq = f(1 / f(10000 ** f((2 * i) / dim)));
    return f(Math.cos(f(123457 * invFreq)));
  });
  assertClose(t, cos, { shape: [1, dim], data: expected }, [0, 1e-6]);
  const exact = refRopeTables([123457], dim, 10000).cos;
  t.true(expected.some((v, j) => Math.abs(v - exact[j]) > 1e-4), 'the float32 rounding is visible there');
  cos.dispose();
  ids.dispose();
  rope.dispose();
});

test('RotaryEmbedding: cached tables grow on demand without leaking; non-persistent buffers', (t) => {
  const rope = new nn.RotaryEmbedding(4);
  t.deepEqual(rope.namedBuffers(), []);
  const small = positionTensor([0, 1, 2], [3]);
  const large = positionTensor([5, 90, 7], [3]);
  ig.tidy(() => rope.call(small));
  t.deepEqual(rope.namedBuffers().map(([n, b]) => [n, b.shape]), [['cos_cached', [3, 4]], ['sin_cached', [3, 4]]]);
  const level = live();
  const { cos, sin } = ig.tidy(() => rope.call(large));
  t.is(live(), level + 2, 'the old tables were disposed, the new ones kept');
  t.deepEqual(rope.buffers()[0].shape, [91, 4]);
  const ref = refRopeTables([5, 90, 7], 4, 10000);
  assertClose(t, cos, { shape: [3, 4], data: ref.cos }, [0, 3e-5]);
  t.deepEqual(ig.tidy(() => [...rope.stateDict().keys()]), []);
  const empty = ig.zeros([0], { dtype: 'int64' });
  const none = rope.call(empty);
  t.deepEqual(none.cos.shape, [0, 4]);
  for (const u of [small, large, cos, sin, empty, none.cos, none.sin]) u.dispose();
  rope.dispose();
  t.true(rope.buffers().every((b) => b.isDisposed));
});

/** Runs `fn` with Tensor.prototype.item and .data throwing: proof that nothing is read back to the host. */
function withoutReadBack<T>(fn: () => T): T {
  const proto = Tensor.prototype as unknown as Record<'item' | 'data', unknown>;
  const saved = { item: proto.item, data: proto.data };
  proto.item = proto.data = () => {
    throw new Error('read back to the host');
  };
  try {
    return fn();
  } finally {
    Object.assign(proto, saved);
  }
}

test('RotaryEmbedding: maxPosition gives the same tables without reading the positions back', (t) => {
  const rng = new Rng(21);
  const values = Array.from({ length: 12 }, () => Math.floor(rng.next() * 40));
  const positions = positionTensor(values, [3, 4]);
  const highest = Math.max(...values);
  const checked = new nn.RotaryEmbedding(8);
  const told = new nn.RotaryEmbedding(8);
  const want = ig.tidy(() => checked.call(positions, 'float64'));
  const got = withoutReadBack(() => ig.tidy(() => told.call(positions, 'float64', { maxPosition: highest })));
  for (const k of ['cos', 'sin'] as const) {
    t.deepEqual(got[k].shape, [3, 4, 8]);
    assertClose(t, got[k], refOf(want[k]), [0, 0]);
  }
  t.deepEqual(told.buffers()[0].shape, [highest + 1, 8], 'the tables hold the positions up to maxPosition');
  t.throws(() => withoutReadBack(() => checked.call(positions)), { message: /read back/ }, 'without maxPosition the range is read back');
  // a maxPosition below a position: the table lookup still refuses it (eagerly)
  const small = new nn.RotaryEmbedding(8);
  assertCode(t, () => small.call(positions, 'float32', { maxPosition: 2 }), 'ERR_INDEX');
  for (const bad of [-1, 1.5, NaN]) assertCode(t, () => small.call(positions, 'float32', { maxPosition: bad }), 'ERR_ARG', /maxPosition/);
  for (const u of [positions, want.cos, want.sin, got.cos, got.sin]) u.dispose();
  for (const m of [checked, told, small]) m.dispose();
});

test('RotaryEmbedding.positionRange: the tables of start .. start + length - 1 as views, nothing read back', (t) => {
  const rope = new nn.RotaryEmbedding(6);
  const positions = positionTensor([4, 5, 6, 7, 8], [1, 5]);
  const want = ig.tidy(() => rope.call(positions));
  for (const dtype of ['float32', 'float64'] as const) {
    const got = withoutReadBack(() => rope.positionRange(4, 5, 'cpu', dtype));
    for (const k of ['cos', 'sin'] as const) {
      t.deepEqual(got[k].shape, [1, 5, 6]);
      t.is(got[k].dtype, dtype);
      assertClose(t, got[k], refOf(want[k]), [0, 0]);
      got[k].dispose();
    }
  }
  const grown = rope.positionRange(30, 2);
  t.deepEqual(rope.buffers()[0].shape, [32, 6], 'the tables grow to hold the range');
  assertCode(t, () => rope.positionRange(-1, 2), 'ERR_ARG', /start/);
  assertCode(t, () => rope.positionRange(0, 2, 'tpu' as ig.Device), 'ERR_DEVICE');
  for (const u of [positions, want.cos, want.sin, grown.cos, grown.sin]) u.dispose();
  rope.dispose();
});

test('LlamaModel: positions it makes itself are not read back (no host sync in a forward with labels)', (t) => {
  ig.manualSeed(3);
  const model = new ig.LlamaForCausalLM({ vocabSize: 11, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 1, numAttentionHeads: 2 });
  const ids = ig.tensor(BigInt64Array.from([1, 2, 3, 4, 5, 6], BigInt), { shape: [2, 3] });
  const positions = positionTensor([0, 1, 2], [1, 3]);
  const want = ig.tidy(() => model.forward(ids, { labels: ids, positionIds: positions }).loss!.item());
  const loss = withoutReadBack(() => model.forward(ids, { labels: ids }).loss!);
  t.is(loss.item(), want);
  for (const u of [ids, positions, loss]) u.dispose();
  model.dispose();
});

test('RotaryEmbedding: bad arguments', (t) => {
  for (const dim of [0, 3, -2, 2.5]) assertCode(t, () => new nn.RotaryEmbedding(dim), 'ERR_ARG');
  for (const theta of [0, -1, Infinity, NaN]) assertCode(t, () => new nn.RotaryEmbedding(4, { theta }), 'ERR_ARG');
  const rope = new nn.RotaryEmbedding(4);
  const floats = ig.tensor([0, 1]);
  const negative = positionTensor([2, -1], [2]);
  const ok = positionTensor([1], [1]);
  assertCode(t, () => rope.call(floats), 'ERR_DTYPE');
  assertCode(t, () => rope.call(negative), 'ERR_INDEX');
  assertCode(t, () => rope.call(ok, 'int32'), 'ERR_DTYPE');
  assertCode(t, () => rope.call(null as unknown as Tensor), 'ERR_ARG');
  for (const u of [floats, negative, ok]) u.dispose();
  rope.dispose();
});

test('rotateHalf and applyRotary against the HF formula (layouts, dtypes, broadcast tables)', (t) => {
  const rng = new Rng(32);
  for (let trial = 0; trial < 40; trial++) {
    const dtype = rng.pick(['float32', 'float64', 'bfloat16'] as DType[]);
    const dim = 2 * rng.int(1, 4);
    const lead = randomShape(rng, 3, 3);
    const shape = [...lead, dim];
    const x = randomTensor(rng, shape, dtype, rng.pick(LAYOUTS));
    // tables over the last two dims, broadcast over the rest
    const tableShape = shape.length >= 2 ? shape.slice(-2) : shape;
    const cos = randomTensor(rng, tableShape, dtype);
    const sin = randomTensor(rng, tableShape, dtype);
    const rows = x.ref.data.length / dim;
    const tableRows = cos.ref.data.length / dim;
    const rotated: Ref = { shape, data: new Float64Array(x.ref.data.length) };
    const applied: Ref = { shape, data: new Float64Array(x.ref.data.length) };
    const zeros = new Float64Array(dim);
    const ones = new Float64Array(dim).fill(1);
    for (let r = 0; r < rows; r++) {
      const v = x.ref.data.slice(r * dim, (r + 1) * dim);
      const tr = r % tableRows;
      rotated.data.set(refRotate(v, zeros, ones), r * dim);
      applied.data.set(refRotate(v, cos.ref.data.subarray(tr * dim, (tr + 1) * dim), sin.ref.data.subarray(tr * dim, (tr + 1) * dim)), r * dim);
    }
    const rh = nn.rotateHalf(x.t);
    const out = nn.applyRotary(x.t, cos.t, sin.t);
    assertClose(t, rh, rotated, [0, 0], `rotateHalf ${dtype} ${JSON.stringify(shape)}`);
    assertClose(t, out, applied, undefined, `applyRotary ${dtype} ${JSON.stringify(shape)}`);
    for (const u of [x.t, cos.t, sin.t, rh, out]) u.dispose();
  }
  const odd = ig.ones([2, 3]);
  const scalar = ig.tensor(1);
  assertCode(t, () => nn.rotateHalf(odd), 'ERR_SHAPE');
  assertCode(t, () => nn.rotateHalf(scalar), 'ERR_SHAPE');
  odd.dispose();
  scalar.dispose();
});

test('causalMask: 0 on and below the diagonal, -Infinity above', (t) => {
  for (const [n, dtype] of [[1, 'float32'], [4, 'float32'], [5, 'bfloat16'], [3, 'float64']] as [number, DType][]) {
    const m = nn.causalMask(n, { dtype });
    t.is(m.dtype, dtype);
    const expected = Array.from({ length: n }, (_, i) => Array.from({ length: n }, (_, j) => (j > i ? -Infinity : 0)));
    t.deepEqual(m.toArray(), expected);
    m.dispose();
  }
  t.deepEqual(nn.causalMask(0).shape, [0, 0]);
  assertCode(t, () => nn.causalMask(-1), 'ERR_ARG');
  assertCode(t, () => nn.causalMask(2, { dtype: 'int32' }), 'ERR_DTYPE');
});

interface AttnCase {
  heads: number;
  kvHeads: number;
  hidden: number;
  headDim?: number;
  bias?: boolean;
}

const CASES: AttnCase[] = [
  { heads: 4, kvHeads: 2, hidden: 8 },
  { heads: 4, kvHeads: 4, hidden: 8 },
  { heads: 4, kvHeads: 1, hidden: 16 },
  { heads: 2, kvHeads: 1, hidden: 8, headDim: 6, bias: true },
];

const TOLERANCE: Record<string, [number, number]> = { float64: [1e-10, 1e-12], float32: [1e-4, 1e-5], bfloat16: [5e-2, 3e-2] };

/** An attention layer of `c` with random weights, an input and per-batch position tables. */
function attnSetup(rng: Rng, c: AttnCase, dtype: DType, batch: number, seq: number, perBatchPositions: boolean) {
  const attn = new nn.CausalSelfAttention({
    hiddenSize: c.hidden,
    numAttentionHeads: c.heads,
    numKeyValueHeads: c.kvHeads,
    headDim: c.headDim,
    attentionBias: c.bias,
    dtype,
  });
  randomizeParameters(attn, rng, -0.5, 0.5);
  const x = randomTensor(rng, [batch, seq, c.hidden], dtype, rng.pick(LAYOUTS));
  const rope = new nn.RotaryEmbedding(attn.headDim);
  const positions = perBatchPositions
    ? positionTensor(Array.from({ length: batch * seq }, (_, i) => 3 * Math.floor(i / seq) + (i % seq)), [batch, seq])
    : ig.arange(seq, { dtype: 'int64' });
  const pe = rope.call(positions, dtype);
  const [cos, sin] = [refOf(pe.cos), refOf(pe.sin)];
  const table = (r: Ref) => (perBatchPositions ? r : repeatBatch(r, batch));
  const shape = { heads: c.heads, kvHeads: c.kvHeads, headDim: attn.headDim };
  const done = () => {
    for (const u of [x.t, positions, pe.cos, pe.sin]) u.dispose();
    attn.dispose();
    rope.dispose();
  };
  return { attn, x, pe, cos: table(cos), sin: table(sin), shape, done };
}

test('CausalSelfAttention: against a float64 reference (GQA, MHA, MQA, headDim, bias; dtypes; per-batch positions)', (t) => {
  const rng = new Rng(33);
  for (const c of CASES) {
    for (const dtype of ['float64', 'float32', 'bfloat16'] as DType[]) {
      for (const perBatch of [false, true]) {
        const s = attnSetup(rng, c, dtype, 2, 5, perBatch);
        t.deepEqual(s.attn.namedParameters().map(([n]) => n),
          c.bias ? ['q_proj.weight', 'q_proj.bias', 'k_proj.weight', 'k_proj.bias', 'v_proj.weight', 'v_proj.bias', 'o_proj.weight', 'o_proj.bias']
            : ['q_proj.weight', 'k_proj.weight', 'v_proj.weight', 'o_proj.weight']);
        const out = s.attn.call(s.x.t, s.pe);
        t.is(out.dtype, dtype);
        const ref = refAttention(s.x.ref, attentionWeights(s.attn), s.shape, s.cos, s.sin);
        assertClose(t, out, ref, TOLERANCE[dtype], `attention ${JSON.stringify(c)} ${dtype} perBatch ${perBatch}`);
        out.dispose();
        s.done();
      }
    }
  }
});

test('CausalSelfAttention: the causal mask hides the future (changing a later token leaves earlier outputs alone)', (t) => {
  const rng = new Rng(34);
  const s = attnSetup(rng, CASES[0], 'float64', 1, 6, false);
  const head = s.x.t.narrow(1, 0, 4);
  const noise = ig.randn([1, 2, 8], { dtype: 'float64' });
  const replaced = ig.cat([head, noise], 1);
  const [a, b] = [s.attn.call(s.x.t, s.pe), s.attn.call(replaced, s.pe)];
  t.deepEqual(refOf(a.narrow(1, 0, 4)).data, refOf(b.narrow(1, 0, 4)).data);
  t.notDeepEqual(refOf(a.narrow(1, 4, 2)).data, refOf(b.narrow(1, 4, 2)).data);
  for (const u of [head, noise, replaced, a, b]) u.dispose();
  s.done();
});

test('CausalSelfAttention: explicit additive masks ([seq, seq], [batch, 1, seq, seq] padding, [1, heads, seq, seq] per head)', (t) => {
  const rng = new Rng(35);
  const [B, S] = [2, 5];
  for (const c of CASES.slice(0, 3)) {
    for (const dtype of ['float64', 'float32'] as DType[]) {
      const s = attnSetup(rng, c, dtype, B, S, true);
      const causal = (i: number, j: number) => (j > i ? -Infinity : 0);
      // batch 1 is left-padded by one token: key 0 is hidden from the other queries
      const padding = (b: number, _h: number, i: number, j: number) => causal(i, j) + (b === 1 && j === 0 && i > 0 ? -Infinity : 0);
      const perHead = Array.from({ length: c.heads * S * S }, () => rng.uniform(-2, 2));
      const headMask = (_b: number, h: number, i: number, j: number) => causal(i, j) + perHead[(h * S + i) * S + j];
      const build = (shape: number[], f: (b: number, h: number, i: number, j: number) => number) => {
        const [nb, nh] = shape.length === 4 ? [shape[0], shape[1]] : [1, 1];
        const data = new Float64Array(nb * nh * S * S);
        for (let b = 0; b < nb; b++) for (let h = 0; h < nh; h++) for (let i = 0; i < S; i++) for (let j = 0; j < S; j++) data[((b * nh + h) * S + i) * S + j] = f(b, h, i, j);
        return ig.tensor(data, { shape });
      };
      const masks: [Tensor, (b: number, h: number, i: number, j: number) => number, string][] = [
        [build([S, S], (_b, _h, i, j) => causal(i, j)), (_b, _h, i, j) => causal(i, j), '[S, S]'],
        [build([B, 1, S, S], padding), padding, '[B, 1, S, S]'],
        [build([1, c.heads, S, S], headMask), headMask, '[1, H, S, S]'],
      ];
      for (const [mask, f, what] of masks) {
        const out = s.attn.call(s.x.t, s.pe, mask);
        const ref = refAttention(s.x.ref, attentionWeights(s.attn), s.shape, s.cos, s.sin, f);
        assertClose(t, out, ref, TOLERANCE[dtype], `mask ${what} ${JSON.stringify(c)} ${dtype}`);
        out.dispose();
        mask.dispose();
      }
      s.done();
    }
  }
});

test('CausalSelfAttention: a forward leaves only its output behind (and its graph, when recorded, until a tidy ends)', (t) => {
  const s = attnSetup(new Rng(36), CASES[0], 'float32', 2, 4, false);
  ig.noGrad(() => s.attn.call(s.x.t, s.pe)).dispose();
  const level = live();
  ig.tidy(() => {
    s.attn.call(s.x.t, s.pe);
  });
  t.is(live(), level);
  const out = ig.noGrad(() => s.attn.call(s.x.t, s.pe));
  t.is(live(), level + 1);
  out.dispose();
  s.done();
});

test('CausalSelfAttention: the heads are views of the projections, read in place forward and backward (no operand copies)', (t) => {
  const copies = () => (addon as { matmulOperandCopies(): number }).matmulOperandCopies();
  const s = attnSetup(new Rng(38), CASES[0], 'float32', 2, 5, false);
  const x = s.x.t.contiguous().requiresGrad_();
  const before = copies();
  const out = s.attn.call(x, s.pe);
  const ones = ig.onesLike(out);
  out.backward(ones);
  t.is(copies(), before);
  for (const u of [out, ones]) u.dispose();
  x.dispose();
  s.done();
});

test('CausalSelfAttention: bad configurations and inputs', (t) => {
  const base = { hiddenSize: 8, numAttentionHeads: 4 };
  assertCode(t, () => new nn.CausalSelfAttention({ ...base, numKeyValueHeads: 3 }), 'ERR_ARG');
  assertCode(t, () => new nn.CausalSelfAttention({ ...base, numKeyValueHeads: 0 }), 'ERR_ARG');
  assertCode(t, () => new nn.CausalSelfAttention({ hiddenSize: 10, numAttentionHeads: 4 }), 'ERR_ARG');
  assertCode(t, () => new nn.CausalSelfAttention({ ...base, headDim: 3 }), 'ERR_ARG');
  assertCode(t, () => new nn.CausalSelfAttention({ ...base, numAttentionHeads: 0 }), 'ERR_ARG');
  assertCode(t, () => new nn.CausalSelfAttention({ ...base, dtype: 'int64' }), 'ERR_DTYPE');
  assertCode(t, () => new nn.CausalSelfAttention(undefined as unknown as nn.AttentionOptions), 'ERR_ARG');
  const s = attnSetup(new Rng(37), CASES[0], 'float32', 2, 4, false);
  const flat = ig.ones([4, 8]);
  const wide = ig.ones([2, 4, 6]);
  assertCode(t, () => s.attn.call(flat, s.pe), 'ERR_SHAPE');
  assertCode(t, () => s.attn.call(wide, s.pe), 'ERR_SHAPE');
  const shortCos = s.pe.cos.narrow(0, 0, 3);
  assertCode(t, () => s.attn.call(s.x.t, { cos: shortCos, sin: s.pe.sin }), 'ERR_SHAPE', /positionEmbeddings\.cos/);
  assertCode(t, () => s.attn.call(s.x.t, null as unknown as nn.PositionEmbeddings), 'ERR_ARG');
  assertCode(t, () => s.attn.call(s.x.t, { cos: s.pe.cos } as nn.PositionEmbeddings), 'ERR_ARG');
  const intCos = ig.zeros([4, 2], { dtype: 'int32' });
  assertCode(t, () => s.attn.call(s.x.t, { cos: intCos, sin: s.pe.sin }), 'ERR_DTYPE');
  const badMask = ig.zeros([2, 2, 4, 4]);
  const boolMask = ig.zeros([4, 4], { dtype: 'bool' });
  const shortMask = ig.zeros([3, 4]);
  assertCode(t, () => s.attn.call(s.x.t, s.pe, badMask), 'ERR_SHAPE', /attentionMask/);
  assertCode(t, () => s.attn.call(s.x.t, s.pe, shortMask), 'ERR_SHAPE');
  assertCode(t, () => s.attn.call(s.x.t, s.pe, boolMask), 'ERR_DTYPE');
  for (const u of [flat, wide, shortCos, intCos, badMask, boolMask, shortMask]) u.dispose();
  s.done();
});
