import test from 'ava';
import * as ig from '../../lib';
import { assertCode } from '../helpers';

const { constantScheduleWithWarmup, linearScheduleWithWarmup, cosineScheduleWithWarmup, LRScheduler } = ig.optim;

/** An optimizer with two groups (base lrs 0.1 and 0.02). */
function twoGroups() {
  return new ig.SGD([{ params: [ig.zeros([2])] }, { params: [ig.zeros([2])], lr: 0.02 }], { lr: 0.1 });
}

/** The lrs of group 0 at steps 0..n, read from the optimizer after each scheduler step. */
function trace(opt: ig.SGD, scheduler: InstanceType<typeof LRScheduler>, n: number): number[] {
  const lrs = [opt.paramGroups[0].lr];
  for (let i = 0; i < n; i++) {
    scheduler.step();
    lrs.push(opt.paramGroups[0].lr);
  }
  return lrs;
}

function close(t: { true(v: boolean, m?: string): void }, got: number, expected: number, what: string): void {
  t.true(Math.abs(got - expected) <= 1e-12, `${what}: got ${got}, expected ${expected}`);
}

test('linear warmup then cosine decay: 0, linear rise, the base lr at the end of warmup, half-way half, 0 at the end', (t) => {
  const opt = twoGroups();
  const s = cosineScheduleWithWarmup(opt, { warmupSteps: 4, totalSteps: 24 });
  const lrs = trace(opt, s, 24);
  close(t, lrs[0], 0, 'step 0');
  close(t, lrs[1], 0.025, 'step 1');
  close(t, lrs[3], 0.075, 'step 3');
  close(t, lrs[4], 0.1, 'end of warmup');
  close(t, lrs[9], 0.1 * 0.5 * (1 + Math.cos(Math.PI / 4)), 'a quarter of the decay');
  close(t, lrs[14], 0.05, 'half-way');
  close(t, lrs[24], 0, 'end');
  for (let i = 5; i <= 24; i++) t.true(lrs[i] <= lrs[i - 1], `decreasing at ${i}`);
  t.is(s.lastStep, 24);
  close(t, s.getLastLr()[1], 0, 'group 1 at the end');
});

test('cosine with numCycles 1 comes back to the base lr at the end', (t) => {
  const opt = twoGroups();
  const s = cosineScheduleWithWarmup(opt, { warmupSteps: 0, totalSteps: 10, numCycles: 1 });
  const lrs = trace(opt, s, 10);
  close(t, lrs[0], 0.1, 'start');
  close(t, lrs[5], 0, 'middle');
  close(t, lrs[10], 0.1, 'end');
});

test('linear warmup then linear decay to 0, staying at 0 past the end; every group scaled', (t) => {
  const opt = twoGroups();
  const s = linearScheduleWithWarmup(opt, { warmupSteps: 2, totalSteps: 10 });
  const lrs = trace(opt, s, 12);
  close(t, lrs[0], 0, 'step 0');
  close(t, lrs[1], 0.05, 'step 1');
  close(t, lrs[2], 0.1, 'end of warmup');
  close(t, lrs[6], 0.05, 'half-way');
  close(t, lrs[10], 0, 'end');
  close(t, lrs[12], 0, 'past the end');
  const group1 = linearScheduleWithWarmup(twoGroups(), { warmupSteps: 2, totalSteps: 10 });
  group1.step();
  close(t, group1.getLastLr()[1], 0.01, 'group 1 half-way through warmup');
});

test('constant with warmup; no warmup starts at the base lr', (t) => {
  const opt = twoGroups();
  const lrs = trace(opt, constantScheduleWithWarmup(opt, { warmupSteps: 5 }), 50);
  close(t, lrs[0], 0, 'step 0');
  close(t, lrs[2], 0.04, 'step 2');
  t.true(lrs.slice(5).every((lr) => lr === 0.1));
  const none = twoGroups();
  constantScheduleWithWarmup(none, { warmupSteps: 0 });
  t.is(none.paramGroups[0].lr, 0.1);
});

