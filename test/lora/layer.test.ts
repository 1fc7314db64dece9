/**
 * LoraLinear: PEFT's names and init, its forward against a float64 reference, gradients on the
 * adapters only, dropout, merge/unmerge, several adapters, a bfloat16 base, bad inputs.
 */
import test from 'ava';
import * as ig from '../../lib';
import { DType, LoraLinear, Tensor, nn } from '../../lib';
import { Ref, Rng, assertClose, assertCode, randomTensor, refOf } from '../helpers';

/** PEFT's forward in float64: x W^T + bias + s * x A^T B^T. */
function refLora(x: Ref, w: Ref, bias: Ref | null, a: Ref, b: Ref, s: number): Ref {
  const inF = x.shape[x.shape.length - 1];
  const [out, r] = b.shape;
  const rows = x.data.length / inF;
  const y = new Float64Array(rows * out);
  for (let i = 0; i < rows; i++) {
    const xa = new Float64Array(r);
    for (let j = 0; j < r; j++) for (let k = 0; k < inF; k++) xa[j] += x.data[i * inF + k] * a.data[j * inF + k];
    for (let o = 0; o < out; o++) {
      let v = bias ? bias.data[o] : 0;
      for (let k = 0; k < inF; k++) v += x.data[i * inF + k] * w.data[o * inF + k];
      for (let j = 0; j < r; j++) v += s * xa[j] * b.data[o * r + j];
      y[i * out + o] = v;
    }
  }
  return { shape: [...x.shape.slice(0, -1), out], data: y };
}

/** Sets an adapter's B to random values (B starts at zero). */
function randomizeB(rng: Rng, layer: LoraLinear, name = layer.activeAdapter): void {
  const b = layer.adapterWeights(name).b;
  const values = randomTensor(rng, b.shape.slice(), b.dtype).t;
  layer.loadStateDict({ [`lora_B.${name}.weight`]: values }, { strict: false });
  values.dispose();
}

function expected(layer: LoraLinear, x: Tensor, name = layer.activeAdapter): Ref {
  const { a, b } = layer.adapterWeights(name);
  const bias = layer.base_layer.bias;
  return refLora(refOf(x), refOf(layer.base_layer.weight), bias ? refOf(bias) : null, refOf(a), refOf(b), layer.scaling(name));
}

test('LoraLinear: PEFT names, shapes, frozen base, Kaiming-uniform A and zero B', (t) => {
  ig.manualSeed(1);
  const layer = new LoraLinear(new nn.Linear(6, 4), { r: 3, alpha: 6 });
  const names = layer.namedParameters().map(([n, p]) => [n, p.shape, p.requiresGrad]);
  t.deepEqual(names, [
    ['base_layer.weight', [4, 6], false],
    ['base_layer.bias', [4], false],
    ['lora_A.default.weight', [3, 6], true],
    ['lora_B.default.weight', [4, 3], true],
  ]);
  const { a, b } = layer.adapterWeights();
  const av = [...refOf(a).data];
  t.true(av.every((v) => Math.abs(v) <= 1 / Math.sqrt(6)));
  t.true(new Set(av).size > 1);
  t.true([...refOf(b).data].every((v) => v === 0));
  t.is(layer.scaling(), 2);
  t.is(new LoraLinear(new nn.Linear(6, 4), { r: 4, alpha: 6, rsLora: true }).scaling(), 3);
  t.deepEqual([...layer.stateDict().keys()], names.map((n) => n[0]));
});

test('LoraLinear: B = 0 gives the base output; forward equals base + s x A^T B^T (float64 and float32)', (t) => {
  const rng = new Rng(2);
  for (const dtype of ['float64', 'float32'] as DType[]) {
    for (const bias of [true, false]) {
      const base = new nn.Linear(5, 3, { dtype, bias });
      const layer = new LoraLinear(base, { r: 2, alpha: 3 });
      const x = randomTensor(rng, [2, 4, 5], dtype).t;
      const plain = ig.linear(x, base.weight, base.bias);
      t.deepEqual(layer.call(x).data(), plain.data(), 'B = 0');
      randomizeB(rng, layer);
      assertClose(t, layer.call(x), expected(layer, x), undefined, `${dtype} bias ${bias}`);
    }
  }
});

