/**
 * Every differentiable op against finite differences (gradcheck, float64), on random shapes and
 * on contiguous, transposed, strided and broadcast (expanded) inputs.
 */
import test from 'ava';
import * as ig from '../../lib';
import { Tensor } from '../../lib';
import { LAYOUTS, Layout, Rng, assertCode, numel, randomShape, randomTensor } from '../helpers';

const TRIALS = 8;

/** A float64 leaf that requires grad, in `layout` (random when omitted), with values in [lo, hi). */
function leaf(rng: Rng, shape: number[], lo = -1, hi = 1, layouts: readonly Layout[] = LAYOUTS): Tensor {
  return randomTensor(rng, shape, 'float64', rng.pick(layouts), lo, hi).t.requiresGrad_();
}

/** Layouts without repeated values: max, min, maximum and minimum are not differentiable at ties. */
const DISTINCT: readonly Layout[] = ['contiguous', 'transposed', 'strided'];

/** Random integers in [lo, hi] as an int64 tensor. */
function ints(rng: Rng, shape: number[], lo: number, hi: number): Tensor {
  return ig.tensor(Array.from({ length: numel(shape) }, () => rng.int(lo, hi)), { dtype: 'int64' }).reshape(...shape);
}

/** A shape that broadcasts against `shape`: some dims set to 1, some leading dims dropped. */
function broadcastable(rng: Rng, shape: number[]): number[] {
  const out = shape.slice(rng.int(0, shape.length)).map((d) => (rng.next() < 0.4 ? 1 : d));
  return out;
}

type Case = (rng: Rng) => { fn: (...xs: Tensor[]) => Tensor; inputs: Tensor[] };

