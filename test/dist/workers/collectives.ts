/**
 * A rank of a collectives test world (started by test/dist/collectives.test.ts through the
 * launcher): runs every collective on every dtype and size against results it computes itself
 * from what each rank holds, and prints `ok <checks>`, or throws naming the first mismatch.
 * IGNIS_DIST_DEVICE=cuda puts the tensors on the rank's CUDA device (NCCL; IGNIS_DIST_BACKEND
 * picks init's backend: 'nccl' or 'auto').
 */
import * as ig from '../../../lib';
import { DType, Tensor } from '../../../lib';
import { tolerance } from '../../helpers';

const { dist } = ig;
const onCuda = process.env.IGNIS_DIST_DEVICE === 'cuda';
let device: ig.Device = 'cpu'; // set once the rank is known
const FLOATS: DType[] = ['float32', 'float64', 'bfloat16', 'float16'];
const DTYPES: DType[] = [...FLOATS, 'int32', 'int64'];
// 0 and 1 element, a small buffer (the one-step algorithms) and a few MB (the segmented ones),
// with sizes that do not divide evenly by the world size.
const SIZES = [0, 1, 1001, (1 << 19) + 3];
const OPS = ['sum', 'avg', 'max', 'min', 'prod'] as const;

let checks = 0;

/** The value rank r holds at element i of case c: small integers, exact in every dtype. */
function value(r: number, c: number, i: number, op: string): number {
  if (op === 'prod') return [1, 2, -1][(i + r + c) % 3];
  return ((i * 7 + r * 13 + c * 5) % 17) - 8;
}

function tensorOf(values: Float64Array, dtype: DType, shape = [values.length]): Tensor {
  return ig.tidy(() => ig.tensor(values, { dtype: 'float64' }).reshape(shape).to(dtype).to(device));
}

function check(what: string, got: Tensor, expected: Float64Array): void {
  if (got.device !== device) throw new Error(`${what}: on ${got.device}, expected ${device}`);
  const data = ig.tidy(() => got.cpu().to('float64').data() as Float64Array);
  if (data.length !== expected.length) throw new Error(`${what}: ${data.length} elements, expected ${expected.length}`);
  const [rtol, atol] = tolerance(got.dtype);
  for (let i = 0; i < data.length; i++) {
    if (Math.abs(data[i] - expected[i]) > atol + rtol * Math.abs(expected[i])) {
      throw new Error(`${what}: element ${i} is ${data[i]}, expected ${expected[i]}`);
    }
  }
  checks++;
}

/** Element i of `op` over every rank's value (the reference, in float64). */
function reduced(op: string, n: number, c: number, i: number): number {
  let acc = value(0, c, i, op);
  for (let q = 1; q < n; q++) {
    const v = value(q, c, i, op);
    if (op === 'sum' || op === 'avg') acc += v;
    else if (op === 'max') acc = Math.max(acc, v);
    else if (op === 'min') acc = Math.min(acc, v);
    else acc *= v;
  }
  return op === 'avg' ? acc / n : acc;
}

function fill(n: number, f: (i: number) => number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = f(i);
  return out;
}

