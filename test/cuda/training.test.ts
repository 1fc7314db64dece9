/**
 * The training kernels on CUDA against the CPU on fresh random inputs: AdamW and SGD
 * (multi-tensor, 16-bit params with float32 state), gradient clipping, the fused LoRA layer
 * forward and backward (bfloat16 base weight, dropout mask, merge/unmerge; float64, a permuted
 * input, r = 1, an empty batch, the dropout mask drawn on the device), attention forward and
 * backward (causal, mask, grouped-query heads; the flash, the tensor-core (16-bit) and the
 * materialized kernels, head dims 32, 64 and 128, lengths off the tiles, strided views, and the
 * memory each keeps); a CUDA graph
 * of a small LoRA model's training
 * step replayed against the same steps run eagerly; memory back to its baseline after a
 * training loop. Skipped without a GPU; IGNIS_TEST_DEVICE=cpu runs the comparisons CPU against
 * CPU (the graph tests need a GPU).
 */
import test from 'ava';
import * as ig from '../../lib';
import { DType, Tensor } from '../../lib';
import { assertCode, assertRelative, randomTensor, refOf, Rng } from '../helpers';

const device = (process.env.IGNIS_TEST_DEVICE ?? 'cuda') as ig.Device;
const reason = device === 'cpu' ? '' : ig.cuda.unavailableReason();
const gpuTest = reason ? test.skip : test;
const graphTest = ig.cuda.isAvailable() && device !== 'cpu' ? test : test.skip;
const cudaTest = graphTest; // needs the CUDA device itself (memory statistics)
if (reason) console.log(`test/cuda/training: GPU tests skipped (${reason})`);

const FLOATS: DType[] = ['float32', 'bfloat16', 'float16'];

/** The same random values on the CPU and on the device. */
function pair(rng: Rng, shape: number[], dtype: DType = 'float32', lo = -1, hi = 1) {
  const values = randomTensor(rng, shape, 'float64', 'contiguous', lo, hi).t;
  return { cpu: values.to(dtype), gpu: values.to(dtype).to(device) };
}

/** Relative error allowed by dtype: ||gpu - cpu|| / ||cpu|| over all elements. */
const RELATIVE_ERROR: Record<string, number> = { float32: 1e-5, bfloat16: 1e-2, float16: 1e-2 };

/** The device result against the CPU one (relative error allowed by dtype). */
function same(t: import('ava').ExecutionContext, gpu: Tensor, cpu: Tensor, what: string, allowed = RELATIVE_ERROR[cpu.dtype]) {
  assertRelative(t, gpu, cpu, what, allowed);
}

gpuTest('AdamW and SGD: several params of each float dtype in one step, 16-bit params with float32 state', (t) => {
  const rng = new Rng(1);
  for (const make of [
    (ps: Tensor[]) => new ig.AdamW(ps, { lr: 0.01, weightDecay: 0.1 }),
    (ps: Tensor[]) => new ig.SGD(ps, { lr: 0.05, momentum: 0.9, nesterov: true }),
    (ps: Tensor[]) => new ig.SGD(ps, { lr: 0.05, weightDecay: 0.01 }),
  ]) {
    const shapes = [[7], [33, 5], [300, 70], [2, 3, 4]];
    const dtypes = shapes.map((_, i) => FLOATS[i % FLOATS.length]);
    const params = shapes.map((s, i) => pair(rng, s, dtypes[i]));
    const sides = (['cpu', 'gpu'] as const).map((side) => {
      const ps = params.map((p) => p[side].clone().requiresGrad_());
      return { ps, opt: make(ps) };
    });
    for (let step = 0; step < 3; step++) {
      const grads = shapes.map((s, i) => pair(rng, s, dtypes[i]));
      sides.forEach(({ ps, opt }, k) => {
        ps.forEach((p, i) => (p.grad = k === 0 ? grads[i].cpu : grads[i].gpu));
        opt.step();
      });
    }
    params.forEach((_, i) => same(t, sides[1].ps[i], sides[0].ps[i], `${sides[0].opt.constructor.name} param ${i} (${dtypes[i]})`));
  }
});

