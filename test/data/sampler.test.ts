import test from 'ava';
import * as ig from '../../lib';
import { assertCode } from '../helpers';

const { DistributedSampler } = ig.data;

function allRanks(length: number, worldSize: number, options: ig.data.DistributedSamplerOptions = {}, epoch = 0): number[][] {
  return Array.from({ length: worldSize }, (_, rank) => {
    const s = new DistributedSampler(length, { ...options, rank, worldSize });
    s.setEpoch(epoch);
    return s.indices();
  });
}

test('the ranks get equal counts, disjoint, covering the dataset (padding by wrapping around)', (t) => {
  for (const [length, n] of [
    [10, 2],
    [10, 3],
    [7, 4],
    [3, 5],
    [12, 1],
  ]) {
    for (const shuffle of [true, false]) {
      const parts = allRanks(length, n, { shuffle, seed: 7 });
      const count = Math.ceil(length / n);
      for (const p of parts) t.is(p.length, count);
      const all = parts.flat();
      t.deepEqual([...new Set(all)].sort((a, b) => a - b), Array.from({ length }, (_, i) => i), 'every index appears');
      // the padding repeats the first count * n - length indices of the order, once each
      t.is(all.length - length, count * n - length);
      if (length % n === 0) t.is(new Set(all).size, all.length, 'disjoint');
      // interleaved: rank r takes positions r, r + n, ... of one order shared by every rank
      const order = Array.from({ length: count * n }, (_, p) => parts[p % n][Math.floor(p / n)]);
      t.deepEqual(order.slice(length), order.slice(0, count * n - length));
      if (!shuffle) t.deepEqual(order.slice(0, length), Array.from({ length }, (_, i) => i));
    }
  }
});

test('dropLast cuts the tail instead: disjoint, equal counts', (t) => {
  const parts = allRanks(11, 3, { dropLast: true, seed: 1 });
  for (const p of parts) t.is(p.length, 3);
  t.is(new Set(parts.flat()).size, 9);
  t.is(new DistributedSampler(2, { rank: 2, worldSize: 3, dropLast: true }).indices().length, 0);
});

test('the order depends on seed and epoch, the same on every rank; setEpoch changes it', (t) => {
  const e0 = allRanks(50, 2, { seed: 3 }, 0);
  const e1 = allRanks(50, 2, { seed: 3 }, 1);
  t.deepEqual(allRanks(50, 2, { seed: 3 }, 0), e0, 'reproducible');
  t.notDeepEqual(e0, e1);
  t.deepEqual([...e0.flat()].sort((a, b) => a - b), [...e1.flat()].sort((a, b) => a - b));
  t.notDeepEqual(allRanks(50, 2, { seed: 4 }, 0), e0);
  t.deepEqual(allRanks(50, 2, { shuffle: false }, 0), allRanks(50, 2, { shuffle: false }, 5), 'no shuffle: epochs agree');
  const one = new DistributedSampler(5, { shuffle: false });
  t.is(one.rank, 0);
  t.is(one.worldSize, 1);
  t.deepEqual(one.indices(), [0, 1, 2, 3, 4]);
  t.deepEqual(new DistributedSampler(0, { rank: 1, worldSize: 2 }).indices(), []);
});

test('bad rank, worldSize and options are ERR_ARG', (t) => {
  assertCode(t, () => new DistributedSampler(10, { rank: 2, worldSize: 2 }), 'ERR_ARG', /rank must be in \[0, 2\), got 2/);
  assertCode(t, () => new DistributedSampler(10, { rank: -1, worldSize: 2 }), 'ERR_ARG', /rank must be an integer >= 0/);
  assertCode(t, () => new DistributedSampler(10, { rank: 0.5, worldSize: 2 }), 'ERR_ARG', /rank/);
  assertCode(t, () => new DistributedSampler(10, { worldSize: 0 }), 'ERR_ARG', /worldSize must be an integer >= 1/);
  assertCode(t, () => new DistributedSampler(10, { rank: 1 }), 'ERR_ARG', /rank must be in \[0, 1\)/);
  assertCode(t, () => new DistributedSampler(-1), 'ERR_ARG', /length/);
  assertCode(t, () => new DistributedSampler(10, { seed: 1.5 }), 'ERR_ARG', /seed/);
  assertCode(t, () => new DistributedSampler(10, { shuffle: 'yes' as unknown as boolean }), 'ERR_ARG', /shuffle/);
  assertCode(t, () => new DistributedSampler(10, { dropLast: 1 as unknown as boolean }), 'ERR_ARG', /dropLast/);
  assertCode(t, () => new DistributedSampler(10).setEpoch(-1), 'ERR_ARG', /epoch/);
});

test.serial('rank and worldSize default to the process group when one is joined', async (t) => {
  await ig.dist.init({ timeoutMs: 10000 });
  try {
    const s = new DistributedSampler(4, { shuffle: false });
    t.is(s.rank, 0);
    t.is(s.worldSize, 1);
    t.deepEqual(s.indices(), [0, 1, 2, 3]);
  } finally {
    ig.dist.destroy();
  }
});