const CASES: Record<string, Case> = {
  'add (alpha, broadcast, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    const alpha = rng.pick([undefined, 1, 2.5, -0.5]);
    return { fn: (a, b) => ig.add(a, b, alpha).add(1.5).mul(ig.add(2, a)), inputs: [leaf(rng, shape), leaf(rng, broadcastable(rng, shape))] };
  },
  'sub (alpha, broadcast, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    const alpha = rng.pick([undefined, 3, -2]);
    return { fn: (a, b) => ig.sub(b, a, alpha).mul(ig.sub(1, a)).sub(0.5), inputs: [leaf(rng, shape), leaf(rng, broadcastable(rng, shape))] };
  },
  'mul (broadcast, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    return { fn: (a, b) => ig.mul(a, b).mul(-1.5).mul(ig.mul(2, b)), inputs: [leaf(rng, broadcastable(rng, shape)), leaf(rng, shape)] };
  },
  'div (broadcast, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    return { fn: (a, b) => ig.div(a, b).add(ig.div(1, b)).div(3), inputs: [leaf(rng, shape), leaf(rng, broadcastable(rng, shape), 0.5, 2)] };
  },
  'pow (base and exponent)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    return { fn: (a, b) => ig.pow(a, b), inputs: [leaf(rng, shape, 0.5, 2), leaf(rng, broadcastable(rng, shape), -2, 2)] };
  },
  'pow (number exponent, number base)': (rng) => {
    const e = rng.pick([2, 3, 0.5, -1.5, 0]);
    return { fn: (a) => ig.pow(a, e).add(ig.pow(2.5, a)), inputs: [leaf(rng, randomShape(rng, 3, 4), 0.5, 2)] };
  },
  'maximum, minimum (broadcast, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    return {
      fn: (a, b) => ig.maximum(a, b).mul(ig.minimum(b, a)).add(ig.maximum(a, 0.1)).add(ig.minimum(-0.2, b)),
      inputs: [leaf(rng, shape, -1, 1, DISTINCT), leaf(rng, broadcastable(rng, shape), -1, 1, DISTINCT)],
    };
  },
  'view, reshape, flatten': (rng) => {
    const shape = [rng.int(1, 3), rng.int(1, 4), rng.int(1, 3)];
    const n = numel(shape);
    return {
      fn: (a) => a.reshape(n).view(-1, shape[2]).reshape(shape[2], -1).flatten().mul(a.contiguous().view(n)).add(a.flatten(1).flatten(0, 1)),
      inputs: [leaf(rng, shape)],
    };
  },
  'permute, transpose, mT': (rng) => {
    const shape = randomShape(rng, 4, 3, 3);
    const perm = shape.map((_, i) => i).sort(() => rng.next() - 0.5);
    return { fn: (a) => a.permute(...perm).transpose(0, -1).mT.mul(2), inputs: [leaf(rng, shape)] };
  },
  'narrow, slice with step, select': (rng) => {
    const shape = [rng.int(3, 5), rng.int(2, 4), rng.int(1, 3)];
    const step = rng.int(1, 3);
    return {
      fn: (a) => a.narrow(0, 1, 2).mul(a.slice(0, 0, 4, 2).narrow(0, 0, 1)).add(a.slice(1, -2, undefined, step).sum()).add(a.select(0, -1).select(0, 1)),
      inputs: [leaf(rng, shape)],
    };
  },
  'expand, squeeze, unsqueeze': (rng) => {
    const shape = [rng.int(2, 3), 1, rng.int(1, 3)];
    return { fn: (a) => a.expand(2, ...shape).squeeze(2).unsqueeze(0).mul(a.squeeze(1)).add(a.expand(-1, 3, -1).sum(1)), inputs: [leaf(rng, shape)] };
  },
  'split, chunk': (rng) => {
    const shape = [rng.int(1, 3), rng.int(4, 6)];
    return {
      fn: (a) => {
        const [p, q] = a.split([2, shape[1] - 2], 1);
        const pieces = a.chunk(3, 1);
        return p.sum(1, true).mul(q).add(pieces[pieces.length - 1].sum()).mul(pieces[0].mean());
      },
      inputs: [leaf(rng, shape)],
    };
  },
  'contiguous, clone, to': (rng) => {
    return { fn: (a) => a.contiguous().clone().mul(a.to('cpu')).mul(a.to('float64')), inputs: [leaf(rng, randomShape(rng, 3, 4))] };
  },
  'sum, mean (dims, keepdim, all)': (rng) => {
    const shape = randomShape(rng, 4, 3, 1);
    const dims = shape.map((_, i) => i).filter(() => rng.next() < 0.5);
    const keepdim = rng.next() < 0.5;
    return { fn: (a) => a.sum(dims, keepdim).mul(a.mean(dims, keepdim)).add(a.sum().mul(a.mean())), inputs: [leaf(rng, shape)] };
  },
  'var (dims, correction)': (rng) => {
    const shape = randomShape(rng, 3, 4, 1);
    const dims = shape.map((_, i) => i).filter(() => rng.next() < 0.6);
    const correction = rng.pick([0, 1, 0.5]);
    const keepdim = rng.next() < 0.5;
    return { fn: (a) => a.var(dims, keepdim, correction).add(a.var()), inputs: [leaf(rng, shape.map((d) => d + 1))] };
  },
  'logsumexp (several dims)': (rng) => {
    const shape = randomShape(rng, 4, 3, 1);
    const dims = shape.map((_, i) => i).filter(() => rng.next() < 0.5);
    const dim = dims.length > 0 ? dims : [0];
    const keepdim = rng.next() < 0.5;
    return { fn: (a) => a.logsumexp(dim, keepdim), inputs: [leaf(rng, shape, -3, 3)] };
  },
  'max, min (along a dim and overall)': (rng) => {
    const shape = randomShape(rng, 3, 4, 1);
    const dim = rng.int(-shape.length, shape.length - 1);
    const keepdim = rng.next() < 0.5;
    return { fn: (a) => a.max(dim, keepdim).add(a.min(dim, keepdim)).sum().add(a.max()).add(a.min()), inputs: [leaf(rng, shape, -1, 1, DISTINCT)] };
  },
  'softmax, logSoftmax': (rng) => {
    const shape = randomShape(rng, 3, 4, 1);
    const dim = rng.int(0, shape.length - 1);
    return { fn: (a) => a.softmax(dim).mul(a.logSoftmax(-1)), inputs: [leaf(rng, shape, -2, 2)] };
  },
  'layerNorm (weight, bias, several dims)': (rng) => {
    const shape = randomShape(rng, 3, 4, 1).map((d) => d + 1);
    const k = rng.int(1, shape.length);
    const normalized = shape.slice(shape.length - k);
    const inputs = [leaf(rng, shape, -2, 2)];
    const hasWeight = rng.next() < 0.7;
    const hasBias = rng.next() < 0.7;
    if (hasWeight) inputs.push(leaf(rng, normalized, 0.5, 1.5));
    if (hasBias) inputs.push(leaf(rng, normalized));
    const eps = rng.pick([1e-5, 0.1]);
    return {
      fn: (x, ...p) => ig.layerNorm(x, normalized, hasWeight ? p[0] : null, hasBias ? p[hasWeight ? 1 : 0] : null, eps),
      inputs,
    };
  },
  'rmsNorm (weight)': (rng) => {
    const shape = randomShape(rng, 3, 4, 1);
    const normalized = shape.slice(shape.length - rng.int(1, shape.length));
    const weighted = rng.next() < 0.7;
    const inputs = weighted ? [leaf(rng, shape), leaf(rng, normalized, 0.5, 1.5)] : [leaf(rng, shape)];
    const eps = rng.pick([undefined, 1e-3]);
    return { fn: (x, w) => ig.rmsNorm(x, normalized, weighted ? w : null, eps), inputs };
  },
  'embedding (repeated indices)': (rng) => {
    const rows = rng.int(2, 5);
    const indices = ints(rng, randomShape(rng, 2, 4), 0, rows - 1);
    return { fn: (w) => ig.embedding(indices, w), inputs: [leaf(rng, [rows, rng.int(1, 4)])] };
  },
  gather: (rng) => {
    const shape = randomShape(rng, 3, 4, 1);
    const dim = rng.int(0, shape.length - 1);
    const indexShape = shape.map((d, i) => (i === dim ? rng.int(1, 5) : rng.int(1, d)));
    const index = ints(rng, indexShape, 0, shape[dim] - 1);
    return { fn: (a) => a.gather(dim, index), inputs: [leaf(rng, shape)] };
  },
  'cat, stack (with an integer input)': (rng) => {
    const shape = randomShape(rng, 3, 3, 1);
    const dim = rng.int(0, shape.length - 1);
    const other = shape.slice();
    other[dim] = rng.int(1, 3);
    const fixed = ints(rng, shape, -2, 2);
    const stackDim = rng.int(0, shape.length);
    return {
      fn: (a, b) => ig.cat([a, fixed, b], dim).sum(dim).add(ig.stack([a, fixed, a.mul(2)], stackDim).mul(3).sum()),
      inputs: [leaf(rng, shape), leaf(rng, other)],
    };
  },
  'crossEntropy (reductions, ignoreIndex, labelSmoothing, layouts of logits)': (rng) => {
    const classes = rng.int(2, 5);
    const kind = rng.pick(['[N, C]', '[N, C, d]', '[C]']);
    const n = rng.int(1, 4);
    const shape = kind === '[C]' ? [classes] : kind === '[N, C]' ? [n, classes] : [n, classes, rng.int(1, 3)];
    const targetShape = shape.filter((_, d) => d !== (shape.length === 1 ? 0 : 1));
    const target = ints(rng, targetShape, 0, classes - 1);
    // one target ignored now and then (never all of them for 'mean')
    const ignoreIndex = numel(targetShape) > 1 && rng.next() < 0.5 ? (target.data() as BigInt64Array)[0] : -100;
    const opts = { reduction: rng.pick(['mean', 'sum', 'none'] as const), labelSmoothing: rng.pick([0, 0.1]), ignoreIndex: Number(ignoreIndex) };
    if (opts.reduction === 'mean' && ignoreIndex !== -100 && Array.from(target.data() as BigInt64Array).every((v) => v === ignoreIndex)) opts.ignoreIndex = -100;
    return { fn: (x) => ig.crossEntropy(x, target, opts), inputs: [leaf(rng, shape, -3, 3)] };
  },
  'mseLoss (reductions, broadcast)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    const reduction = rng.pick(['mean', 'sum', 'none'] as const);
    return { fn: (a, b) => ig.mseLoss(a, b, { reduction }), inputs: [leaf(rng, shape), leaf(rng, broadcastable(rng, shape))] };
  },
};

