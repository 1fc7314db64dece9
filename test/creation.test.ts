import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ig from '../lib';
import { DType } from '../lib';
import { addon } from '../lib/native';
import { Rng, UNAVAILABLE_DEVICE, assertClose, assertCode, refFromFn } from './helpers';

const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const NUMERIC: DType[] = [...FLOATS, 'int32', 'int64'];
const philoxNative = addon as { philox4x32(counter: number[], key: number[]): number[] };

/** The elements of any tensor as JS numbers. */
function values(t: ig.Tensor): number[] {
  const wide = t.to('float64');
  const out = Array.from(wide.data() as Float64Array);
  wide.dispose();
  return out;
}

// ---------------------------------------------------------------------------------------------
// Philox4x32-10, written again here with BigInt arithmetic from the published description:
// ten rounds; in each, the products M0 * c0 and M1 * c2 are split into high and low words and
// the counter becomes (hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0); the key grows by the Weyl
// constants between rounds.

const MASK32 = 0xffffffffn;

function philoxReference(counter: number[], key: number[]): number[] {
  let c = counter.map(BigInt);
  let [k0, k1] = key.map(BigInt);
  for (let round = 0; round < 10; round++) {
    if (round > 0) {
      k0 = (k0 + 0x9e3779b9n) & MASK32;
      k1 = (k1 + 0xbb67ae85n) & MASK32;
    }
    const p0 = 0xd2511f53n * c[0];
    const p1 = 0xcd9e8d57n * c[2];
    c = [(p1 >> 32n) ^ c[1] ^ k0, p1 & MASK32, (p0 >> 32n) ^ c[3] ^ k1, p0 & MASK32];
  }
  return c.map(Number);
}

/** Block `index` of the stream of `seed`: counter (lo, hi, 0, 0) of the index, key = the seed's halves. */
function streamBlock(seed: bigint, index: bigint): number[] {
  return philoxReference([Number(index & MASK32), Number((index >> 32n) & MASK32), 0, 0], [Number(seed & MASK32), Number(seed >> 32n)]);
}

/** Elements [0, n) drawn `perBlock` per block from blocks offset, offset + 1, ... */
function streamValues(seed: bigint, offset: bigint, n: number, perBlock: number, draw: (w: number[]) => number[]): number[] {
  const out: number[] = [];
  for (let b = 0n; out.length < n; b++) out.push(...draw(streamBlock(seed, offset + b)));
  return out.slice(0, n);
}

const u53 = (hi: number, lo: number) => Number(((BigInt(hi) << 32n) | BigInt(lo)) >> 11n) / 2 ** 53;

function boxMuller(u1: number, u2: number): [number, number] {
  const r = Math.sqrt(-2 * Math.log(u1));
  return [r * Math.cos(2 * Math.PI * u2), r * Math.sin(2 * Math.PI * u2)];
}

/** What each random op draws from a block (kernels/philox.h). */
const DRAWS = {
  rand: {
    float32: [4, (w: number[]) => w.map((x) => (x >>> 8) / 2 ** 24)],
    bfloat16: [4, (w: number[]) => w.map((x) => (x >>> 24) / 2 ** 8)],
    float16: [4, (w: number[]) => w.map((x) => (x >>> 21) / 2 ** 11)],
    float64: [2, (w: number[]) => [u53(w[0], w[1]), u53(w[2], w[3])]],
  },
  randn: {
    float32: [4, (w: number[]) => [...boxMuller(1 - (w[0] >>> 8) / 2 ** 24, (w[1] >>> 8) / 2 ** 24), ...boxMuller(1 - (w[2] >>> 8) / 2 ** 24, (w[3] >>> 8) / 2 ** 24)]],
    float64: [2, (w: number[]) => boxMuller(1 - u53(w[0], w[1]), u53(w[2], w[3]))],
  },
} as const;

function randintDraw(low: number, high: number): (w: number[]) => number[] {
  const range = BigInt(high - low);
  return (w) =>
    [0, 1].map((k) => low + Number((((BigInt(w[2 * k]) << 32n) | BigInt(w[2 * k + 1])) * range) >> 64n));
}

test('philox4x32-10 matches the Random123 known-answer vectors', (t) => {
  // Random123 tests/kat_vectors, the three "philox4x32 10" lines: counter, key, result.
  const kat: [number[], number[], number[]][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [[0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff], [0xffffffff, 0xffffffff], [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]],
    [[0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0], [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]],
  ];
  for (const [counter, key, expected] of kat) {
    t.deepEqual(philoxNative.philox4x32(counter, key), expected);
    t.deepEqual(philoxReference(counter, key), expected);
  }
  const rng = new Rng(11);
  for (let i = 0; i < 200; i++) {
    const counter = [0, 0, 0, 0].map(() => Math.floor(rng.next() * 2 ** 32));
    const key = [0, 0].map(() => Math.floor(rng.next() * 2 ** 32));
    t.deepEqual(philoxNative.philox4x32(counter, key), philoxReference(counter, key));
  }
});