gpuTest('clipGradNorm: the total norm (2, 1, inf, 3) and the scaled grads', (t) => {
  const rng = new Rng(2);
  for (const normType of [2, 1, Infinity, 3]) {
    const grads = [[5000], [17, 9], [3]].map((s, i) => pair(rng, s, FLOATS[i]));
    const [cpu, gpu] = (['cpu', 'gpu'] as const).map((side) =>
      grads.map((g) => {
        const p = ig.zerosLike(g[side]).requiresGrad_();
        p.grad = g[side].clone();
        return p;
      }),
    );
    const [nc, ng] = [ig.clipGradNorm(cpu, 0.5, normType), ig.clipGradNorm(gpu, 0.5, normType)];
    t.true(Math.abs(nc - ng) <= 1e-6 * nc, `norm ${normType}: ${ng} vs ${nc}`);
    cpu.forEach((p, i) => same(t, gpu[i].grad!, p.grad!, `clipped grad ${i}, norm ${normType}`));
    // the same without the host reading the norm
    const [tc, tg] = [ig.clipGradNormTensor(cpu, 0.1, normType)!, ig.clipGradNormTensor(gpu, 0.1, normType)!];
    t.is(tg.device, gpu[0].device);
    same(t, tg, tc, `clipGradNormTensor's norm ${normType}`);
    cpu.forEach((p, i) => same(t, gpu[i].grad!, p.grad!, `clipGradNormTensor's grad ${i}, norm ${normType}`));
  }
});

gpuTest('LoRA layer: forward and backward against the CPU, with bias, dropout mask, a bfloat16 base weight and float32 adapters', (t) => {
  const rng = new Rng(3);
  for (const [dtype, wDtype, withMask, aDtype = dtype] of [
    ['float32', 'float32', false],
    ['float32', 'bfloat16', true],
    ['bfloat16', 'bfloat16', false],
    ['float16', 'float16', true],
    ['bfloat16', 'bfloat16', true, 'float32'],
    ['float16', 'float16', false, 'float32'],
  ] as [DType, DType, boolean, DType?][]) {
    const [n, inF, outF, r] = [24, 40, 36, 4];
    const x = pair(rng, [2, n / 2, inF], dtype);
    const w = pair(rng, [outF, inF], wDtype);
    const bias = pair(rng, [outF], wDtype);
    const a = pair(rng, [r, inF], aDtype);
    const b = pair(rng, [outF, r], aDtype);
    const mask = withMask ? pair(rng, [inF], dtype, 0, 2) : null;
    const dy = pair(rng, [2, n / 2, outF], dtype);
    const what = `${dtype} x, ${wDtype} W, ${aDtype} adapters${withMask ? ', mask' : ''}`;
    const run = (side: 'cpu' | 'gpu') => {
      const f = ig.loraLinearForward(x[side], w[side], bias[side], a[side], b[side], 0.75, { dropoutMask: mask?.[side] });
      const g = ig.loraLinearBackward(dy[side], x[side], w[side], a[side], b[side], f.xa, 0.75, { dropoutMask: mask?.[side] });
      return [f.y, f.xa, g.dx!, g.da, g.db];
    };
    const [cpu, gpu] = [run('cpu'), run('gpu')];
    t.is(gpu[3].dtype, aDtype, `dA's dtype: ${what}`);
    // 16-bit products on the GPU, float32 ones on the CPU: the input's dtype bounds the agreement
    ['y', 'xa', 'dx', 'da', 'db'].forEach((name, i) => same(t, gpu[i], cpu[i], `${name}: ${what}`, RELATIVE_ERROR[dtype]));
  }
  // merge and unmerge, in place, and the dropout mask
  const w = pair(rng, [12, 10], 'bfloat16');
  const a = pair(rng, [3, 10]);
  const b = pair(rng, [12, 3]);
  ig.loraMerge(w.gpu, a.gpu, b.gpu, 2);
  ig.loraMerge(w.cpu, a.cpu, b.cpu, 2);
  same(t, w.gpu, w.cpu, 'merge');
  ig.loraUnmerge(w.gpu, a.gpu, b.gpu, 2);
  ig.loraUnmerge(w.cpu, a.cpu, b.cpu, 2);
  same(t, w.gpu, w.cpu, 'unmerge');
  const bad = ig.full([12, 3], Infinity, { device });
  assertCode(t, () => ig.loraMerge(w.gpu, a.gpu, bad, 1), 'ERR_ARG', /NaN or Inf/);
  same(t, w.gpu, w.cpu, 'a refused merge leaves W untouched');
  const m = ig.loraDropoutMask([1000], 0.25, { dtype: 'float32' });
  t.true(refOf(m).data.every((v) => v === 0 || Math.abs(v - 1 / 0.75) < 1e-6));
});

