/**
 * The caching allocator's bookkeeping (native/core/caching_allocator.h), driven on a fake device
 * that hands out addresses up to a capacity: this runs in every build, with or without a GPU.
 */
import test from 'ava';
import { addon } from '../../lib/native';
import { MemoryStats } from '../../lib/cuda';
import { assertCode, Rng } from '../helpers';

interface Segment {
  address: number;
  size: number;
  stream: number;
  small: boolean;
  blocks: { address: number; size: number; allocated: boolean }[];
}

const native = addon as {
  testAllocatorCreate(capacity: number): unknown;
  testAllocatorAllocate(a: unknown, nbytes: number, stream: number): number;
  testAllocatorFree(a: unknown, address: number): void;
  testAllocatorEmptyCache(a: unknown): void;
  testAllocatorStats(a: unknown): MemoryStats;
  testAllocatorCreatePool(a: unknown): number;
  testAllocatorReleasePool(a: unknown, pool: number): void;
  testAllocatorSegments(a: unknown): Segment[];
};

const KiB = 1024;
const MiB = 1024 * KiB;

/** The allocator over a fake device of `capacity` bytes. */
class Fake {
  readonly a: unknown;
  constructor(capacity = 1024 * MiB) {
    this.a = native.testAllocatorCreate(capacity);
  }
  alloc(nbytes: number, stream = 1): number {
    return native.testAllocatorAllocate(this.a, nbytes, stream);
  }
  free(address: number): void {
    native.testAllocatorFree(this.a, address);
  }
  emptyCache(): void {
    native.testAllocatorEmptyCache(this.a);
  }
  createPool(): number {
    return native.testAllocatorCreatePool(this.a);
  }
  releasePool(pool: number): void {
    native.testAllocatorReleasePool(this.a, pool);
  }
  get stats(): MemoryStats {
    return native.testAllocatorStats(this.a);
  }
  get segments(): Segment[] {
    return native.testAllocatorSegments(this.a);
  }
  /** The block that starts at `address`. */
  block(address: number) {
    for (const s of this.segments) for (const b of s.blocks) if (b.address === address) return { ...b, segment: s };
    return undefined;
  }
}

test('sizes round up to 512 bytes; requests up to 1 MiB share 2 MiB segments, cut into blocks', (t) => {
  const f = new Fake();
  const a = f.alloc(1);
  const b = f.alloc(513);
  const c = f.alloc(MiB);
  t.is(f.block(a)!.size, 512);
  t.is(f.block(b)!.size, 1024);
  t.is(f.block(c)!.size, MiB);
  t.is(b, a + 512, 'blocks are cut from the segment in order');
  t.is(c, b + 1024);
  const [segment] = f.segments;
  t.is(f.segments.length, 1);
  t.is(segment.size, 2 * MiB);
  t.true(segment.small);
  t.deepEqual(segment.blocks.map((x) => x.allocated), [true, true, true, false], 'the rest of the segment is a free block');
  t.like(f.stats, { allocated: 512 + 1024 + MiB, reserved: 2 * MiB, activeBlocks: 3, segments: 1, mallocs: 1 });
  t.is(f.alloc(0), 0, 'zero bytes: no block');
  t.is(f.stats.activeBlocks, 3);
});

test('large requests: 20 MiB segments below 10 MiB, their own size rounded to 2 MiB above; a small rest is not split off', (t) => {
  const f = new Fake();
  const a = f.alloc(MiB + 1);
  t.is(f.block(a)!.segment.size, 20 * MiB);
  t.false(f.block(a)!.segment.small);
  t.is(f.block(a)!.size, MiB + 512);
  // stream 2 has no cached block yet
  const b = f.alloc(11 * MiB + 1, 2);
  t.is(f.block(b)!.segment.size, 12 * MiB);
  t.is(f.block(b)!.size, 12 * MiB, 'a rest of 1 MiB or less stays with the block');
  const c = f.alloc(12 * MiB, 2);
  t.is(f.block(c)!.segment.size, 12 * MiB);
  t.is(f.stats.mallocs, 3);
  // the 20 MiB segment's free rest serves the next large request without a new segment
  const d = f.alloc(5 * MiB);
  t.is(f.block(d)!.segment.address, f.block(a)!.segment.address);
  t.is(f.stats.mallocs, 3);
});