/** A bool tensor of `shape`, true with probability 1/2. */
function condition(rng: Rng, shape: number[]): Tensor {
  return ig.tensor(Array.from({ length: numel(shape) }, () => rng.next() < 0.5)).reshape(...shape);
}

/** An operand that requires grad, or now and then (frozen) one that does not. */
function maybeFrozen(rng: Rng, shape: number[], frozen: boolean): Tensor {
  return frozen ? randomTensor(rng, shape, 'float64', rng.pick(LAYOUTS)).t : leaf(rng, shape);
}

// The unary ops, each on the range where its gradient is checked, away from the kinks of abs,
// relu (0) and the poles of log, sqrt, rsqrt. f(a).sum() sends a broadcast gradient (stride 0)
// into the backward kernel; f(a) itself a contiguous one.
const UNARY: [string, (a: Tensor) => Tensor, number, number][] = [
  ['neg', (a) => a.neg(), -2, 2],
  ['abs', (a) => a.abs(), -2, 2],
  ['sqrt', (a) => a.sqrt(), 0.2, 3],
  ['rsqrt', (a) => a.rsqrt(), 0.2, 3],
  ['exp', (a) => a.exp(), -2, 2],
  ['log', (a) => a.log(), 0.2, 3],
  ['tanh', (a) => a.tanh(), -3, 3],
  ['sigmoid', (a) => a.sigmoid(), -5, 5],
  ['relu', (a) => a.relu(), -2, 2],
  ['gelu', (a) => ig.gelu(a), -5, 5],
  ["gelu 'tanh'", (a) => ig.gelu(a, 'tanh'), -5, 5],
  ['silu', (a) => a.silu(), -6, 6],
];
for (const [name, f, lo, hi] of UNARY) {
  CASES[name] = (rng) => ({ fn: (a) => f(a).add(f(a).sum()), inputs: [leaf(rng, randomShape(rng, 4, 4), lo, hi)] });
}