gpuTest('LoRA layer edge cases: float64, permuted input, full-shape mask, r = 1, empty batch, no input gradient; the dropout mask', (t) => {
  const rng = new Rng(5);
  const allowed = (dtype: DType) => (dtype === 'float64' ? 1e-12 : RELATIVE_ERROR[dtype]);
  type Case = { dtype: DType; lead: number[]; r: number; mask: 'none' | 'row' | 'full'; permuted: boolean; needInputGrad: boolean; adapters?: DType };
  const cases: Case[] = [
    { dtype: 'float64', lead: [3, 8], r: 4, mask: 'row', permuted: false, needInputGrad: true },
    { dtype: 'float32', lead: [5, 6], r: 1, mask: 'full', permuted: true, needInputGrad: true },
    { dtype: 'bfloat16', lead: [4, 7], r: 8, mask: 'full', permuted: true, needInputGrad: false },
    { dtype: 'float16', lead: [0, 5], r: 2, mask: 'none', permuted: false, needInputGrad: true },
    { dtype: 'float32', lead: [0], r: 3, mask: 'row', permuted: false, needInputGrad: true },
    { dtype: 'bfloat16', lead: [0, 3], r: 2, mask: 'none', permuted: false, needInputGrad: true, adapters: 'float32' },
  ];
  const [inF, outF] = [20, 18];
  for (const c of cases) {
    // a permuted input is x [lead[1], lead[0], in] seen as [lead[0], lead[1], in]
    const x = pair(rng, c.permuted ? [c.lead[1], c.lead[0], inF] : [...c.lead, inF], c.dtype);
    const input = (v: Tensor) => (c.permuted ? v.permute(1, 0, 2) : v);
    const w = pair(rng, [outF, inF], c.dtype);
    const bias = pair(rng, [outF], c.dtype);
    const a = pair(rng, [c.r, inF], c.adapters ?? c.dtype);
    const b = pair(rng, [outF, c.r], c.adapters ?? c.dtype);
    const mask = c.mask === 'none' ? null : pair(rng, c.mask === 'row' ? [inF] : [...c.lead, inF], c.dtype, 0, 2);
    const dy = pair(rng, [...c.lead, outF], c.dtype);
    const what = `${c.dtype} lead ${JSON.stringify(c.lead)} r ${c.r}, mask ${c.mask}${c.permuted ? ', permuted x' : ''}`;
    const run = (side: 'cpu' | 'gpu') => {
      const opts = { dropoutMask: mask?.[side] };
      const f = ig.loraLinearForward(input(x[side]), w[side], bias[side], a[side], b[side], 0.5, opts);
      const g = ig.loraLinearBackward(dy[side], input(x[side]), w[side], a[side], b[side], f.xa, 0.5, { ...opts, needInputGrad: c.needInputGrad });
      t.is(g.dx === null, !c.needInputGrad, what);
      return [f.y, f.xa, g.da, g.db, ...(g.dx ? [g.dx] : [])];
    };
    const [cpu, gpu] = [run('cpu'), run('gpu')];
    ['y', 'xa', 'da', 'db', 'dx'].slice(0, cpu.length).forEach((name, i) => same(t, gpu[i], cpu[i], `${name}: ${what}`, allowed(c.dtype)));
  }
  // the dropout mask drawn on the device: the CPU's for the same seed (the draws are the same on every device)
  for (const dtype of ['float32', 'bfloat16', 'float64'] as DType[]) {
    for (const p of [0, 0.3, 1]) {
      ig.manualSeed(11);
      const onDevice = ig.loraDropoutMask([33, 17], p, { dtype, device });
      ig.manualSeed(11);
      const onCpu = ig.loraDropoutMask([33, 17], p, { dtype });
      t.is(onDevice.device, device === 'cuda' ? 'cuda:0' : device);
      same(t, onDevice, onCpu, `loraDropoutMask ${dtype} p ${p}`, 0);
    }
  }
});