test('freed blocks merge with free neighbours and are reused without another malloc', (t) => {
  const f = new Fake();
  const blocks = [f.alloc(4 * KiB), f.alloc(4 * KiB), f.alloc(4 * KiB)];
  f.free(blocks[1]);
  t.is(f.segments[0].blocks.length, 4, 'a hole between two blocks in use');
  f.free(blocks[0]);
  t.deepEqual(f.segments[0].blocks.map((b) => [b.size, b.allocated]), [[8 * KiB, false], [4 * KiB, true], [2 * MiB - 12 * KiB, false]]);
  f.free(blocks[2]);
  t.deepEqual(f.segments[0].blocks.map((b) => [b.size, b.allocated]), [[2 * MiB, false]], 'back to one free block');
  t.like(f.stats, { allocated: 0, activeBlocks: 0, reserved: 2 * MiB, mallocs: 1, peakAllocated: 12 * KiB });
  t.is(f.alloc(100 * KiB), blocks[0], 'reused from the cache');
  t.is(f.stats.mallocs, 1);
});

test('best fit: the smallest free block that holds the request', (t) => {
  const f = new Fake();
  const [big, , small] = [f.alloc(16 * KiB), f.alloc(512), f.alloc(4 * KiB), f.alloc(512)];
  f.free(big);
  f.free(small);
  t.is(f.alloc(3 * KiB), small);
  t.is(f.alloc(5 * KiB), big, 'the larger hole is split for a request the smaller cannot hold');
  t.is(f.block(big)!.size, 5 * KiB);
});

test('pools are per stream: a block freed on one stream is reused only on that stream', (t) => {
  const f = new Fake();
  const a = f.alloc(4 * KiB, 1);
  f.free(a);
  const b = f.alloc(4 * KiB, 2);
  t.not(f.block(b)!.segment.address, f.block(a)!.segment.address);
  t.is(f.stats.mallocs, 2);
  t.is(f.alloc(4 * KiB, 1), a);
  t.deepEqual(f.segments.map((s) => s.stream).sort(), [1, 2]);
});

test('emptyCache gives back the segments no block uses, and only those', (t) => {
  const f = new Fake();
  const kept = f.alloc(4 * KiB);
  const dropped = f.alloc(12 * MiB);
  f.free(dropped);
  f.emptyCache();
  t.deepEqual(f.segments.map((s) => s.size), [2 * MiB]);
  t.like(f.stats, { reserved: 2 * MiB, frees: 1, segments: 1 });
  f.free(kept);
  f.emptyCache();
  t.like(f.stats, { reserved: 0, allocated: 0, frees: 2, segments: 0 });
  t.is(f.block(f.alloc(4 * KiB))!.segment.size, 2 * MiB, 'a new segment after the cache is empty');
  t.is(f.stats.mallocs, 3);
});

test('out of memory: the cache is given back and the request retried, then ERR_OOM with the sizes', (t) => {
  const f = new Fake(30 * MiB);
  f.free(f.alloc(2 * MiB)); // a cached 20 MiB segment
  const big = f.alloc(25 * MiB);
  t.true(big > 0);
  t.like(f.stats, { oomRetries: 1, frees: 1, mallocs: 2, reserved: 26 * MiB, allocated: 26 * MiB });
  assertCode(t, () => f.alloc(8 * MiB), 'ERR_OOM', /out of memory allocating 8\.00 MiB.*26\.00 MiB allocated in 1 blocks.*26\.00 MiB reserved.*31457280 bytes in all/);
  t.like(f.stats, { allocated: 26 * MiB, activeBlocks: 1, oomRetries: 2 }, 'a failed request changes nothing else');
  f.free(big);
  t.true(f.alloc(8 * MiB) > 0, 'memory freed is usable again');
});

test('unknown and null pointers are ignored on free', (t) => {
  const f = new Fake();
  const a = f.alloc(4 * KiB);
  f.free(0);
  f.free(a + 512);
  f.free(12345);
  t.like(f.stats, { allocated: 4 * KiB, activeBlocks: 1 });
  f.free(a);
  f.free(a);
  t.like(f.stats, { allocated: 0, activeBlocks: 0 });
});