test('rand, randn and randint follow the documented stream layout exactly', (t) => {
  const seed = 0x9abcdef012345678n;
  // start just below 2^32 blocks so the counter carries into its second word
  const offset = 2n ** 32n - 5n;
  for (const n of [1, 7, 33, 1000]) {
    for (const [dtype, [perBlock, draw]] of Object.entries(DRAWS.rand)) {
      ig.setRngState({ seed, offset });
      const got = ig.rand([n], { dtype: dtype as DType });
      t.deepEqual(values(got), streamValues(seed, offset, n, perBlock, draw), `rand ${dtype} n=${n}`);
      t.is(ig.getRngState().offset, offset + BigInt(Math.ceil(n / perBlock)));
    }
    for (const [dtype, [perBlock, draw]] of Object.entries(DRAWS.randn)) {
      ig.setRngState({ seed, offset });
      const got = ig.randn([n], { dtype: dtype as DType });
      const tol: [number, number] = dtype === 'float64' ? [1e-13, 1e-13] : [1e-5, 5e-6];
      assertClose(t, got, refFromFn([n], (i) => streamValues(seed, offset, n, perBlock, draw)[i]), tol, `randn ${dtype} n=${n}`);
      t.is(ig.getRngState().offset, offset + BigInt(Math.ceil(n / perBlock)));
    }
    for (const [low, high, dtype] of [[0, 10, 'int64'], [-(2 ** 31), 2 ** 31 - 1, 'int32'], [-5, 2 ** 50, 'int64'], [3, 100, 'float32']] as const) {
      ig.setRngState({ seed, offset });
      const got = ig.randint(low, high, [n], { dtype });
      t.deepEqual(values(got), streamValues(seed, offset, n, 2, randintDraw(low, high)), `randint [${low}, ${high}) n=${n}`);
      t.is(ig.getRngState().offset, offset + BigInt(Math.ceil(n / 2)));
    }
  }
  // bfloat16 / float16 normals are the float32 normals, rounded
  for (const dtype of ['bfloat16', 'float16'] as const) {
    ig.setRngState({ seed, offset });
    const half = ig.randn([100], { dtype });
    ig.setRngState({ seed, offset });
    const wide = ig.randn([100]);
    const rounded = wide.to(dtype);
    t.deepEqual(values(half), values(rounded));
  }
});

test('randn float32 (polynomial log and sincos) stays within a few ulp of float64 Box-Muller', (t) => {
  const seed = 4242n;
  const n = 100_000;
  ig.setRngState({ seed, offset: 0n });
  const got = ig.randn([n]).data() as Float32Array;
  const [perBlock, draw] = DRAWS.randn.float32;
  const expected = streamValues(seed, 0n, n, perBlock, draw);
  let worst = 0;
  for (let i = 0; i < n; i++) {
    // in units of the float32 spacing at the value's size (at least that of 1)
    const ulp = 2 ** (Math.max(0, Math.floor(Math.log2(Math.abs(expected[i])))) - 23);
    worst = Math.max(worst, Math.abs(got[i] - expected[i]) / ulp);
  }
  t.true(worst < 8, `largest error ${worst.toFixed(2)} ulp`);
  t.log(`randn float32: largest error ${worst.toFixed(2)} ulp of max(|z|, 1) over ${n} draws`);
});

test('manualSeed makes runs repeat, seeds and calls differ, state save/restore resumes the stream', (t) => {
  ig.manualSeed(1234);
  t.deepEqual(ig.getRngState(), { seed: 1234n, offset: 0n });
  const a = [ig.rand([50]), ig.randn([3, 7], { dtype: 'float64' }), ig.randint(0, 1000, [40])].map(values);
  ig.manualSeed(1234);
  const b = [ig.rand([50]), ig.randn([3, 7], { dtype: 'float64' }), ig.randint(0, 1000, [40])].map(values);
  t.deepEqual(a, b);
  ig.manualSeed(1235);
  t.notDeepEqual(values(ig.rand([50])), a[0]);
  ig.manualSeed(1234);
  ig.rand([50]);
  t.notDeepEqual(values(ig.rand([50])), a[0], 'the next call continues the stream');
  // a negative seed counts from 2^64, as PyTorch
  ig.manualSeed(-1);
  t.is(ig.getRngState().seed, 2n ** 64n - 1n);
  ig.manualSeed(2n ** 64n - 1n);
  const c = values(ig.rand([8]));
  ig.manualSeed(-1);
  t.deepEqual(values(ig.rand([8])), c);

  // checkpoint: save, draw, restore, draw again
  ig.manualSeed(7);
  ig.randn([123]);
  const saved = ig.getRngState();
  const first = [ig.rand([77]), ig.randint(5, [9]), ig.randn([4], { dtype: 'bfloat16' })].map(values);
  ig.setRngState(saved);
  const again = [ig.rand([77]), ig.randint(5, [9]), ig.randn([4], { dtype: 'bfloat16' })].map(values);
  t.deepEqual(again, first);
  // a state survives a round trip through JSON as strings
  const json = JSON.stringify({ seed: saved.seed.toString(), offset: saved.offset.toString() });
  const parsed = JSON.parse(json) as { seed: string; offset: string };
  ig.setRngState({ seed: BigInt(parsed.seed), offset: BigInt(parsed.offset) });
  t.deepEqual(values(ig.rand([77])), first[0]);

  // empty tensors draw nothing
  const before = ig.getRngState();
  ig.rand([0, 5]);
  t.deepEqual(ig.getRngState(), before);
});