Object.assign(CASES, {
  'gelu, silu, sigmoid in the tails': (rng) => {
    const tail = rng.pick([-1, 1]) * 12;
    return { fn: (a) => ig.gelu(a).add(ig.gelu(a, 'tanh')).add(a.silu()).add(a.sigmoid()).add(a.tanh()), inputs: [leaf(rng, randomShape(rng, 3, 4), tail - 3, tail + 3)] };
  },
  'clamp (both bounds, one, crossed bounds)': (rng) => {
    const [min, max] = rng.pick([[-0.5, 0.5], [null, 0.3], [-0.2, undefined], [0.6, -0.6]] as [number | null | undefined, number | null | undefined][]);
    return { fn: (a) => a.clamp(min, max).mul(a), inputs: [leaf(rng, randomShape(rng, 4, 4))] };
  },
  'where (broadcast condition and operands, numbers)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    const cond = condition(rng, broadcastable(rng, shape));
    return {
      fn: (a, b) => ig.where(cond, a, b).mul(ig.where(cond, 2, a)).add(ig.where(cond, b, -1.5)),
      inputs: [leaf(rng, shape), leaf(rng, broadcastable(rng, shape))],
    };
  },
  'maskedFill (broadcast mask)': (rng) => {
    const shape = randomShape(rng, 3, 4);
    const mask = condition(rng, broadcastable(rng, shape));
    const value = rng.uniform(-2, 2);
    return { fn: (a) => a.maskedFill(mask, value).mul(a), inputs: [leaf(rng, shape)] };
  },
  'matmul 2-D x 2-D (one operand frozen now and then)': (rng) => {
    const [m, k, n] = [rng.int(1, 4), rng.int(1, 4), rng.int(1, 4)];
    const frozen = rng.int(0, 2); // 0: neither, 1: a, 2: b
    return { fn: (a, b) => ig.matmul(a, b), inputs: [maybeFrozen(rng, [m, k], frozen === 1), maybeFrozen(rng, [k, n], frozen === 2)] };
  },
  'matmul with 1-D operands': (rng) => {
    const [m, k, n, batch] = [rng.int(1, 4), rng.int(1, 4), rng.int(1, 4), rng.int(1, 3)];
    const [sa, sb] = rng.pick([
      [[k], [k]],
      [[k], [k, n]],
      [[m, k], [k]],
      [[k], [batch, k, n]],
      [[batch, m, k], [k]],
    ]);
    return { fn: (a, b) => ig.matmul(a, b), inputs: [leaf(rng, sa), leaf(rng, sb)] };
  },
  'matmul batched, broadcast batch dims (summed back)': (rng) => {
    const [m, k, n, b1, b2] = [rng.int(1, 3), rng.int(1, 3), rng.int(1, 3), rng.int(2, 3), rng.int(2, 3)];
    const [sa, sb] = rng.pick([
      [[b1, m, k], [b1, k, n]],
      [[b1, m, k], [k, n]], // the weight gradient folds the batch into one product
      [[b2, b1, m, k], [k, n]],
      [[m, k], [b1, k, n]],
      [[1, m, k], [b1, k, n]],
      [[b2, 1, m, k], [b1, k, n]],
      [[b1, m, k], [b2, 1, k, n]],
    ]);
    return { fn: (a, b) => ig.matmul(a, b), inputs: [leaf(rng, sa), leaf(rng, sb)] };
  },
  'linear (with and without bias, 1-D to 3-D input, frozen weight now and then)': (rng) => {
    const [inF, outF] = [rng.int(1, 4), rng.int(1, 4)];
    const x = leaf(rng, [...randomShape(rng, 2, 3), inF]);
    const frozenWeight = rng.next() < 0.25;
    const w = maybeFrozen(rng, [outF, inF], frozenWeight);
    if (rng.next() < 0.5) return { fn: (a, b) => ig.linear(a, b), inputs: [x, w] };
    return { fn: (a, b, c) => ig.linear(a, b, c), inputs: [x, w, leaf(rng, [outF])] };
  },
  'linear with only the weight and bias requiring grad': (rng) => {
    const [inF, outF] = [rng.int(1, 4), rng.int(1, 4)];
    const x = randomTensor(rng, [...randomShape(rng, 2, 3), inF], 'float64', rng.pick(LAYOUTS)).t;
    return { fn: (a, b, c) => ig.linear(a, b, c), inputs: [x, leaf(rng, [outF, inF]), leaf(rng, [outF])] };
  },
} satisfies Record<string, Case>);

