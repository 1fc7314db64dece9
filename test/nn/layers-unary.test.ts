/**
 * The modules that compute with unary elementwise ops (silu in SwiGLU and the decoder block, the
 * comparison that draws Dropout's mask).
 */
import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor, nn } from '../../lib';
import { LAYOUTS, Rng, assertClose, randomShape, randomTensor, refOf } from '../helpers';
import { TinyLlama, randomizeParameters, snapshot } from './models';
import { attentionWeights, refAdd, refAttention, refRmsNorm, refSwiGLU, repeatBatch } from './reference';

test('SwiGLU: down(silu(gate(x)) * up(x)) against a float64 reference; HF names', (t) => {
  const rng = new Rng(51);
  for (let trial = 0; trial < 30; trial++) {
    const dtype = rng.pick(['float32', 'float64', 'bfloat16'] as DType[]);
    const [hidden, inter] = [rng.int(1, 8), rng.int(1, 12)];
    const mlp = new nn.SwiGLU(hidden, inter, { dtype });
    t.deepEqual(mlp.namedParameters().map(([n, p]) => [n, p.shape]), [
      ['gate_proj.weight', [inter, hidden]],
      ['up_proj.weight', [inter, hidden]],
      ['down_proj.weight', [hidden, inter]],
    ]);
    const x = randomTensor(rng, [...randomShape(rng, 2, 3), hidden], dtype, rng.pick(LAYOUTS), -2, 2);
    const out = mlp.call(x.t);
    const ref = refSwiGLU(x.ref, refOf(mlp.gate_proj.weight), refOf(mlp.up_proj.weight), refOf(mlp.down_proj.weight));
    const tol: [number, number] | undefined = dtype === 'bfloat16' ? [3e-2, 3e-2] : dtype === 'float32' ? [1e-5, 1e-5] : undefined;
    assertClose(t, out, ref, tol, `SwiGLU ${dtype} ${hidden}/${inter}`);
    for (const u of [x.t, out]) u.dispose();
    mlp.dispose();
  }
  const biased = new nn.SwiGLU(4, 6, { bias: true });
  t.deepEqual(biased.namedParameters().map(([n]) => n), ['gate_proj.weight', 'gate_proj.bias', 'up_proj.weight', 'up_proj.bias', 'down_proj.weight', 'down_proj.bias']);
  biased.dispose();
});

const BLOCK = { hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-5 };

test('DecoderBlock: pre-norm residual block against a float64 reference (GQA 4/2); output shape', (t) => {
  const rng = new Rng(52);
  for (const dtype of ['float64', 'float32'] as DType[]) {
    const block = new nn.DecoderBlock({ ...BLOCK, dtype });
    randomizeParameters(block, rng, -0.5, 0.5);
    const [B, S] = [2, 5];
    const x = randomTensor(rng, [B, S, 8], dtype, rng.pick(LAYOUTS));
    const rope = new nn.RotaryEmbedding(2);
    const positions = ig.arange(S, { dtype: 'int64' });
    const pe = rope.call(positions, dtype);
    const out = block.call(x.t, pe);
    t.deepEqual(out.shape, [B, S, 8]);
    t.is(out.dtype, dtype);
    const shape = { heads: 4, kvHeads: 2, headDim: 2 };
    const [cos, sin] = [repeatBatch(refOf(pe.cos), B), repeatBatch(refOf(pe.sin), B)];
    const h = refAdd(x.ref, refAttention(refRmsNorm(x.ref, refOf(block.input_layernorm.weight!), 1e-5), attentionWeights(block.self_attn), shape, cos, sin));
    const mlp = block.mlp;
    const normed = refRmsNorm(h, refOf(block.post_attention_layernorm.weight!), 1e-5);
    const ref = refAdd(h, refSwiGLU(normed, refOf(mlp.gate_proj.weight), refOf(mlp.up_proj.weight), refOf(mlp.down_proj.weight)));
    assertClose(t, out, ref, dtype === 'float32' ? [1e-4, 1e-5] : [1e-10, 1e-12], `DecoderBlock ${dtype}`);
    // an explicit causal mask gives the same result
    const mask = nn.causalMask(S, { dtype });
    const masked = block.call(x.t, pe, mask);
    t.deepEqual(refOf(masked).data, refOf(out).data);
    for (const u of [x.t, positions, pe.cos, pe.sin, out, mask, masked]) u.dispose();
    block.dispose();
    rope.dispose();
  }
});