test('a process starts with the same default seed', (t) => {
  const script = `const ig = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const s = ig.getRngState(); process.stdout.write(JSON.stringify([String(s.seed), String(s.offset), Array.from(ig.rand([6]).data())]));`;
  const run = () => {
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8' });
    t.is(res.status, 0, res.stderr);
    return JSON.parse(res.stdout) as [string, string, number[]];
  };
  const first = run();
  t.deepEqual(first.slice(0, 2), ['67280421310721', '0']);
  t.deepEqual(run(), first);
});

test('the same numbers with 1 and 2 threads (in process and with IGNIS_NUM_THREADS)', (t) => {
  const script = `const ig = require(${JSON.stringify(path.join(__dirname, '..', 'lib'))});
    const crypto = require('crypto');
    const hash = crypto.createHash('sha256');
    ig.manualSeed(99);
    for (const x of [ig.rand([300001]), ig.rand([200003], { dtype: 'float64' }), ig.randn([300001]), ig.randn([200001], { dtype: 'float64' }),
      ig.randn([100001], { dtype: 'bfloat16' }), ig.randint(-7, 1000003, [300001]), ig.arange(0, 40000, 0.25), ig.linspace(-1, 1, 100001), ig.eye(300, 700)])
      hash.update(new Uint8Array(x.data().buffer));
    process.stdout.write(JSON.stringify({ threads: ig.getNumThreads(), hash: hash.digest('hex') }));`;
  const results = ['1', '2'].map((n) => {
    const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, IGNIS_NUM_THREADS: n } });
    t.is(res.status, 0, res.stderr);
    return JSON.parse(res.stdout) as { threads: number; hash: string };
  });
  t.is(results[0].threads, 1);
  t.is(results[1].hash, results[0].hash);
  t.log(`threads ${results[0].threads} and ${results[1].threads}: ${results[0].hash.slice(0, 16)}`);

  const before = ig.getNumThreads();
  const draw = () => {
    ig.manualSeed(5);
    return [ig.rand([100003]), ig.randn([100003]), ig.randint(0, 77, [100003])].map(values);
  };
  ig.setNumThreads(1);
  const one = draw();
  ig.setNumThreads(2);
  const two = draw();
  ig.setNumThreads(before);
  t.deepEqual(two, one);
});

/** Mean and variance of a sample. */
function moments(xs: ArrayLike<number>): { mean: number; variance: number } {
  let sum = 0;
  for (let i = 0; i < xs.length; i++) sum += xs[i];
  const mean = sum / xs.length;
  let sq = 0;
  for (let i = 0; i < xs.length; i++) sq += (xs[i] - mean) ** 2;
  return { mean, variance: sq / (xs.length - 1) };
}

/** Pearson's chi-square statistic of bin counts against equal expected counts. */
function chiSquare(counts: ArrayLike<number>, total: number): number {
  const expected = total / counts.length;
  let chi = 0;
  for (let i = 0; i < counts.length; i++) chi += (counts[i] - expected) ** 2 / expected;
  return chi;
}

/** A bound that a chi-square variable with `dof` degrees of freedom exceeds with probability about 1e-6 (normal approximation + margin). */
function chiBound(dof: number): number {
  return dof + 7 * Math.sqrt(2 * dof);
}

/** Standard normal CDF (Abramowitz-Stegun 7.1.26 erf, error < 1.5e-7). */
function normalCdf(x: number): number {
  const z = Math.abs(x) / Math.SQRT2;
  const k = 1 / (1 + 0.3275911 * z);
  const erf = 1 - k * (0.254829592 + k * (-0.284496736 + k * (1.421413741 + k * (-1.453152027 + k * 1.061405429)))) * Math.exp(-z * z);
  return x >= 0 ? (1 + erf) / 2 : (1 - erf) / 2;
}