async function main(): Promise<void> {
  await dist.init({ timeoutMs: 60000, backend: (process.env.IGNIS_DIST_BACKEND ?? 'auto') as 'auto' });
  const n = dist.worldSize();
  const r = dist.rank();
  if (onCuda) device = `cuda:${dist.localRank()}`;
  let c = 0;
  for (const dtype of DTYPES) {
    for (const size of SIZES) {
      const big = size > 10000;
      // allReduce: every op on small sizes, sum and max on the big one (await and wait()).
      for (const op of OPS) {
        if (op === 'avg' && !FLOATS.includes(dtype)) continue;
        if (big && op !== 'sum' && op !== 'max') continue;
        c++;
        const t = tensorOf(fill(size, (i) => value(r, c, i, op)), dtype);
        const work = dist.allReduce(t, { op });
        if (c % 2) await work;
        else work.wait();
        check(`allReduce ${op} ${dtype} [${size}]`, t, fill(size, (i) => reduced(op, n, c, i)));
        t.dispose();
      }
      const rows = big ? 8 : 1;
      const per = size; // each part as big as the tensor: the big size takes the segmented path
      // allGather: a list, stacked and concatenated.
      c++;
      const mine = tensorOf(fill(size, (i) => value(r, c, i, 'sum')), dtype);
      const list = await dist.allGather(mine);
      list.forEach((g, q) => check(`allGather list ${dtype} [${size}] from rank ${q}`, g, fill(size, (i) => value(q, c, i, 'sum'))));
      const stacked = await dist.allGather(mine, { into: 'stack' });
      check(`allGather stack ${dtype} [${size}]`, stacked, fill(n * size, (i) => value(Math.floor(i / Math.max(size, 1)), c, i % Math.max(size, 1), 'sum')));
      const shaped = ig.tidy(() => mine.narrow(0, 0, Math.min(size, rows * Math.floor(size / rows))).reshape([rows, Math.floor(size / rows)]));
      const catted = dist.allGather(shaped, { into: 'cat' }).wait();
      if (catted.shape[0] !== n * rows) throw new Error(`allGather cat: shape [${catted.shape}]`);
      checks++;
      for (const x of [...list, stacked, shaped, catted, mine]) x.dispose();
      // reduceScatter: one tensor split along dim 0, and a list.
      for (const op of ['sum', 'max'] as const) {
        c++;
        const whole = tensorOf(fill(n * per, (i) => value(r, c, i, op)), dtype, [n * per]);
        const part = await dist.reduceScatter(whole, { op });
        check(`reduceScatter ${op} ${dtype} [${n * per}]`, part, fill(per, (i) => reduced(op, n, c, r * per + i)));
        const pieces = Array.from({ length: n }, (_, p) => whole.narrow(0, p * per, per));
        const out = ig.emptyLike(part);
        await dist.reduceScatter(pieces, { op, out });
        check(`reduceScatter list ${op} ${dtype}`, out, ig.tidy(() => part.cpu().to('float64').data() as Float64Array));
        for (const x of [whole, part, out, ...pieces]) x.dispose();
      }
      // broadcast from the last rank.
      c++;
      const b = tensorOf(fill(size, (i) => value(r, c, i, 'sum')), dtype);
      await dist.broadcast(b, { src: n - 1 });
      check(`broadcast ${dtype} [${size}]`, b, fill(size, (i) => value(n - 1, c, i, 'sum')));
      b.dispose();
    }
  }
  // Non-contiguous tensors go through a contiguous copy and back.
  c++;
  const base = tensorOf(fill(24, (i) => value(r, c, i, 'sum')), 'float32', [4, 6]);
  const view = base.transpose(0, 1).narrow(0, 1, 4); // [4, 4] of a transposed [6, 4]
  await dist.allReduce(view);
  const expected = fill(24, (i) => (i % 6 >= 1 && i % 6 < 5 ? reduced('sum', n, c, i) : value(r, c, i, 'sum')));
  check('allReduce non-contiguous (the rest of the base untouched)', base, expected);
  const nb = ig.zeros([3, 4], { device }).transpose(0, 1);
  await dist.broadcast(r === 0 ? ig.arange(0, 12).to('float32').reshape([4, 3]).to(device) : nb, { src: 0 });
  if (r !== 0) check('broadcast into a non-contiguous tensor', nb.contiguous(), fill(12, (i) => i));
  // barrier, and a ring of sends then receives (bool and 16-bit tensors move as bits).
  await dist.barrier();
  checks++;
  if (n > 1) {
    for (const dtype of ['bool', 'bfloat16', 'int64'] as DType[]) {
      const out = tensorOf(fill(5, (i) => (i + r) % 2), dtype);
      const into = ig.zeros([5], { dtype, device });
      // NCCL runs a send only with its receive: odd ranks receive first.
      const receiveFirst = onCuda && r % 2 === 1;
      const received = receiveFirst ? dist.recv(into, (r + n - 1) % n, { tag: 7 }) : null;
      const sent = dist.send(out, (r + 1) % n, { tag: 7 });
      await (received ?? dist.recv(into, (r + n - 1) % n, { tag: 7 }));
      await sent;
      check(`send/recv ring ${dtype}`, into, fill(5, (i) => (i + ((r + n - 1) % n)) % 2));
    }
  }
  dist.destroy();
  console.log(`ok ${checks}`);
}

main().catch((e) => {
  console.error(`FAIL ${(e as { code?: string }).code ?? ''} ${(e as Error).stack}`);
  process.exit(1);
});