gpuTest('attention: forward, logsumexp and backward against the CPU (causal, mask, grouped-query heads, transposed views)', (t) => {
  const rng = new Rng(4);
  const cases: { b: number; h: number; hkv: number; lq: number; lk: number; d: number; dv: number; causal: boolean; mask: boolean }[] = [
    { b: 2, h: 4, hkv: 4, lq: 17, lk: 17, d: 16, dv: 16, causal: true, mask: false },
    { b: 1, h: 6, hkv: 2, lq: 5, lk: 40, d: 8, dv: 12, causal: true, mask: false },
    { b: 2, h: 2, hkv: 1, lq: 33, lk: 33, d: 32, dv: 32, causal: false, mask: true },
    { b: 1, h: 2, hkv: 2, lq: 9, lk: 4, d: 8, dv: 8, causal: true, mask: false },
  ];
  for (const dtype of ['float32', 'bfloat16', 'float16'] as DType[]) {
    for (const c of cases) {
      const what = `${dtype} ${JSON.stringify(c)}`;
      // q as a transpose(1, 2) view of [B, L, H, D], as attention layers make it
      const qBase = pair(rng, [c.b, c.lq, c.h, c.d], dtype);
      const k = pair(rng, [c.b, c.hkv, c.lk, c.d], dtype);
      const v = pair(rng, [c.b, c.hkv, c.lk, c.dv], dtype);
      const mask = c.mask ? pair(rng, [c.lq, c.lk], dtype, -2, 0) : null;
      const dout = pair(rng, [c.b, c.h, c.lq, c.dv], dtype);
      const run = (side: 'cpu' | 'gpu') => {
        const q = qBase[side].transpose(1, 2).detach().requiresGrad_();
        const kk = k[side].clone().requiresGrad_();
        const vv = v[side].clone().requiresGrad_();
        const out = ig.scaledDotProductAttention(q, kk, vv, { causal: c.causal, mask: mask?.[side] });
        out.backward(dout[side]);
        return [out, q.grad!, kk.grad!, vv.grad!];
      };
      const [cpu, gpu] = [run('cpu'), run('gpu')];
      ['out', 'dq', 'dk', 'dv'].forEach((name, i) => same(t, gpu[i], cpu[i], `${name}: ${what}`));
    }
  }
});

type AttentionChoice = 'flash' | 'tensor-core' | 'materialized';

/** fn run with IGNIS_CUDA_ATTENTION set to `choice` (the CUDA attention kernels it selects). */
function withAttention<T>(choice: AttentionChoice, fn: () => T): T {
  const before = process.env.IGNIS_CUDA_ATTENTION;
  process.env.IGNIS_CUDA_ATTENTION = choice;
  try {
    return fn();
  } finally {
    if (before === undefined) delete process.env.IGNIS_CUDA_ATTENTION;
    else process.env.IGNIS_CUDA_ATTENTION = before;
  }
}

