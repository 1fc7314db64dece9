import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { Rng, assertCode } from '../helpers';
import { bitsOf, randomValues } from './reference';

type AnyOptimizer = ig.AdamW | ig.SGD;

/** Three params (float32, bfloat16, float64) of fixed random values; `make()` gives fresh copies. */
function model(seed: number) {
  const rng = new Rng(seed);
  const specs: [number[], DType][] = [
    [[4, 3], 'float32'],
    [[5], 'bfloat16'],
    [[2, 2], 'float64'],
  ];
  const values = specs.map(([s]) => randomValues(rng, s.reduce((a, b) => a * b, 1)));
  return () => specs.map(([shape, dtype], i) => ig.tensor(values[i], { shape, dtype }));
}

/** The same grads for a given step number, whichever params get them. */
function setGrads(params: Tensor[], step: number): void {
  const rng = new Rng(1000 + step);
  for (const p of params) {
    p.grad?.dispose();
    p.grad = ig.tensor(randomValues(rng, p.numel), { shape: p.shape.slice(), dtype: p.dtype });
  }
}

const MAKERS: [string, (params: Tensor[]) => AnyOptimizer][] = [
  ['AdamW', (ps) => new ig.AdamW([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 0.05, weightDecay: 0 }], { lr: 0.01 })],
  ['SGD', (ps) => new ig.SGD([{ params: ps.slice(0, 2) }, { params: ps.slice(2), lr: 0.05, nesterov: true }], { lr: 0.01, momentum: 0.9 })],
];

function disposeStateDict(sd: ig.optim.OptimizerStateDict): void {
  for (const s of Object.values(sd.state)) for (const v of Object.values(s)) if (v instanceof Tensor) v.dispose();
}

for (const [name, make] of MAKERS) {
  test(`${name}: a resumed optimizer continues exactly (stateDict / loadStateDict round trip)`, (t) => {
    const fresh = model(7);
    const a = fresh();
    const optA = make(a);
    for (let step = 0; step < 3; step++) {
      setGrads(a, step);
      optA.step();
    }
    optA.paramGroups[0].lr = 0.02;
    const sd = optA.stateDict();
    t.deepEqual(sd.paramGroups.map((g) => g.params), [[0, 1], [2]]);
    t.deepEqual(Object.keys(sd.state), ['0', '1', '2']);
    // resume from copies of A's params in an optimizer made with the original options
    const b = a.map((p) => p.clone());
    const optB = make(b);
    optB.loadStateDict(sd);
    t.is(optB.paramGroups[0].lr, 0.02);
    disposeStateDict(sd); // the optimizers hold copies
    for (let step = 3; step < 6; step++) {
      setGrads(a, step);
      setGrads(b, step);
      optA.step();
      optB.step();
    }
    a.forEach((p, i) => t.deepEqual(bitsOf(b[i]), bitsOf(p), `param ${i}`));
    const sa = optA.stateDict();
    const sb = optB.stateDict();
    for (const key of Object.keys(sa.state)) {
      for (const [k, v] of Object.entries(sa.state[Number(key)])) {
        const w = sb.state[Number(key)][k];
        if (v instanceof Tensor) t.deepEqual(bitsOf(w as Tensor), bitsOf(v), `state ${key}.${k}`);
        else t.is(w, v);
      }
    }
  });
}

test('stateDict holds copies: changing the optimizer afterwards does not change it, and the reverse', (t) => {
  const p = ig.tensor([1, 2]);
  const opt = new ig.AdamW([p]);
  p.grad = ig.tensor([1, 1]);
  opt.step();
  const sd = opt.stateDict();
  const before = bitsOf(sd.state[0].expAvg as Tensor);
  opt.step();
  t.deepEqual(bitsOf(sd.state[0].expAvg as Tensor), before);
  (sd.paramGroups[0].betas as number[])[0] = 0.5;
  t.is(opt.paramGroups[0].betas[0], 0.9);
  disposeStateDict(sd);
  opt.step();
  t.is(opt.stateDict().state[0].step, 3);
});