test('a custom lambda per group; the scheduler drives the optimizer that steps', (t) => {
  const p = ig.tensor(Float64Array.of(1));
  const opt = new ig.SGD([p], { lr: 1 });
  const s = new LRScheduler(opt, (step) => 0.5 ** step);
  p.grad = ig.tensor(Float64Array.of(1));
  for (let i = 0; i < 3; i++) {
    opt.step();
    s.step();
  }
  t.deepEqual(p.toArray(), [1 - 1 - 0.5 - 0.25]);
  t.deepEqual(s.getLastLr(), [0.125]);
});

test('scheduler stateDict round trip resumes the schedule', (t) => {
  const a = twoGroups();
  const sa = cosineScheduleWithWarmup(a, { warmupSteps: 3, totalSteps: 20 });
  for (let i = 0; i < 7; i++) sa.step();
  const b = twoGroups();
  const sb = cosineScheduleWithWarmup(b, { warmupSteps: 3, totalSteps: 20 });
  sb.loadStateDict(sa.stateDict());
  t.deepEqual(sb.getLastLr(), sa.getLastLr());
  t.deepEqual(b.paramGroups.map((g) => g.lr), a.paramGroups.map((g) => g.lr));
  sa.step();
  sb.step();
  t.deepEqual(b.paramGroups.map((g) => g.lr), a.paramGroups.map((g) => g.lr));
  t.is(sb.lastStep, 8);
});

test('schedules: bad arguments raise ERR_ARG and a failed load changes nothing', (t) => {
  const opt = twoGroups();
  assertCode(t, () => cosineScheduleWithWarmup(opt, { warmupSteps: -1, totalSteps: 10 }), 'ERR_ARG', /warmupSteps/);
  assertCode(t, () => cosineScheduleWithWarmup(opt, { warmupSteps: 1.5, totalSteps: 10 }), 'ERR_ARG', /warmupSteps/);
  assertCode(t, () => cosineScheduleWithWarmup(opt, { warmupSteps: 20, totalSteps: 10 }), 'ERR_ARG', /totalSteps/);
  assertCode(t, () => cosineScheduleWithWarmup(opt, { warmupSteps: 2, totalSteps: 10, numCycles: 0 }), 'ERR_ARG', /numCycles/);
  assertCode(t, () => linearScheduleWithWarmup(opt, { warmupSteps: 2 } as ig.optim.DecayOptions), 'ERR_ARG', /missing totalSteps/);
  assertCode(t, () => constantScheduleWithWarmup(opt, { warmupSteps: 2, total: 3 } as ig.optim.WarmupOptions), 'ERR_ARG', /unexpected/);
  assertCode(t, () => new LRScheduler({} as ig.optim.LrOptimizer, () => 1), 'ERR_ARG', /optimizer/);
  assertCode(t, () => new LRScheduler(opt, [() => 1]), 'ERR_ARG', /2 parameter groups/);
  const failing = new LRScheduler(opt, (step) => (step > 0 ? NaN : 1));
  assertCode(t, () => failing.step(), 'ERR_ARG', /NaN/);
  t.is(failing.lastStep, 0, 'a failed step changes nothing');
  const s = linearScheduleWithWarmup(opt, { warmupSteps: 2, totalSteps: 10 });
  s.step();
  const lrs = opt.paramGroups.map((g) => g.lr);
  assertCode(t, () => s.loadStateDict({ lastStep: 3 } as ig.optim.LRSchedulerStateDict), 'ERR_ARG', /missing baseLrs/);
  assertCode(t, () => s.loadStateDict({ lastStep: 3, baseLrs: [0.1] }), 'ERR_ARG', /baseLrs/);
  assertCode(t, () => s.loadStateDict({ lastStep: -1, baseLrs: [0.1, 0.1] }), 'ERR_ARG', /lastStep/);
  assertCode(t, () => s.loadStateDict({ lastStep: 1, baseLrs: [0.1, NaN] }), 'ERR_ARG', /finite/);
  t.is(s.lastStep, 1);
  t.deepEqual(opt.paramGroups.map((g) => g.lr), lrs);
});