/**
 * An additive mask [b, 1, lq, lk] in [-2, 0) with about a fifth of it -Infinity and query row 2
 * hidden entirely; with `transposed`, a transpose(2, 3) view of a [b, 1, lk, lq] tensor.
 */
function hidingMask(rng: Rng, b: number, lq: number, lk: number, dtype: DType, transposed = false) {
  const [rows, cols] = transposed ? [lk, lq] : [lq, lk];
  const data = Float64Array.from({ length: b * lq * lk }, (_, i) => {
    const query = transposed ? i % lq : Math.floor(i / lk) % lq;
    return query === 2 || rng.next() < 0.2 ? -Infinity : rng.uniform(-2, 0);
  });
  const wide = ig.tensor(data, { shape: [b, 1, rows, cols] });
  const view = (t: Tensor) => (transposed ? t.transpose(2, 3) : t);
  const out = { cpu: view(wide.to(dtype)), gpu: view(wide.to(dtype).to(device)) };
  wide.dispose();
  return out;
}

gpuTest('attention: flash, tensor-core and materialized kernels against the CPU (head dims 32, 64, 128, Lq != Lk, lengths off the tiles, strided views)', (t) => {
  const rng = new Rng(7);
  const cases: { b: number; h: number; hkv: number; lq: number; lk: number; d: number; causal: boolean; mask: boolean; views?: boolean }[] = [
    { b: 1, h: 2, hkv: 2, lq: 70, lk: 70, d: 32, causal: true, mask: false },
    // whole tiles of queries that see no key; column-major k and v, a transposed mask
    { b: 2, h: 4, hkv: 2, lq: 200, lk: 37, d: 32, causal: true, mask: true, views: true },
    { b: 1, h: 2, hkv: 1, lq: 45, lk: 90, d: 128, causal: true, mask: true, views: true },
    { b: 1, h: 1, hkv: 1, lq: 20, lk: 50, d: 32, causal: false, mask: false },
    { b: 2, h: 4, hkv: 2, lq: 33, lk: 100, d: 64, causal: true, mask: false }, // a KV cache: queries at the end
    { b: 1, h: 2, hkv: 1, lq: 100, lk: 37, d: 64, causal: true, mask: true }, // the first queries see no key
    { b: 1, h: 3, hkv: 3, lq: 65, lk: 130, d: 128, causal: false, mask: true },
    { b: 2, h: 2, hkv: 1, lq: 1, lk: 77, d: 128, causal: true, mask: false }, // one decoded token
    { b: 1, h: 2, hkv: 2, lq: 129, lk: 129, d: 128, causal: true, mask: true },
  ];
  for (const dtype of FLOATS) {
    for (const c of cases) {
      // q as a transpose(1, 2) view of [B, L, H, D], as attention layers make it; with `views`,
      // k and v as transpose(2, 3) views of [B, Hkv, D, Lk] (column-major matrices)
      const qBase = pair(rng, [c.b, c.lq, c.h, c.d], dtype);
      const k = pair(rng, c.views ? [c.b, c.hkv, c.d, c.lk] : [c.b, c.hkv, c.lk, c.d], dtype);
      const v = pair(rng, c.views ? [c.b, c.hkv, c.d, c.lk] : [c.b, c.hkv, c.lk, c.d], dtype);
      const mask = c.mask ? hidingMask(rng, c.b, c.lq, c.lk, dtype, c.views) : null;
      const dout = pair(rng, [c.b, c.h, c.lq, c.d], dtype);
      const run = (side: 'cpu' | 'gpu') => {
        const q = qBase[side].transpose(1, 2).detach().requiresGrad_();
        const kk = (c.views ? k[side].transpose(2, 3).detach() : k[side].clone()).requiresGrad_();
        const vv = (c.views ? v[side].transpose(2, 3).detach() : v[side].clone()).requiresGrad_();
        const out = ig.scaledDotProductAttention(q, kk, vv, { causal: c.causal, mask: mask?.[side] });
        out.backward(dout[side]);
        return [out, q.grad!, kk.grad!, vv.grad!];
      };
      const cpu = run('cpu');
      // the tensor-core kernels take bfloat16 and float16 only
      const choices: AttentionChoice[] = dtype === 'float32' ? ['flash', 'materialized'] : ['flash', 'tensor-core', 'materialized'];
      for (const choice of choices) {
        const gpu = withAttention(choice, () => run('gpu'));
        const what = `${choice}, ${dtype} ${JSON.stringify(c)}`;
        ['out', 'dq', 'dk', 'dv'].forEach((name, i) => same(t, gpu[i], cpu[i], `${name}: ${what}`));
      }
    }
  }
});