test('rand: moments and uniformity at n = 1e6 (every float dtype)', (t) => {
  const n = 1_000_000;
  ig.manualSeed(2024);
  for (const dtype of FLOATS) {
    const xs = values(ig.rand([1000, 1000], { dtype }));
    t.true(xs.every((x) => x >= 0 && x < 1), `${dtype}: in [0, 1)`);
    const { mean, variance } = moments(xs);
    // standard error of the mean: sqrt(1/12 / n) = 2.9e-4; of the variance: sqrt(1/180 / n) = 7.5e-5
    const grid = dtype === 'bfloat16' ? 2 ** -8 : dtype === 'float16' ? 2 ** -11 : 0;
    t.true(Math.abs(mean - (0.5 - grid / 2)) < 6 * 2.9e-4, `${dtype} mean ${mean}`);
    t.true(Math.abs(variance - (1 / 12 - grid * grid / 12)) < 6 * 7.5e-5, `${dtype} variance ${variance}`);
    const bins = new Float64Array(256);
    for (const x of xs) bins[Math.floor(x * 256)]++;
    const chi = chiSquare(bins, n);
    t.true(chi < chiBound(255), `${dtype} chi-square ${chi.toFixed(1)} over 255 degrees of freedom`);
  }
});

test('randn: moments and a Kolmogorov-Smirnov test at n = 1e6', (t) => {
  ig.manualSeed(31337);
  for (const dtype of ['float32', 'float64'] as const) {
    const xs = values(ig.randn([1_000_000], { dtype }));
    const n = xs.length;
    const { mean, variance } = moments(xs);
    t.true(Math.abs(mean) < 6 / Math.sqrt(n), `${dtype} mean ${mean}`);
    t.true(Math.abs(variance - 1) < 6 * Math.sqrt(2 / n), `${dtype} variance ${variance}`);
    let skew = 0;
    let kurt = 0;
    for (const x of xs) {
      skew += x ** 3;
      kurt += x ** 4;
    }
    t.true(Math.abs(skew / n) < 6 * Math.sqrt(15 / n), `${dtype} third moment ${skew / n}`);
    t.true(Math.abs(kurt / n - 3) < 6 * Math.sqrt(96 / n), `${dtype} fourth moment ${kurt / n}`);
    // KS: sqrt(n) * D exceeds 1.95 with probability 1e-3 under the null
    const sorted = Float64Array.from(xs).sort();
    let d = 0;
    for (let i = 0; i < n; i++) {
      const f = normalCdf(sorted[i]);
      d = Math.max(d, Math.abs(f - i / n), Math.abs(f - (i + 1) / n));
    }
    t.true(Math.sqrt(n) * d < 1.95, `${dtype} KS statistic sqrt(n) D = ${(Math.sqrt(n) * d).toFixed(3)}`);
  }
  // half-precision normals: right moments too
  for (const dtype of ['bfloat16', 'float16'] as const) {
    const { mean, variance } = moments(values(ig.randn([200_000], { dtype })));
    t.true(Math.abs(mean) < 0.015 && Math.abs(variance - 1) < 0.02, `${dtype}: mean ${mean}, variance ${variance}`);
  }
});

test('randint: range, dtype and uniformity', (t) => {
  ig.manualSeed(77);
  const n = 1_000_000;
  const xs = values(ig.randint(-3, 7, [n]));
  const counts = new Float64Array(10);
  for (const x of xs) {
    t.true(Number.isInteger(x) && x >= -3 && x < 7, `value ${x}`);
    counts[x + 3]++;
  }
  const chi = chiSquare(counts, n);
  t.true(chi < chiBound(9), `chi-square ${chi.toFixed(2)} over 9 degrees of freedom`);
  // a range that is not a power of two, and one near 2^32, bin by bin
  for (const [low, high] of [[0, 1000], [-(2 ** 31), 2 ** 31]] as const) {
    const bins = new Float64Array(100);
    const sample = values(ig.randint(low, high, [200_000]));
    for (const x of sample) {
      t.true(x >= low && x < high);
      bins[Math.floor(((x - low) / (high - low)) * 100)]++;
    }
    t.true(chiSquare(bins, sample.length) < chiBound(99), `[${low}, ${high}) chi-square`);
  }
  t.is(ig.randint(0, 5, [3]).dtype, 'int64');
  t.is(ig.randint(5, [3], { dtype: 'int32' }).dtype, 'int32');
  t.deepEqual(ig.randint(10, [2, 3]).shape, [2, 3]);
  t.deepEqual(values(ig.randint(4, 5, [6])), [4, 4, 4, 4, 4, 4]);
  const wide = values(ig.randint(-(2 ** 52), 2 ** 52, [1000]));
  t.true(wide.every((x) => x >= -(2 ** 52) && x < 2 ** 52 && Number.isInteger(x)));
  t.true(wide.some((x) => Math.abs(x) > 2 ** 50), 'the range is used');
  for (const dtype of FLOATS) {
    const f = values(ig.randint(-4, 9, [500], { dtype }));
    t.true(f.every((x) => Number.isInteger(x) && x >= -4 && x < 9), dtype);
  }
});