test('LoraLinear: gradients reach A and B only, as finite differences say', (t) => {
  const rng = new Rng(3);
  const layer = new LoraLinear(new nn.Linear(4, 3, { dtype: 'float64' }), { r: 2, alpha: 4 });
  randomizeB(rng, layer);
  const x = randomTensor(rng, [2, 2, 4], 'float64').t.requiresGrad_();
  layer.call(x).pow(2).sum().backward();
  const { a, b } = layer.adapterWeights();
  t.is(layer.base_layer.weight.grad, null);
  t.is(layer.base_layer.bias!.grad, null);
  t.not(a.grad, null);
  t.not(b.grad, null);
  t.not(x.grad, null);
  t.true(ig.gradcheck((xx, aa, bb) => ig.loraLinear(xx, layer.base_layer.weight, layer.base_layer.bias, aa, bb, layer.scaling()).pow(2), [x, a, b]));
});

test('LoraLinear: dropout in training mode only', (t) => {
  const rng = new Rng(4);
  const layer = new LoraLinear(new nn.Linear(16, 8, { dtype: 'float64' }), { r: 4, alpha: 4, dropout: 0.5 });
  randomizeB(rng, layer);
  const x = randomTensor(rng, [6, 16], 'float64').t;
  layer.eval();
  assertClose(t, layer.call(x), expected(layer, x), undefined, 'eval');
  layer.train();
  ig.manualSeed(40);
  const trained = layer.call(x);
  // The same seed draws the same mask: the LoRA path sees x * mask, the base path x.
  ig.manualSeed(40);
  const mask = ig.loraDropoutMask([6, 16], 0.5, { dtype: 'float64' });
  const { a, b } = layer.adapterWeights();
  const w = refOf(layer.base_layer.weight);
  const bias = refOf(layer.base_layer.bias!);
  const zero = { shape: w.shape, data: new Float64Array(w.data.length) };
  const base = refLora(refOf(x), w, bias, refOf(a), refOf(b), 0);
  const dropped = refLora(refOf(x.mul(mask)), zero, null, refOf(a), refOf(b), layer.scaling());
  assertClose(t, trained, { shape: base.shape, data: base.data.map((v, i) => v + dropped.data[i]) }, undefined, 'train');
  const clean = expected(layer, x).data;
  t.true(refOf(trained).data.some((v, i) => Math.abs(v - clean[i]) > 1e-9), 'dropout changes the training output');
});

test('LoraLinear: merge/unmerge round trip; merged forward equals unmerged; safe merge', (t) => {
  const rng = new Rng(5);
  for (const dtype of ['float64', 'float32'] as DType[]) {
    const layer = new LoraLinear(new nn.Linear(6, 5, { dtype }), { r: 3, alpha: 5 });
    randomizeB(rng, layer);
    const x = randomTensor(rng, [3, 6], dtype).t;
    const w0 = refOf(layer.base_layer.weight);
    const unmerged = refOf(layer.call(x));
    layer.merge();
    t.deepEqual(layer.mergedAdapters, ['default']);
    assertClose(t, layer.call(x), unmerged, undefined, `${dtype} merged`);
    assertCode(t, () => layer.merge(), 'ERR_ARG', /already merged/);
    layer.unmerge();
    t.deepEqual(layer.mergedAdapters, []);
    assertClose(t, layer.base_layer.weight, w0, undefined, `${dtype} unmerged weight`);
    assertClose(t, layer.call(x), unmerged, undefined, `${dtype} unmerged forward`);
    // A NaN in B is refused and W stays as it was.
    const bad = ig.full(layer.adapterWeights().b.shape.slice(), Number.NaN, { dtype });
    layer.loadStateDict({ 'lora_B.default.weight': bad }, { strict: false });
    const before = layer.base_layer.weight.data();
    assertCode(t, () => layer.merge(), 'ERR_ARG');
    t.deepEqual(layer.base_layer.weight.data(), before);
    t.deepEqual(layer.mergedAdapters, []);
  }
});

