import test from 'ava';
import { spawnSync } from 'child_process';
import * as path from 'path';
import * as ig from '../lib';
import { Tensor } from '../lib';
import { assertCode } from './helpers';

const LIB = path.join(__dirname, '..', 'lib');

/** Runs a script in a fresh node with --expose-gc; returns what it printed as JSON. */
function child(t: { is(a: unknown, b: unknown, m?: string): void }, body: string): any {
  const script = `const ig = require(${JSON.stringify(LIB)});
    const settle = () => new Promise((resolve) => setTimeout(resolve, 20));
    (async () => { ${body} })().catch((e) => { console.error(e); process.exit(1); });`;
  const res = spawnSync(process.execPath, ['--expose-gc', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  t.is(res.status, 0, res.stderr);
  return JSON.parse(res.stdout);
}

const live = () => {
  const m = ig.memory();
  return { tensors: m.tensors, views: m.views, storages: m.storages, cpu: m.bytes.cpu };
};

test('100k iterations of small ops inside tidy: live tensors return to their level, RSS stays bounded', (t) => {
  // RSS is measured in a fresh process, after a warm-up, with gc() between phases.
  const result = child(
    t,
    `const x = ig.rand([64]); const y = ig.rand([64]);
     const step = () => ig.tidy(() => { x.add(y).mul(y).sub(x).mul(0.5).add(1); });
     for (let i = 0; i < 10000; i++) step();
     gc(); await settle();
     const before = ig.memory(); const rss0 = process.memoryUsage().rss;
     for (let i = 0; i < 100000; i++) step();
     gc(); await settle();
     const after = ig.memory(); const rss1 = process.memoryUsage().rss;
     process.stdout.write(JSON.stringify({ before, after, growth: rss1 - rss0 }));`,
  );
  t.deepEqual(result.after, result.before, 'tensors, views, storages and bytes back to their level');
  const bound = 32 * 2 ** 20;
  t.true(result.growth < bound, `RSS grew by ${(result.growth / 2 ** 20).toFixed(1)} MiB over 500k ops (bound 32 MiB)`);
  t.log(`RSS growth over 100k iterations (500k ops): ${(result.growth / 2 ** 20).toFixed(2)} MiB`);

  // and in this process: the counters
  const x = ig.rand([8]);
  const before = live();
  for (let i = 0; i < 100_000; i++) ig.tidy(() => { x.add(x).mul(x); });
  t.deepEqual(live(), before);
  x.dispose();
});

test('tidy keeps what it returns (tensors in arrays, objects and Maps) and disposes the rest', (t) => {
  const before = live();
  const out = ig.tidy(() => {
    const a = ig.ones([2]);
    const b = a.add(1);
    const c = b.mul(2);
    const d = c.sub(1);
    const e = ig.zeros([3]);
    const f = ig.full([1], 4);
    a.add(a); // dropped
    return { first: b, list: [c, { deep: d }], map: new Map([['e', e]]), number: 3, self: null as unknown, f };
  });
  t.is(out.number, 3);
  for (const kept of [out.first, out.list[0] as Tensor, (out.list[1] as { deep: Tensor }).deep, out.map.get('e') as Tensor, out.f]) {
    t.false(kept.isDisposed);
  }
  t.deepEqual((out.list[0] as Tensor).toArray(), [4, 4]);
  t.is(live().tensors, before.tensors + 5, 'the two dropped tensors are gone');
  // a cycle in the result does not hang
  const cyclic = ig.tidy(() => {
    const o: { t: Tensor; self?: unknown } = { t: ig.ones([1]) };
    o.self = o;
    return o;
  });
  t.false(cyclic.t.isDisposed);
  for (const x of [out.first, out.list[0] as Tensor, (out.list[1] as { deep: Tensor }).deep, out.map.get('e') as Tensor, out.f, cyclic.t]) x.dispose();
  t.deepEqual(live(), before);
});

test('nested tidy: what the inner returns belongs to the outer scope', (t) => {
  const before = live();
  let inner: Tensor | undefined;
  let innerDropped: Tensor | undefined;
  const outer = ig.tidy(() => {
    inner = ig.tidy(() => {
      innerDropped = ig.ones([2]);
      return innerDropped.add(1);
    });
    t.true(innerDropped!.isDisposed, 'the inner scope disposed its own');
    t.false(inner.isDisposed, 'its result lives on in the outer scope');
    return inner.mul(3);
  });
  t.true(inner!.isDisposed, 'the outer scope disposed the inner result it did not return');
  t.deepEqual(outer.toArray(), [6, 6]);
  outer.dispose();
  t.deepEqual(live(), before);
});

test('tidy disposes on throw and rethrows; it refuses async functions', (t) => {
  const before = live();
  let made: Tensor | undefined;
  const err = t.throws(() =>
    ig.tidy(() => {
      made = ig.ones([4]);
      made.add(1);
      throw new Error('boom');
    }),
  );
  t.is(err?.message, 'boom');
  t.true(made!.isDisposed);
  t.deepEqual(live(), before);
  // an IgnisError from an op inside tidy also cleans up
  assertCode(t, () => ig.tidy(() => ig.ones([2]).add(ig.ones([3]))), 'ERR_SHAPE');
  t.deepEqual(live(), before);
  t.throws(() => ig.tidy((() => Promise.resolve(ig.ones([1]))) as () => unknown), { instanceOf: TypeError });
  t.deepEqual(live(), before);
});

test('keep() exempts a tensor from every enclosing scope', (t) => {
  const before = live();
  let kept: Tensor | undefined;
  ig.tidy(() => {
    ig.tidy(() => {
      kept = ig.keep(ig.ones([2]).add(2));
    });
  });
  const k = kept as Tensor;
  t.false(k.isDisposed);
  t.deepEqual(k.toArray(), [3, 3]);
  t.is(ig.keep(k), k, 'keep outside tidy is harmless');
  k.dispose();
  t.deepEqual(live(), before);
});

test('using disposes at the end of the block', (t) => {
  const before = live();
  let seen: Tensor | undefined;
  {
    using x = ig.ones([3]);
    using y = x.add(1);
    seen = y;
    t.is(live().tensors, before.tensors + 2);
  }
  t.true(seen.isDisposed);
  t.deepEqual(live(), before);
  const x = ig.ones([1]);
  x[Symbol.dispose]();
  t.true(x.isDisposed);
});

test('dispose is idempotent and a disposed tensor raises ERR_DISPOSED', (t) => {
  const before = live();
  const x = ig.ones([2, 2]);
  const v = x.view(4);
  x.dispose();
  x.dispose();
  t.true(x.isDisposed);
  t.is(live().tensors, before.tensors + 1);
  t.is(live().storages, before.storages + 1, 'the view keeps the storage');
  assertCode(t, () => x.add(1), 'ERR_DISPOSED');
  assertCode(t, () => x.data(), 'ERR_DISPOSED');
  t.deepEqual(v.toArray(), [1, 1, 1, 1]);
  v.dispose();
  v.dispose();
  t.deepEqual(live(), before);
});

test('the finalizer frees tensors that were dropped without dispose', (t) => {
  const result = child(
    t,
    `const base = ig.memory();
     (() => { for (let i = 0; i < 2000; i++) ig.ones([256]).add(1); })();
     const made = ig.memory();
     let now = made;
     for (let round = 0; round < 100 && now.tensors > base.tensors; round++) { await settle(); gc(); await settle(); now = ig.memory(); }
     process.stdout.write(JSON.stringify({ base, made, now }));`,
  );
  t.true(result.made.tensors >= result.base.tensors + 4000, `${result.made.tensors} tensors after making 4000`);
  t.is(result.now.tensors, result.base.tensors, 'all collected');
  t.is(result.now.storages, result.base.storages);
  t.is(result.now.bytes.cpu, result.base.bytes.cpu);
});

test('native memory is reported to V8, so its pressure alone triggers collection', (t) => {
  // 200 tensors of 4 MiB dropped undisposed, with no JS garbage to speak of: V8 collects them
  // only because it is told about their native bytes (without the report the peak is 800 MiB).
  // empty() leaves the pages untouched, so this costs no real memory.
  const result = child(
    t,
    `let peak = 0;
     for (let i = 0; i < 200; i++) {
       ig.empty([1024 * 1024]);
       await new Promise((resolve) => setImmediate(resolve));
       peak = Math.max(peak, ig.memory().bytes.cpu);
     }
     process.stdout.write(JSON.stringify({ peak }));`,
  );
  const mib = result.peak / 2 ** 20;
  t.true(mib >= 4 && mib < 400, `peak of live native bytes: ${mib} MiB of 800 MiB allocated`);
  t.log(`peak live native memory: ${mib} MiB of 800 MiB dropped`);
});

test('memory() counts tensors, views, storages and bytes', (t) => {
  const before = ig.memory();
  const a = ig.zeros([10], { dtype: 'float64' });
  const b = a.view(2, 5);
  const c = ig.zeros([3], { dtype: 'int32' });
  const now = ig.memory();
  t.is(now.tensors, before.tensors + 3);
  t.is(now.views, before.views + 3);
  t.is(now.storages, before.storages + 2);
  t.is(now.bytes.cpu, before.bytes.cpu + 80 + 12);
  t.is(now.bytes.cuda, 0);
  for (const x of [a, b, c]) x.dispose();
  t.deepEqual(ig.memory(), before);
});

test('peakMemory() is the most bytes held at once since resetPeakMemory()', (t) => {
  ig.resetPeakMemory();
  const base = ig.memory().bytes.cpu;
  t.deepEqual(ig.peakMemory(), { cpu: base, cuda: ig.memory().bytes.cuda });
  const a = ig.zeros([1000], { dtype: 'float64' });
  const b = ig.zeros([500]);
  a.dispose();
  const c = ig.zeros([100], { dtype: 'float64' });
  t.is(ig.peakMemory().cpu, base + 8000 + 2000, 'the peak was with a and b held');
  b.dispose();
  c.dispose();
  t.is(ig.memory().bytes.cpu, base);
  t.is(ig.peakMemory().cpu, base + 10000, 'freeing does not lower the peak');
  ig.resetPeakMemory();
  t.is(ig.peakMemory().cpu, base);
});