test('randLike, randnLike, randintLike take shape, dtype and device from a tensor', (t) => {
  const base = ig.zeros([2, 3, 4], { dtype: 'float64' });
  for (const [f, name] of [[ig.randLike, 'randLike'], [ig.randnLike, 'randnLike']] as const) {
    const r = f(base);
    t.deepEqual([r.shape, r.dtype, r.device], [[2, 3, 4], 'float64', 'cpu'], name);
    t.is(f(base, { dtype: 'bfloat16' }).dtype, 'bfloat16');
  }
  const i = ig.randintLike(base, 10);
  t.deepEqual([i.shape, i.dtype], [[2, 3, 4], 'float64']);
  t.true(values(i).every((x) => x >= 0 && x < 10 && Number.isInteger(x)));
  const j = ig.randintLike(ig.zeros([5], { dtype: 'int32' }), -2, 2);
  t.is(j.dtype, 'int32');
  t.true(values(j).every((x) => x >= -2 && x < 2));
  t.is(ig.randintLike(base, 1, 3, { dtype: 'int64' }).dtype, 'int64');
  assertCode(t, () => ig.randLike(ig.zeros([2], { dtype: 'int64' })), 'ERR_DTYPE');
  const gone = ig.zeros([2]);
  gone.dispose();
  assertCode(t, () => ig.randnLike(gone), 'ERR_DISPOSED');
  assertCode(t, () => ig.randLike([1, 2] as unknown as ig.Tensor), 'ERR_ARG');
});