test('loadStateDict: every mismatch is a clear error and nothing is half-loaded', (t) => {
  const fresh = model(8);
  const a = fresh();
  const source = new ig.AdamW([{ params: a.slice(0, 2) }, { params: a.slice(2) }], { lr: 0.01 });
  setGrads(a, 0);
  source.step();
  const b = fresh();
  const target = new ig.AdamW([{ params: b.slice(0, 2) }, { params: b.slice(2) }], { lr: 0.03 });
  setGrads(b, 1);
  target.step();
  const snapshot = () => JSON.stringify(target.stateDict(), (_k, v) => (v instanceof Tensor ? bitsOf(v) : v));
  const before = snapshot();

  // A valid dict, broken one way each time.
  const broken: [string, (sd: Record<string, any>) => void, ig.ErrorCode, RegExp][] = [
    ['missing state', (sd) => delete sd.state, 'ERR_ARG', /missing state/],
    ['extra top-level key', (sd) => (sd.extra = 1), 'ERR_ARG', /unexpected key\(s\) extra/],
    ['group count', (sd) => sd.paramGroups.pop(), 'ERR_ARG', /1 parameter group\(s\), the optimizer 2/],
    ['param count', (sd) => sd.paramGroups[0].params.pop(), 'ERR_ARG', /must list 2 param indices/],
    ['repeated param index', (sd) => (sd.paramGroups[1].params = [0]), 'ERR_ARG', /more than once/],
    ['missing option', (sd) => delete sd.paramGroups[1].eps, 'ERR_ARG', /paramGroups\[1\] is missing eps/],
    ['extra option', (sd) => (sd.paramGroups[0].momentum = 0.9), 'ERR_ARG', /unexpected key\(s\) momentum/],
    ['bad option value', (sd) => (sd.paramGroups[1].betas = [0.9, 1.5]), 'ERR_ARG', /paramGroups\[1\]\.betas\[1\]/],
    ['state of an unknown param', (sd) => (sd.state[7] = sd.state[0]), 'ERR_ARG', /state has an entry for 7/],
    ['missing buffer', (sd) => delete sd.state[2].expAvgSq, 'ERR_ARG', /state\[2\] is missing expAvgSq/],
    ['extra buffer', (sd) => (sd.state[1].momentumBuffer = sd.state[1].expAvg), 'ERR_ARG', /state\[1\] has unexpected key\(s\) momentumBuffer/],
    ['bad step count', (sd) => (sd.state[0].step = 1.5), 'ERR_ARG', /state\[0\]\.step/],
    ['buffer not a tensor', (sd) => (sd.state[0].expAvg = [0, 0]), 'ERR_ARG', /state\[0\]\.expAvg/],
    ['wrong shape', (sd) => (sd.state[2].expAvg = ig.zeros([4], { dtype: 'float64' })), 'ERR_SHAPE', /state\[2\]\.expAvg is of shape \[4\]/],
    ['wrong dtype', (sd) => (sd.state[1].expAvgSq = ig.zeros([5], { dtype: 'bfloat16' })), 'ERR_DTYPE', /needs float32/],
    ['disposed buffer', (sd) => (sd.state[0].expAvg as Tensor).dispose(), 'ERR_DISPOSED', /state\[0\]\.expAvg/],
    ['not an object', (sd) => (sd.state = [1, 2]), 'ERR_ARG', /state must be a plain object/],
  ];
  for (const [what, breakIt, code, message] of broken) {
    const sd = source.stateDict() as unknown as Record<string, any>;
    breakIt(sd);
    assertCode(t, () => target.loadStateDict(sd as ig.optim.OptimizerStateDict), code, message);
    t.is(snapshot(), before, `${what}: the optimizer is unchanged`);
  }
  assertCode(t, () => target.loadStateDict(null as unknown as ig.optim.OptimizerStateDict), 'ERR_ARG');
  // and the valid one loads
  target.loadStateDict(source.stateDict());
  t.not(snapshot(), before);
  t.is(target.paramGroups[0].lr, 0.01);
});