cudaTest('attention: the flash and tensor-core kernels keep no [Lq, Lk] scores; IGNIS_CUDA_ATTENTION=materialized does', (t) => {
  const [h, l, d] = [4, 2048, 32];
  const scores = h * l * l * 4;
  const q = ig.randn([1, h, l, d], { device }).requiresGrad_();
  const q16 = ig.tidy(() => q.detach().to('bfloat16')).requiresGrad_();
  const peak = (choice: AttentionChoice, x: Tensor) =>
    withAttention(choice, () => {
      ig.cuda.resetPeakMemoryStats();
      const base = ig.cuda.memoryStats().allocated;
      const out = ig.scaledDotProductAttention(x, x, x, { causal: true });
      out.backward(ig.onesLike(out));
      const used = ig.cuda.memoryStats().peakAllocated - base;
      out.dispose();
      x.grad = null;
      return used;
    });
  const [flash, tensorCore, materialized] = [peak('flash', q), peak('tensor-core', q16), peak('materialized', q)];
  t.true(flash < scores / 4, `flash: ${flash} bytes at most above the inputs (scores: ${scores})`);
  t.true(tensorCore < scores / 4, `tensor-core: ${tensorCore} bytes at most above the inputs (scores: ${scores})`);
  t.true(materialized >= scores, `materialized: ${materialized} bytes (scores: ${scores})`);
  assertCode(t, () => withAttention('fused' as 'flash', () => ig.scaledDotProductAttention(q, q, q)), 'ERR_ARG', /IGNIS_CUDA_ATTENTION must be flash, tensor-core or materialized/);
  q.dispose();
  q16.dispose();
});

/** A small LoRA model: two LoRA layers (bfloat16 base weights) around attention, trained with AdamW after clipping. */
function loraModel(seed: number, on: ig.Device, dropout = 0) {
  const rng = new Rng(seed);
  const [dim, r, heads] = [32, 4, 4];
  const made: Tensor[] = [];
  const make = (shape: number[], dtype: DType = 'float32') => {
    const t = ig.tidy(() => randomTensor(rng, shape, 'float32', 'contiguous', -0.3, 0.3).t.to(dtype).to(on));
    made.push(t);
    return t;
  };
  const layers = [0, 1].map(() => ({ w: make([dim, dim], 'bfloat16'), a: make([r, dim]).requiresGrad_(), b: make([dim, r]).requiresGrad_() }));
  const x = make([2, 8, dim]);
  const dy = make([2, 8, dim]);
  const params = layers.flatMap((l) => [l.a, l.b]);
  const opt = new ig.AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
  const step = () =>
    ig.tidy(() => {
      const dropoutMask = dropout ? ig.loraDropoutMask(x.shape.slice(), dropout, { device: on }) : null;
      const h = ig.loraLinear(x, layers[0].w, null, layers[0].a, layers[0].b, 2, { dropoutMask });
      const q = h.reshape(2, 8, heads, dim / heads).transpose(1, 2);
      const att = ig.scaledDotProductAttention(q, q, q, { causal: true }).transpose(1, 2).reshape(2, 8, dim);
      ig.loraLinear(ig.silu(att), layers[1].w, null, layers[1].a, layers[1].b, 2).backward(dy);
      ig.clipGradNormTensor(params, 0.05);
      opt.step();
      opt.zeroGrad();
    });
  const dispose = () => {
    opt.dispose();
    for (const t of made) t.dispose();
  };
  return { params, step, x, opt, dispose };
}