let seed = 100;
for (const [name, make] of Object.entries(CASES)) {
  const caseSeed = seed++;
  test(`gradcheck: ${name}`, (t) => {
    const rng = new Rng(caseSeed);
    for (let trial = 0; trial < TRIALS; trial++) {
      const { fn, inputs } = make(rng);
      const what = `trial ${trial}, inputs ${inputs.map((x) => `[${x.shape}] strides [${x.strides}]`).join(', ')}`;
      try {
        t.true(ig.gradcheck(fn, inputs), what);
      } catch (err) {
        t.fail(`${what}: ${(err as Error).message}`);
      }
      for (const x of inputs) x.dispose();
    }
  });
}

test('gradcheck: 16-bit and float32 leaves converted to float64 inside fn', (t) => {
  const rng = new Rng(7);
  const x = leaf(rng, [3, 4]);
  // through float32 the finite differences lose digits: looser tolerances, a larger step
  t.true(ig.gradcheck((a) => a.to('float32').softmax(1).to('float64'), [x], { eps: 1e-3, atol: 1e-4, rtol: 1e-2 }));
});

test('argmax, argmin and comparisons are not differentiable: their results do not require grad', (t) => {
  const x = ig.tensor([[1, 3], [2, 0]]).requiresGrad_();
  const y = ig.tensor([[0, 3], [5, 0]]).requiresGrad_();
  t.false(x.argmax(1).requiresGrad);
  t.false(x.argmin().requiresGrad);
  t.true(x.max(1).requiresGrad);
  t.false(x.to('int32').requiresGrad, 'a conversion to integers is not differentiable');
  for (const cmp of [ig.eq, ig.ne, ig.lt, ig.le, ig.gt, ig.ge]) {
    t.false(cmp(x, y).requiresGrad, cmp.name);
    t.false(cmp(x, 1).requiresGrad, cmp.name);
    t.false(cmp(2, y).requiresGrad, cmp.name);
  }
  // a condition made by a comparison routes the gradient without getting one
  const picked = ig.where(x.gt(y), x, y);
  picked.sum().backward();
  t.deepEqual(x.grad!.toArray(), [[1, 0], [0, 0]]);
  t.deepEqual(y.grad!.toArray(), [[0, 1], [1, 1]]);
  for (const u of [x, y, picked]) u.dispose();
});