test('random allocations on two streams keep the bookkeeping consistent', (t) => {
  const rng = new Rng(7);
  const f = new Fake(256 * MiB);
  const live = new Map<number, { size: number; stream: number }>();
  const sizes = [1, 511, 512, 4000, 100 * KiB, MiB, MiB + 1, 3 * MiB, 9 * MiB, 17 * MiB];
  let problems = 0;
  const check = (step: number) => {
    const segments = f.segments;
    let allocated = 0;
    let reserved = 0;
    let active = 0;
    const starts = new Map<number, { size: number; stream: number }>();
    for (const s of segments) {
      reserved += s.size;
      let at = s.address;
      let previousFree = false;
      for (const b of s.blocks) {
        if (b.address !== at) problems++; // blocks tile the segment
        if (!b.allocated && previousFree) problems++; // free neighbours are merged
        previousFree = !b.allocated;
        at += b.size;
        if (b.allocated) {
          allocated += b.size;
          active++;
          starts.set(b.address, { size: b.size, stream: s.stream });
        }
      }
      if (at !== s.address + s.size) problems++;
    }
    for (const [address, want] of live) {
      const got = starts.get(address);
      if (!got || got.size < want.size || got.stream !== want.stream) problems++;
    }
    const stats = f.stats;
    if (stats.allocated !== allocated || stats.reserved !== reserved || stats.activeBlocks !== live.size || active !== live.size) problems++;
    if (problems) t.fail(`inconsistent after step ${step}`);
  };
  for (let step = 0; step < 600 && !problems; step++) {
    if (live.size > 0 && rng.next() < 0.45) {
      const keys = [...live.keys()];
      const address = keys[rng.int(0, keys.length - 1)];
      f.free(address);
      live.delete(address);
    } else {
      const size = rng.pick(sizes) + rng.int(0, 3) * 512;
      const stream = rng.int(1, 2);
      try {
        live.set(f.alloc(size, stream), { size, stream });
      } catch {
        // a full fake device: fine, as long as the state stays consistent
      }
    }
    if (rng.next() < 0.05) f.emptyCache();
    check(step);
  }
  for (const address of live.keys()) f.free(address);
  f.emptyCache();
  t.like(f.stats, { allocated: 0, reserved: 0, activeBlocks: 0, segments: 0 });
  t.is(problems, 0);
});

test('graph-private pools: their blocks are reused only within the pool, and kept through emptyCache while it lives', (t) => {
  const f = new Fake();
  const stream = f.alloc(4 * KiB, 1);
  f.free(stream);
  const pool = f.createPool();
  t.not(pool, f.createPool(), 'each pool has its own key');
  t.true(pool > 2 ** 47, 'pool keys never collide with stream addresses');
  const a = f.alloc(4 * KiB, pool);
  t.not(a, stream, 'a block cached for a stream is not handed to the pool');
  t.is(f.block(a)!.segment.stream, pool);
  f.free(a);
  t.is(f.alloc(4 * KiB, pool), a, 'a block freed in the pool is reused by the pool (as in a capture)');
  const b = f.alloc(12 * MiB, pool);
  f.free(b);
  t.not(f.alloc(12 * MiB, 1), b, "the pool's free blocks do not serve streams");
  const before = f.stats.segments;
  f.emptyCache();
  t.true(f.segments.some((s) => s.stream === pool && s.blocks.every((x) => !x.allocated)), 'emptyCache keeps the live pool\'s free segments');
  t.true(f.stats.segments < before, 'and gives back the streams\' ones');
});

test('releasing a pool gives back its free segments at once, the others when their last block is freed', (t) => {
  const f = new Fake();
  const pool = f.createPool();
  const kept = f.alloc(3 * MiB, pool);  // a large segment, held by an output tensor
  const small = f.alloc(4 * KiB, pool);
  f.free(small);
  const reserved = f.stats.reserved;
  t.is(f.segments.filter((s) => s.stream === pool).length, 2);
  f.releasePool(pool);
  t.is(f.segments.filter((s) => s.stream === pool).length, 1, 'the free small segment went back');
  t.is(f.stats.reserved, reserved - 2 * MiB);
  t.is(f.block(kept)!.segment.stream, pool, 'a block still in use stays valid');
  const frees = f.stats.frees;
  f.free(kept);
  t.is(f.segments.filter((s) => s.stream === pool).length, 0, 'its segment goes back when the block is freed');
  t.is(f.stats.frees, frees + 1);
  t.like(f.stats, { allocated: 0, reserved: 0, segments: 0 });
  f.releasePool(pool);
  f.releasePool(12345);
  t.pass('releasing twice, or an unknown pool, does nothing');
});

test('test entry points reject what is not a test allocator', (t) => {
  assertCode(t, () => native.testAllocatorStats({}), 'ERR_ARG');
  assertCode(t, () => native.testAllocatorAllocate(new Fake().a, -1, 0), 'ERR_ARG');
});