graphTest('a captured training step replayed equals the same steps run eagerly', (t) => {
  const eager = loraModel(5, device);
  const captured = loraModel(5, device);
  eager.step();
  captured.step();  // warm-up: optimizer state and cuBLAS
  const g = ig.cuda.graph(() => captured.step());
  for (let i = 0; i < 3; i++) {
    eager.step();
    g.replay();
  }
  eager.params.forEach((p, i) => same(t, captured.params[i], p, `param ${i} after 3 replays`, 1e-6));
  const state = captured.opt.stateDict();
  t.is(state.state[0].step, 4, 'replays advance the optimizer step count');
  for (const entry of Object.values(state.state)) for (const v of Object.values(entry)) if (v instanceof Tensor) v.dispose();
  // new inputs are copied into the captured tensors
  captured.x.copy_(ig.zerosLike(captured.x));
  g.replay();
  ig.cuda.synchronize();
  g.dispose();
  g.dispose();
  assertCode(t, () => g.replay(), 'ERR_ARG', /disposed/);
});

graphTest('random ops in a graph draw from the generator as it is at each replay', (t) => {
  ig.manualSeed(3);
  const g = ig.cuda.graph(() => ig.rand([1000], { device }));
  t.is(ig.getRngState().offset, 0n, 'the capture draws nothing: the generator is as it was');
  assertCode(t, () => ig.cuda.graph(() => {
    ig.rand([1000], { device });
    ig.cuda.synchronize();
  }), 'ERR_CUDA', /captured/);
  t.is(ig.getRngState().offset, 0n, 'nor does a capture that failed');
  const eager = (draws: number) => {
    ig.manualSeed(5);
    let last: number[] = [];
    for (let i = 0; i < draws; i++) last = ig.tidy(() => ig.rand([1000], { device }).toArray() as number[]);
    return last;
  };
  ig.manualSeed(5);
  g.replay();
  const first = g.output.toArray() as number[];
  g.replay();
  const second = g.output.toArray() as number[];
  t.is(ig.getRngState().offset, 2n * 250n, 'each replay advances the generator (1000 floats = 250 blocks)');
  t.deepEqual(first, eager(1), 'the first replay draws what an eager rand would');
  t.deepEqual(second, eager(2), 'the next replay draws the next numbers');
  t.notDeepEqual(first, second);
  g.dispose();
  assertCode(t, () => ig.cuda.graph(() => {
    ig.rand([4], { device });
    ig.manualSeed(1);
  }), 'ERR_CUDA', /reseeded/);
});

graphTest('replays draw fresh dropout masks and follow a learning-rate schedule, as eager steps do', (t) => {
  const eager = loraModel(8, device, 0.3);
  const captured = loraModel(8, device, 0.3);
  const decay = (step: number) => 1 / (1 + step);
  const eagerSchedule = new ig.optim.LRScheduler(eager.opt, decay);
  const capturedSchedule = new ig.optim.LRScheduler(captured.opt, decay);
  for (const [m, schedule] of [[eager, eagerSchedule], [captured, capturedSchedule]] as const) {
    ig.manualSeed(11);
    m.step();
    schedule.step();
  }
  const g = ig.cuda.graph(() => captured.step());
  for (let i = 0; i < 3; i++) {
    const state = ig.getRngState();
    eager.step();
    eagerSchedule.step();
    ig.setRngState(state);
    g.replay();
    capturedSchedule.step();
  }
  eager.params.forEach((p, i) => same(t, captured.params[i], p, `param ${i} after 3 replays`, 1e-6));
  g.dispose();
  eager.dispose();
  captured.dispose();
});