test('gradcheck reports a wrong gradient, naming the input, the element and both values', (t) => {
  const x = ig.tensor([[0.5, -1], [2, 3]], { dtype: 'float64' }).requiresGrad_();
  // the detached factor hides half of the derivative of x * x
  assertCode(t, () => ig.gradcheck((a) => a.mul(a.detach()).sum(), [x]), 'ERR_GRAD', /input 0 .*element \[0, 0\]: analytic 0\.5, numerical (0\.9999|1\.0000)\d* /);
  t.is(x.grad, null, "the inputs' gradients are left as they were");
});

test('gradcheck: bad arguments', (t) => {
  const x = ig.tensor([1, 2], { dtype: 'float64' }).requiresGrad_();
  const f32 = ig.tensor([1, 2]).requiresGrad_();
  const plain = ig.tensor([1, 2], { dtype: 'float64' });
  assertCode(t, () => ig.gradcheck((a) => a.mul(2), [f32]), 'ERR_DTYPE');
  assertCode(t, () => ig.gradcheck((a) => a.mul(2), [plain]), 'ERR_ARG', /requires grad/);
  assertCode(t, () => ig.gradcheck((() => 3) as unknown as (a: Tensor) => Tensor, [x]), 'ERR_ARG');
  assertCode(t, () => ig.gradcheck((a) => a.to('float32'), [x]), 'ERR_DTYPE');
  assertCode(t, () => ig.gradcheck(() => plain.mul(2), [x]), 'ERR_GRAD', /does not depend/);
  assertCode(t, () => ig.gradcheck((a) => a, [x], { eps: -1 }), 'ERR_ARG');
  assertCode(t, () => ig.gradcheck((a) => a, 'x' as unknown as Tensor[]), 'ERR_ARG');
  // an earlier gradient survives a check
  x.mul(3).sum().backward();
  t.true(ig.gradcheck((a) => a.mul(a), [x]));
  t.deepEqual(x.grad!.toArray(), [3, 3]);
});