test('random ops: bad arguments', (t) => {
  for (const op of [ig.rand, ig.randn]) {
    assertCode(t, () => op([2, -1]), 'ERR_ARG');
    assertCode(t, () => op([2.5]), 'ERR_ARG');
    assertCode(t, () => op([NaN]), 'ERR_ARG');
    assertCode(t, () => op([2], { dtype: 'int32' }), 'ERR_DTYPE');
    assertCode(t, () => op([2], { dtype: 'bool' }), 'ERR_DTYPE');
    assertCode(t, () => op([2], { dtype: 'float8' as DType }), 'ERR_DTYPE');
    assertCode(t, () => op([2], { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
  }
  assertCode(t, () => ig.randint(5, 5, [2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(5, 1, [2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(0.5, 3, [2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, NaN, [2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, 2 ** 60, [2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, 2 ** 31 + 1, [2], { dtype: 'int32' }), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, 300, [2], { dtype: 'bfloat16' }), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, 2, [2], { dtype: 'bool' }), 'ERR_DTYPE');
  assertCode(t, () => ig.randint(0, 2, [-2]), 'ERR_ARG');
  assertCode(t, () => ig.randint(0, 2, 3 as unknown as number[]), 'ERR_ARG');
  assertCode(t, () => ig.manualSeed(1.5), 'ERR_ARG');
  assertCode(t, () => ig.manualSeed(2n ** 64n), 'ERR_ARG');
  assertCode(t, () => ig.manualSeed('1' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.setRngState({ seed: -1n, offset: 0n }), 'ERR_ARG');
  assertCode(t, () => ig.setRngState({ seed: 1n, offset: 2n ** 64n }), 'ERR_ARG');
  assertCode(t, () => ig.setRngState(null as unknown as ig.RngState), 'ERR_ARG');
  // the native layer checks again
  const native = addon as { rand(shape: number[], dtype: number): number; randint(l: number, h: number, s: number[], d: number): number; setRngState(a: unknown, b: unknown): void };
  assertCode(t, () => native.rand([2], 4), 'ERR_DTYPE');
  assertCode(t, () => native.randint(3, 3, [2], 5), 'ERR_ARG');
  assertCode(t, () => native.setRngState(1, 2n), 'ERR_ARG');
  assertCode(t, () => native.setRngState(-1n, 2n), 'ERR_ARG');
});

// ---------------------------------------------------------------------------------------------
// arange, linspace, eye

/** arange's length and values in float64, as documented. */
function refArange(start: number, end: number, step: number, dtype: DType): number[] {
  const float = dtype !== 'int32' && dtype !== 'int64';
  const [s, e, st] = float ? [start, end, step] : [start, end, step].map(Math.trunc);
  const n = Math.ceil((e - s) / st);
  return Array.from({ length: n }, (_, i) => s + i * st);
}

/** xs rounded to a float dtype (16-bit floats through ig's conversion, which test/tensor.test.ts checks). */
function roundTo(dtype: DType, xs: number[]): number[] {
  if (dtype === 'float64') return xs;
  if (dtype === 'float32') return xs.map(Math.fround);
  const t = ig.tensor(xs, { dtype: 'float64' });
  const r = values(t.to(dtype));
  t.dispose();
  return r;
}

test('arange: lengths, values and dtypes against a reference', (t) => {
  t.deepEqual(values(ig.arange(5)), [0, 1, 2, 3, 4]);
  t.is(ig.arange(5).dtype, 'int64');
  t.is(ig.arange(1, 4).dtype, 'int64');
  t.is(ig.arange(1, 4, 2).dtype, 'int64');
  t.is(ig.arange(1.5).dtype, 'float32');
  t.is(ig.arange(0, 1, 0.1).dtype, 'float32');
  t.deepEqual(ig.arange(0, 1, 0.1).shape, [10]);
  t.deepEqual(values(ig.arange(5, 5)), []);
  t.deepEqual(values(ig.arange(5, 0, -2)), [5, 3, 1]);
  t.is(ig.arange(3, { dtype: 'float64' }).dtype, 'float64');
  t.is(ig.arange(0, 3, { dtype: 'int32' }).dtype, 'int32');
  // integer dtypes truncate start, end and step, as PyTorch
  t.deepEqual(values(ig.arange(0.5, 5.2, 1, { dtype: 'int64' })), [0, 1, 2, 3, 4]);
  t.deepEqual(values(ig.arange(0, 5, 1.5, { dtype: 'int64' })), [0, 1, 2, 3, 4]);
  t.deepEqual(values(ig.arange(-0.5, 3, 1, { dtype: 'int32' })), [0, 1, 2]);

  const rng = new Rng(3);
  for (let trial = 0; trial < 60; trial++) {
    const dtype = rng.pick(NUMERIC);
    const integral = dtype === 'int32' || dtype === 'int64';
    const start = integral ? rng.int(-50, 50) : rng.uniform(-50, 50);
    let step = integral ? rng.pick([1, 2, 3, 7, -1, -4]) : rng.pick([0.25, 0.1, 1, 3.5, -0.5, -2]);
    const length = rng.int(0, 300);
    const end = start + step * length - (integral ? 0 : step * rng.next() * 0.9);
    if (step === 0) step = 1;
    const got = ig.arange(start, end, step, { dtype });
    const expected = refArange(start, end, step, dtype);
    t.deepEqual(got.shape, [expected.length], `arange(${start}, ${end}, ${step}) ${dtype}`);
    const [rtol, atol] = dtype === 'bfloat16' ? [4e-3, 0] : dtype === 'float16' ? [5e-4, 1e-7] : dtype === 'float32' ? [1e-7, 1e-12] : [0, 0];
    assertClose(t, got, refFromFn([expected.length], (i) => expected[i]), [rtol, atol], `arange ${dtype}`);
  }
  // exact in every dtype: the float64 result rounded once
  const big = ig.arange(-1000.5, 1000000, 0.75, { dtype: 'float32' });
  const expected = roundTo('float32', refArange(-1000.5, 1000000, 0.75, 'float64'));
  t.deepEqual(values(big), expected, 'large float32 arange, rounded once');
  const ints = values(ig.arange(-(2 ** 40), -(2 ** 40) + 3 * 200000, 3));
  t.true(ints.every((x, i) => x === -(2 ** 40) + 3 * i) && ints.length === 200000);
});

test('arange: bad arguments', (t) => {
  assertCode(t, () => ig.arange(0, 5, 0), 'ERR_ARG', /step/);
  assertCode(t, () => ig.arange(0, 5, 0.5, { dtype: 'int64' }), 'ERR_ARG', /truncates/);
  assertCode(t, () => ig.arange(NaN), 'ERR_ARG', /NaN/);
  assertCode(t, () => ig.arange(0, NaN), 'ERR_ARG');
  assertCode(t, () => ig.arange(0, 1, NaN), 'ERR_ARG');
  assertCode(t, () => ig.arange(0, Infinity), 'ERR_ARG');
  assertCode(t, () => ig.arange(0, 5, -1), 'ERR_ARG');
  assertCode(t, () => ig.arange(5, 0, 1), 'ERR_ARG');
  assertCode(t, () => ig.arange(-1), 'ERR_ARG');
  assertCode(t, () => ig.arange('3' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.arange(3, { dtype: 'bool' }), 'ERR_DTYPE');
  assertCode(t, () => ig.arange(3, { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
  assertCode(t, () => ig.arange(0, 2 ** 32, 2 ** 30, { dtype: 'int32' }), 'ERR_ARG');
  assertCode(t, () => ig.arange(2 ** 64), 'ERR_ARG');
  assertCode(t, () => ig.arange(0, 1e300, 1e-300), 'ERR_ARG');
  const native = addon as { arange(a: number, b: number, c: number, d: number): number };
  assertCode(t, () => native.arange(0, 5, 0, 0), 'ERR_ARG');
  assertCode(t, () => native.arange(0, 5, -1, 0), 'ERR_ARG');
  assertCode(t, () => native.arange(0, NaN, 1, 0), 'ERR_ARG');
  assertCode(t, () => native.arange(0, 3, 1, 6), 'ERR_DTYPE');
  assertCode(t, () => native.arange(0, 4e9, 1e9, 4), 'ERR_ARG');
});

test('linspace: endpoints exact, values against a reference, every numeric dtype', (t) => {
  const rng = new Rng(8);
  for (let trial = 0; trial < 60; trial++) {
    const dtype = rng.pick(NUMERIC);
    const integral = dtype === 'int32' || dtype === 'int64';
    const start = rng.uniform(-100, 100);
    const end = rng.uniform(-100, 100);
    const steps = rng.pick([0, 1, 2, 3, rng.int(4, 200), 70001]);
    const got = ig.linspace(start, end, steps, { dtype });
    t.deepEqual(got.shape, [steps]);
    const [s, e] = integral ? [Math.trunc(start), Math.trunc(end)] : [start, end];
    const step = steps > 1 ? (e - s) / (steps - 1) : 0;
    const halfway = steps === 1 ? 1 : Math.floor(steps / 2);
    const ref = Array.from({ length: steps }, (_, i) => (i < halfway ? s + i * step : e - (steps - 1 - i) * step));
    if (integral) {
      t.deepEqual(values(got), ref.map((x) => Math.trunc(x) + 0), `linspace(${start}, ${end}, ${steps}) ${dtype}`);
    } else {
      t.deepEqual(values(got), roundTo(dtype, ref), `linspace(${start}, ${end}, ${steps}) ${dtype}`);
      if (steps > 0) t.is(values(got)[0], roundTo(dtype, [start])[0]);
      if (steps > 1) t.is(values(got)[steps - 1], roundTo(dtype, [end])[0]);
    }
  }
  t.deepEqual(values(ig.linspace(0, 1, 5)), [0, 0.25, 0.5, 0.75, 1]);
  t.deepEqual(values(ig.linspace(-3, 3, 7, { dtype: 'int64' })), [-3, -2, -1, 0, 1, 2, 3]);
  t.deepEqual(values(ig.linspace(0, 10, 4, { dtype: 'int64' })), [0, 3, 6, 10]);
  t.deepEqual(values(ig.linspace(2, 9, 1)), [2]);
  assertCode(t, () => ig.linspace(0, 1, -1), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, 1, 2.5), 'ERR_ARG');
  assertCode(t, () => ig.linspace(NaN, 1, 2), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, Infinity, 2), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, 1, 2, { dtype: 'bool' }), 'ERR_DTYPE');
  assertCode(t, () => ig.linspace(0, 3e9, 2, { dtype: 'int32' }), 'ERR_ARG');
  assertCode(t, () => ig.linspace(0, 1, 2, { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
});

test('eye: every dtype, square and rectangular, against a reference', (t) => {
  const rng = new Rng(21);
  for (let trial = 0; trial < 30; trial++) {
    const n = rng.int(0, 9);
    const m = rng.next() < 0.3 ? undefined : rng.int(0, 9);
    const dtype = rng.pick([...NUMERIC, 'bool'] as DType[]);
    const e = m === undefined ? ig.eye(n, { dtype }) : ig.eye(n, m, { dtype });
    const cols = m ?? n;
    t.deepEqual([e.shape, e.dtype], [[n, cols], dtype]);
    t.deepEqual(values(e), Array.from({ length: n * cols }, (_, i) => (Math.floor(i / cols) === i % cols ? 1 : 0)));
  }
  t.is(ig.eye(3).dtype, 'float32');
  const big = ig.eye(700, 300);
  const v = big.data() as Float32Array;
  let wrong = 0;
  for (let i = 0; i < v.length; i++) if (v[i] !== (Math.floor(i / 300) === i % 300 ? 1 : 0)) wrong++;
  t.is(wrong, 0);
  assertCode(t, () => ig.eye(-1), 'ERR_ARG');
  assertCode(t, () => ig.eye(2, 1.5), 'ERR_ARG');
  assertCode(t, () => ig.eye(NaN), 'ERR_ARG');
  assertCode(t, () => ig.eye(2, { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
});

test('full, zeros, ones and their *Like forms', (t) => {
  const rng = new Rng(4);
  for (const dtype of [...NUMERIC, 'bool'] as DType[]) {
    const shape = [rng.int(0, 4), rng.int(1, 4)];
    const value = dtype === 'bool' ? 1 : dtype.startsWith('int') ? -7 : 2.5;
    const f = ig.full(shape, value, { dtype });
    t.deepEqual([f.shape, f.dtype], [shape, dtype]);
    t.true(values(f).every((x) => x === value), dtype);
    t.true(values(ig.zerosLike(f)).every((x) => x === 0));
    t.true(values(ig.onesLike(f)).every((x) => x === 1));
    t.deepEqual(ig.emptyLike(f).shape, shape);
    t.true(values(ig.fullLike(f, 1, { dtype: 'float64' })).every((x) => x === 1));
    t.is(ig.fullLike(f, 1, { dtype: 'float64' }).dtype, 'float64');
  }
  t.is(ig.full([2], true).dtype, 'bool');
  t.is(ig.ones([2]).dtype, 'float32');
  t.true(values(ig.full([3], NaN)).every(Number.isNaN));
  assertCode(t, () => ig.full([2], 'x' as unknown as number), 'ERR_ARG');
  assertCode(t, () => ig.zeros([2, -3]), 'ERR_ARG');
  assertCode(t, () => ig.ones([2], { device: UNAVAILABLE_DEVICE }), 'ERR_DEVICE');
  assertCode(t, () => ig.zerosLike(null as unknown as ig.Tensor), 'ERR_ARG');
});

test('requiresGrad option: tensor, empty, zeros, ones, full, rand and randn make leaves for autograd', (t) => {
  const makers: [string, (opts: ig.LeafOptions) => ig.Tensor][] = [
    ['tensor (nested)', (o) => ig.tensor([[1, 2], [3, 4]], o)],
    ['tensor (typed)', (o) => ig.tensor(new Float64Array([1, 2, 3, 4]), { ...o, shape: [2, 2] })],
    ['empty', (o) => ig.empty([2, 2], o)],
    ['zeros', (o) => ig.zeros([2, 2], o)],
    ['ones', (o) => ig.ones([2, 2], o)],
    ['full', (o) => ig.full([2, 2], 1.5, o)],
    ['rand', (o) => ig.rand([2, 2], o)],
    ['randn', (o) => ig.randn([2, 2], o)],
  ];
  for (const [name, make] of makers) {
    for (const dtype of FLOATS) {
      const x = make({ dtype, requiresGrad: true });
      t.true(x.requiresGrad && x.isLeaf, `${name} ${dtype}`);
      t.is(x.dtype, dtype);
      x.dispose();
    }
    for (const requiresGrad of [false, undefined]) {
      const x = make({ requiresGrad });
      t.false(x.requiresGrad, `${name} requiresGrad ${requiresGrad}`);
      x.dispose();
    }
  }
  // the leaf gets its gradient
  const w = ig.tensor([1, 2, 3], { dtype: 'float64', requiresGrad: true });
  w.mul(w).sum().backward();
  t.deepEqual(w.grad!.toArray(), [2, 4, 6]);
  w.dispose();
});

test('requiresGrad option: integer and bool dtypes are ERR_DTYPE, a non-boolean flag ERR_ARG; nothing is allocated or drawn', (t) => {
  const before = ig.memory();
  const state = ig.getRngState();
  assertCode(t, () => ig.tensor([1, 2], { dtype: 'int64', requiresGrad: true }), 'ERR_DTYPE', /tensor: .*int64/);
  assertCode(t, () => ig.tensor([true, false], { requiresGrad: true }), 'ERR_DTYPE', /bool/);
  assertCode(t, () => ig.tensor(new Int32Array([1, 2]), { requiresGrad: true }), 'ERR_DTYPE', /int32/);
  assertCode(t, () => ig.zeros([2], { dtype: 'int32', requiresGrad: true }), 'ERR_DTYPE', /zeros/);
  assertCode(t, () => ig.full([2], true, { requiresGrad: true }), 'ERR_DTYPE', /full/);
  assertCode(t, () => ig.tensor([1, 2], { requiresGrad: 1 as unknown as boolean }), 'ERR_ARG', /requiresGrad must be a boolean/);
  assertCode(t, () => ig.ones([2], { requiresGrad: 'yes' as unknown as boolean }), 'ERR_ARG');
  assertCode(t, () => ig.rand([2], { requiresGrad: 1 as unknown as boolean }), 'ERR_ARG');
  assertCode(t, () => ig.randn([2], { requiresGrad: null as unknown as boolean }), 'ERR_ARG');
  t.deepEqual(ig.memory(), before);
  t.deepEqual(ig.getRngState(), state, 'a refused random op draws nothing');
});