test('constructor: bad params raise the right codes', (t) => {
  const p = ig.tensor([1, 2]);
  assertCode(t, () => new ig.AdamW([]), 'ERR_ARG', /empty parameter list/);
  assertCode(t, () => new ig.AdamW(p as unknown as Tensor[]), 'ERR_ARG', /array/);
  assertCode(t, () => new ig.AdamW([p, 3 as unknown as Tensor]), 'ERR_ARG');
  assertCode(t, () => new ig.AdamW([p, p]), 'ERR_ARG', /more than once/);
  assertCode(t, () => new ig.AdamW([{ params: [p] }, { params: [p] }]), 'ERR_ARG', /more than once/);
  assertCode(t, () => new ig.AdamW([{ params: [p], foo: 1 } as ig.optim.ParamGroupSpec<ig.optim.AdamWOptions>]), 'ERR_ARG', /unknown option foo/);
  assertCode(t, () => new ig.AdamW([ig.tensor([1, 2], { dtype: 'int32' })]), 'ERR_DTYPE', /floating-point/);
  const m = ig.zeros([2, 3]);
  assertCode(t, () => new ig.SGD([m.mT]), 'ERR_ARG', /not contiguous/);
  const gone = ig.zeros([2]);
  gone.dispose();
  assertCode(t, () => new ig.SGD([gone]), 'ERR_DISPOSED');
  assertCode(t, () => new ig.SGD([p], 0.1 as unknown as ig.optim.SGDOptions), 'ERR_ARG', /options/);
});

test('zeroGrad sets grads to null and disposes them', (t) => {
  const p = ig.tensor([1, 2]);
  const q = ig.tensor([3]);
  const opt = new ig.SGD([p, q]);
  const g = ig.tensor([1, 1]);
  p.grad = g;
  opt.zeroGrad();
  t.is(p.grad as Tensor | null, null);
  t.is(q.grad, null);
  t.true(g.isDisposed);
});

test('state survives a tidy() around step(); dispose() frees it; a disposed optimizer cannot step', (t) => {
  const p = ig.zeros([64, 64]);
  p.grad = ig.ones([64, 64]);
  const before = ig.memory();
  const opt = new ig.AdamW([p]);
  ig.tidy(() => opt.step());
  ig.tidy(() => opt.step());
  const during = ig.memory();
  t.is(during.tensors, before.tensors + 2);
  t.is(during.bytes.cpu, before.bytes.cpu + 2 * 64 * 64 * 4);
  const sd = ig.tidy(() => opt.stateDict());
  t.false((sd.state[0].expAvg as Tensor).isDisposed, 'tidy keeps the tensors it returns');
  t.is(sd.state[0].step, 2);
  disposeStateDict(sd);
  opt.dispose();
  t.is(ig.memory().tensors, before.tensors);
  t.is(ig.memory().bytes.cpu, before.bytes.cpu);
  assertCode(t, () => opt.step(), 'ERR_DISPOSED', /disposed/);
  assertCode(t, () => opt.stateDict(), 'ERR_DISPOSED');
  assertCode(t, () => opt.loadStateDict({ state: {}, paramGroups: [] }), 'ERR_DISPOSED');
});

test('state tensors are freed by dispose()', (t) => {
  const p = ig.zeros([32, 32]);
  p.grad = ig.ones([32, 32]);
  const opt = new ig.SGD([p], { momentum: 0.9 });
  const before = ig.memory();
  opt.step();
  t.is(ig.memory().tensors, before.tensors + 1);
  opt.dispose();
  t.is(ig.memory().tensors, before.tensors);
  t.is(ig.memory().bytes.cpu, before.bytes.cpu);
});