graphTest('what cannot be captured raises a clear error, and the capture is cleaned up', (t) => {
  const m = loraModel(6, device);
  m.step();
  const x = ig.randn([1], { device });
  for (const [name, use] of [
    ['.data()', () => x.data()],
    ['.item()', () => x.item()],
    ['to cpu', () => x.to('cpu')],
    ['synchronize', () => ig.cuda.synchronize()],
    ['emptyCache', () => ig.cuda.emptyCache()],
    ['clipGradNorm', () => ig.clipGradNorm(m.params, 1)],
  ] as const) {
    const before = ig.cuda.memoryStats();
    assertCode(t, () => ig.cuda.graph(() => {
      m.step();
      for (const p of m.params) p.grad = ig.onesLike(p);
      use();
    }), 'ERR_CUDA', name === 'clipGradNorm' ? /clipGradNorm/ : /captured/);
    for (const p of m.params) {
      p.grad?.dispose();
      p.grad = null;
    }
    t.is(ig.cuda.memoryStats().allocated, before.allocated, `${name}: the capture's memory is freed`);
    m.step();  // eager work runs again
  }
  assertCode(t, () => ig.cuda.graph(() => ig.cuda.graph(() => 0)), 'ERR_CUDA', /nest/);
  const fresh = new ig.AdamW([ig.zeros([3], { device }).requiresGrad_()]);
  assertCode(t, () => ig.cuda.graph(() => {
    fresh.paramGroups[0].params[0].grad = ig.onesLike(fresh.paramGroups[0].params[0]);
    fresh.step();
  }), 'ERR_CUDA', /one step before capturing/);
});

gpuTest('memory returns to its baseline after a training loop', (t) => {
  const allocated = () => (device === 'cpu' ? ig.memory().bytes.cpu : ig.cuda.memoryStats().allocated);
  const baseline = allocated();
  const m = loraModel(7, device);
  m.step();
  const afterOne = allocated();
  t.true(afterOne > baseline);
  for (let i = 0; i < 5; i++) m.step();
  t.is(allocated(), afterOne, 'each step frees what it made');
  m.dispose();
  t.is(allocated(), baseline);
});

test('ig.cuda.graph without a GPU raises ERR_DEVICE with the reason', (t) => {
  if (ig.cuda.isAvailable()) return t.pass();
  const err = t.throws(() => ig.cuda.graph(() => 0), { instanceOf: ig.IgnisError });
  t.is(err?.code, 'ERR_DEVICE');
  t.true(err!.message.includes(ig.cuda.unavailableReason()), err?.message);
});

test('Module.to moves every parameter and buffer, keeping requiresGrad; an unavailable device changes nothing', (t) => {
  const model = new ig.nn.Linear(4, 3);
  model.registerBuffer('table', ig.ones([2]));
  model.weight.requiresGrad_(false);
  const before = model.parameters();
  if (!ig.cuda.isAvailable()) {
    assertCode(t, () => model.to('cuda'), 'ERR_DEVICE');
    t.deepEqual(model.parameters(), before);
    t.is(model.to('cpu'), model, 'moving to where it is already does nothing');
    t.deepEqual(model.parameters(), before);
    return;
  }
  const values = before.map((p) => refOf(p));
  model.to('cuda');
  const after = model.parameters();
  t.deepEqual(after.map((p) => p.device), ['cuda:0', 'cuda:0']);
  t.deepEqual(after.map((p) => p.requiresGrad), [false, true]);
  t.true(before.every((p) => p.isDisposed));
  after.forEach((p, i) => t.deepEqual(refOf(p).data, values[i].data));
  t.is(model.buffers()[0].device, 'cuda:0');
});