test('LoraLinear: several adapters, switching, disabling', (t) => {
  const rng = new Rng(6);
  const layer = new LoraLinear(new nn.Linear(5, 4, { dtype: 'float64' }), { r: 2, alpha: 2 });
  layer.addAdapter('other', { r: 3, alpha: 9 });
  t.deepEqual(layer.adapterNames, ['default', 'other']);
  t.is(layer.activeAdapter, 'default');
  t.false(layer.adapterWeights('other').a.requiresGrad);
  randomizeB(rng, layer, 'default');
  randomizeB(rng, layer, 'other');
  t.deepEqual(
    layer.namedParameters().map(([n]) => n),
    ['base_layer.weight', 'base_layer.bias', 'lora_A.default.weight', 'lora_A.other.weight', 'lora_B.default.weight', 'lora_B.other.weight'],
  );
  const x = randomTensor(rng, [3, 5], 'float64').t;
  assertClose(t, layer.call(x), expected(layer, x, 'default'), undefined, 'default');
  layer.setAdapter('other');
  t.is(layer.scaling(), 3);
  t.true(layer.adapterWeights('other').b.requiresGrad);
  t.false(layer.adapterWeights('default').b.requiresGrad);
  assertClose(t, layer.call(x), expected(layer, x, 'other'), undefined, 'other');
  layer.disableAdapters();
  t.deepEqual(layer.call(x).data(), ig.linear(x, layer.base_layer.weight, layer.base_layer.bias).data());
  layer.enableAdapters();
  assertClose(t, layer.call(x), expected(layer, x, 'other'), undefined, 'enabled again');
  // Switching or disabling a merged layer unmerges it first.
  layer.merge();
  layer.setAdapter('default');
  t.deepEqual(layer.mergedAdapters, []);
  assertClose(t, layer.call(x), expected(layer, x, 'default'), undefined, 'after switch');
});

test('LoraLinear: a bfloat16 base with float32 adapters', (t) => {
  const rng = new Rng(7);
  const layer = new LoraLinear(new nn.Linear(8, 6, { dtype: 'bfloat16' }), { r: 2, alpha: 4 });
  const { a, b } = layer.adapterWeights();
  t.is(a.dtype, 'float32');
  t.is(b.dtype, 'float32');
  randomizeB(rng, layer);
  const x32 = randomTensor(rng, [2, 3, 8], 'float32').t;
  const y32 = layer.call(x32);
  t.is(y32.dtype, 'float32');
  assertClose(t, y32, expected(layer, x32), [1e-4, 1e-4], 'float32 input');
  const x16 = x32.to('bfloat16');
  const y16 = layer.call(x16);
  t.is(y16.dtype, 'bfloat16');
  assertClose(t, y16, expected(layer, x16), undefined, 'bfloat16 input');
  y16.to('float32').sum().backward();
  t.is(a.grad!.dtype, 'float32');
  t.is(layer.base_layer.weight.grad, null);
  layer.merge();
  assertClose(t, layer.call(x32), refOf(y32), [2e-2, 2e-2], 'merged bfloat16 weight');
});

test('LoraLinear: bad inputs', (t) => {
  const base = new nn.Linear(4, 3);
  assertCode(t, () => new LoraLinear({} as nn.Linear), 'ERR_ARG');
  assertCode(t, () => new LoraLinear(base, { r: 0 }), 'ERR_ARG');
  assertCode(t, () => new LoraLinear(base, { r: 1.5 }), 'ERR_ARG');
  assertCode(t, () => new LoraLinear(base, { alpha: Number.NaN }), 'ERR_ARG');
  assertCode(t, () => new LoraLinear(base, { dropout: 1 }), 'ERR_ARG');
  assertCode(t, () => new LoraLinear(base, { dtype: 'int32' }), 'ERR_DTYPE');
  assertCode(t, () => new LoraLinear(base, { adapterName: 'a.b' }), 'ERR_ARG');
  const layer = new LoraLinear(base);
  assertCode(t, () => layer.addAdapter('default'), 'ERR_ARG', /already exists/);
  assertCode(t, () => layer.addAdapter('training'), 'ERR_ARG', /reserved/);
  assertCode(t, () => layer.setAdapter('missing'), 'ERR_ARG', /no adapter/);
  assertCode(t, () => layer.merge(['missing']), 'ERR_ARG');
  assertCode(t, () => layer.call(ig.zeros([2, 5])), 'ERR_SHAPE');
  assertCode(t, () => layer.lora_A.call(), 'ERR_ARG');
});