/** A 2-layer perceptron: Linear, relu or gelu, Linear. */
class Mlp extends ig.nn.Module {
  fc1: ig.nn.Linear;
  fc2: ig.nn.Linear;
  constructor(inputs: number, hidden: number, outputs: number, readonly activation: 'relu' | 'gelu') {
    super();
    this.fc1 = new ig.nn.Linear(inputs, hidden);
    this.fc2 = new ig.nn.Linear(hidden, outputs);
  }
  forward(x: Tensor): Tensor {
    return ig.tidy(() => {
      const h = this.fc1.call(x);
      return this.fc2.call(this.activation === 'relu' ? h.relu() : ig.gelu(h));
    });
  }
}

/**
 * 256 points x in [-1, 1)^4 and y = sin(3 x0) x1 + x2^2 - x3 / 2, of variance about 0.35. Only
 * -x3 / 2 is linear: the best linear model leaves a mean squared error near 0.26.
 */
function regressionData(seed: number): { x: Tensor; y: Tensor } {
  const rng = new Rng(seed);
  const n = 256;
  const xs = Array.from({ length: n * 4 }, () => rng.uniform(-1, 1));
  const ys = Array.from({ length: n }, (_, i) => {
    const [a, b, c, d] = xs.slice(4 * i, 4 * i + 4);
    return Math.sin(3 * a) * b + c * c - d / 2;
  });
  return { x: ig.tensor(xs).reshape(n, 4), y: ig.tensor(ys).reshape(n, 1) };
}

/** Full-batch AdamW on the mean squared error; returns the first and last losses. */
function train(model: ig.nn.Module & { call(x: Tensor): Tensor }, x: Tensor, y: Tensor, steps: number, lr: number): [number, number] {
  const opt = new ig.AdamW(model.parameters(), { lr, weightDecay: 1e-4 });
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    ig.tidy(() => {
      const loss = ig.mseLoss(model.call(x), y);
      losses.push(loss.item() as number);
      loss.backward();
      opt.step();
      opt.zeroGrad();
    });
  }
  opt.dispose();
  return [losses[0], losses[losses.length - 1]];
}

for (const activation of ['relu', 'gelu'] as const) {
  test(`trains a 2-layer MLP (Linear, ${activation}, Linear) with AdamW to a mean squared error below 0.01 in 300 steps`, (t) => {
    const { x, y } = regressionData(3);
    ig.manualSeed(11);
    const model = new Mlp(4, 32, 1, activation);
    const [first, last] = train(model, x, y, 300, 0.02);
    t.true(first > 0.2, `the untrained model is far off (${first})`);
    t.true(last < 0.01, `final loss ${last} (from ${first})`);
    // a linear model, trained the same way, cannot get there: the hidden layer does the work
    const linearModel = new ig.nn.Linear(4, 1);
    const [, linearLast] = train(linearModel, x, y, 300, 0.02);
    t.true(linearLast > 0.2, `linear model: ${linearLast}`);
    for (const u of [x, y]) u.dispose();
    model.dispose();
    linearModel.dispose();
  });
}

test('a training step inside tidy() leaves memory flat over many steps', (t) => {
  const { x, y } = regressionData(4);
  ig.manualSeed(12);
  const model = new Mlp(4, 16, 1, 'gelu');
  const opt = new ig.AdamW(model.parameters(), { lr: 1e-3 });
  const step = () =>
    ig.tidy(() => {
      ig.mseLoss(model.call(x), y).backward();
      opt.step();
      opt.zeroGrad();
    });
  step(); // creates the optimizer's state
  const level = ig.memory();
  for (let i = 0; i < 200; i++) {
    step();
    const now = ig.memory();
    if (now.tensors !== level.tensors || now.bytes.cpu !== level.bytes.cpu) {
      t.fail(`step ${i}: ${JSON.stringify(now)} after ${JSON.stringify(level)}`);
      break;
    }
  }
  t.deepEqual(ig.memory(), level);
  opt.dispose();
  model.dispose();
  for (const u of [x, y]) u.dispose();
});