test('a LLaMA-shaped model: stateDict round trip into a fresh model gives the same logits', (t) => {
  const cfg = { ...BLOCK, vocabSize: 17, numLayers: 2 };
  ig.manualSeed(8);
  const a = new TinyLlama(cfg);
  ig.manualSeed(9);
  const b = new TinyLlama(cfg);
  const ids = ig.randint(17, [2, 6]);
  const [ya, yb0] = [a.call(ids), b.call(ids)];
  t.deepEqual(ya.shape, [2, 6, 17]);
  t.notDeepEqual(refOf(ya).data, refOf(yb0).data);
  ig.tidy(() => b.loadStateDict(a.stateDict()));
  t.deepEqual(snapshot(b), snapshot(a));
  const yb = b.call(ids);
  t.deepEqual(refOf(yb).data, refOf(ya).data);
  for (const u of [ids, ya, yb0, yb]) u.dispose();
  a.dispose();
  b.dispose();
});

test('Dropout in training mode: zeroes a fraction p, scales the rest by 1/(1-p); seeded; evaluation mode turns it off', (t) => {
  const n = 100_000;
  for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
    for (const p of [0.1, 0.5, 0.8]) {
      const drop = new nn.Dropout(p);
      const x = ig.ones([200, 500], { dtype });
      ig.manualSeed(12);
      const y = drop.call(x);
      t.is(y.dtype, dtype);
      const scaleTensor = ig.full([1], 1 / (1 - p), { dtype });
      const scale = refOf(scaleTensor).data[0];
      const values = refOf(y).data;
      let zeros = 0;
      for (const v of values) {
        if (v === 0) zeros++;
        else if (v !== scale) {
          t.fail(`a kept element is ${v}, expected ${scale}`);
          break;
        }
      }
      const sigma = Math.sqrt((p * (1 - p)) / n);
      t.true(Math.abs(zeros / n - p) < 5 * sigma, `${dtype} p ${p}: dropped ${zeros / n}`);
      ig.manualSeed(12);
      const again = drop.call(x);
      t.deepEqual(refOf(again).data, values, 'the same seed gives the same mask');
      const next = drop.call(x);
      t.notDeepEqual(refOf(next).data, values, 'the generator moves on');
      for (const u of [x, y, again, next, scaleTensor]) u.dispose();
    }
  }
  // the mask is independent of the values: x * mask * scale
  const rng = new Rng(53);
  const x = randomTensor(rng, [3, 40], 'float32', 'transposed');
  const drop = new nn.Dropout(0.3);
  const y = drop.call(x.t);
  const got = refOf(y).data;
  const scale = Math.fround(1 / 0.7);
  x.ref.data.forEach((v, i) => {
    if (got[i] !== 0 && Math.abs(got[i] - Math.fround(v * scale)) > 1e-6) t.fail(`element ${i}: ${got[i]} vs ${v * scale}`);
  });
  // a model in evaluation mode passes through its dropouts
  class WithDropout extends nn.Module {
    lin = new nn.Linear(40, 40);
    drop = new nn.Dropout(0.5);
    forward(v: Tensor): Tensor {
      return this.drop.call(this.lin.call(v));
    }
  }
  const model = new WithDropout().eval();
  const [a, b] = [model.call(x.t), model.call(x.t)];
  t.deepEqual(refOf(a).data, refOf(b).data);
  t.false(refOf(a).data.some((v) => v === 0));
  for (const u of [x.t, y, a, b]) u.dispose();
  model.dispose();
});
