import test from 'ava';
import { alive, killLastOfThree, launch, linesWith, start, until, worker, world } from './helpers';

const FAULTS = worker('faults');

function pids(stdout: string): number[] {
  return linesWith(stdout, /pid \d+/).map((l) => Number(/pid (\d+)/.exec(l)![1]));
}

test('a killed rank: the others fail within the timeout naming it, and no process is left', async (t) => {
  const { survivors, killedAt, ranks } = await killLastOfThree(FAULTS, /step 3/);
  for (const r of survivors) {
    t.is(r.code, 1, r.stderr);
    t.regex(r.stderr, /error ERR_(TIMEOUT|DIST) allReduce #\d+ \(float32 \[1024\], sum\): .*rank 2 is gone/, r.stderr);
    t.regex(r.stderr, /next ERR_DIST .*unusable after an earlier failure/);
  }
  t.true(Date.now() - killedAt < 8000, `took ${Date.now() - killedAt} ms`);
  t.is((await ranks[2].done).signal, 'SIGKILL');
  for (const p of ranks) t.false(alive(p.child.pid!));
});

test('a rank that stops issuing collectives: the others time out naming it and its last collective', async (t) => {
  const { ranks, store } = world(3, FAULTS, ['loop', '100'], () => ({ TIMEOUT_MS: '1500', HANG_RANK: '1', HANG_STEP: '4' }));
  const [a, c] = await Promise.all([ranks[0].done, ranks[2].done]);
  for (const r of [a, c]) {
    t.is(r.code, 1, r.stderr);
    // The first to time out closes its connections: the other may fail on those first.
    t.regex(r.stderr, /error ERR_(TIMEOUT|DIST) allReduce #4 \(float32 \[1024\], sum\): .*rank 1 did not arrive \(last collective started: rank 1: #3\)/);
  }
  t.true([a, c].some((r) => /error ERR_TIMEOUT allReduce #4 \(float32 \[1024\], sum\): timed out after 1500 ms/.test(r.stderr)));
  t.true(a.ms < 15000);
  ranks[1].child.kill('SIGKILL');
  await ranks[1].done;
  store.close();
});

test('the launcher names a failed rank, stops the others and exits with its code', async (t) => {
  const run = launch(3, FAULTS, ['loop', '100000'], { EXIT_RANK: '1', EXIT_STEP: '3', EXIT_CODE: '7', TIMEOUT_MS: '20000' });
  const r = await run.done;
  t.is(r.code, 7, r.stderr);
  t.regex(r.stderr, /launch: rank 1 \(pid \d+\) exited with code 7; stopped the other workers/);
  const started = pids(r.stdout);
  t.is(started.length, 3);
  for (const pid of started) t.false(alive(pid), `pid ${pid} still runs`);
  t.true(linesWith(r.stdout, /^\[rank [0-2]\] step 2$/).length === 3, r.stdout);
});

test('the launcher kills a worker that ignores SIGTERM after the grace period', async (t) => {
  // Rank 0 idles (no collective to fail) and ignores SIGTERM; rank 1 exits with 5.
  const env = { IGNORE_SIGTERM: '1', HANG_RANK: '0', HANG_STEP: '2', EXIT_RANK: '1', EXIT_STEP: '2', EXIT_CODE: '5' };
  const r = await launch(2, FAULTS, ['loop', '100000'], env, ['--grace-period', '1']).done;
  t.is(r.code, 5, r.stderr);
  t.regex(r.stdout, /\[rank 0\] ignoring SIGTERM/);
  t.regex(r.stderr, /launch: rank 1 \(pid \d+\) exited with code 5/);
  t.true(r.ms >= 1000 && r.ms < 15000, `${r.ms} ms`);
  for (const pid of pids(r.stdout)) t.false(alive(pid));
});

test('the launcher names a rank killed by a signal', async (t) => {
  const run = launch(2, FAULTS, ['loop', '100000'], { TIMEOUT_MS: '20000' });
  await until(() => linesWith(run.stdout(), /pid \d+/).length === 2);
  const victim = pids(run.stdout()).find((p) => linesWith(run.stdout(), new RegExp(`^\\[rank 1\\] pid ${p}$`)).length)!;
  process.kill(victim, 'SIGKILL');
  const r = await run.done;
  t.is(r.code, 128 + 9);
  t.regex(r.stderr, new RegExp(`launch: rank 1 \\(pid ${victim}\\) was killed by SIGKILL`));
  for (const pid of pids(r.stdout)) t.false(alive(pid));
});

test('the launcher forwards SIGTERM and leaves no worker behind', async (t) => {
  const run = launch(2, FAULTS, ['loop', '100000']);
  await until(() => linesWith(run.stdout(), /step 1$/).length === 2);
  run.child.kill('SIGTERM');
  const r = await run.done;
  t.is(r.code, 128 + 15, r.stderr);
  for (const pid of pids(r.stdout)) t.false(alive(pid));
});

test('IGNIS_DIST_DEBUG=1 reports collectives that differ across ranks', async (t) => {
  for (const [kind, theirs] of [
    ['op', /rank 1 issued allGather\(float32 \[4\]\)/],
    ['shape', /rank 1 issued allReduce\(float32 \[5\], sum\)/],
  ] as const) {
    const { ranks, store } = world(2, FAULTS, ['mismatch', kind], () => ({ IGNIS_DIST_DEBUG: '1', TIMEOUT_MS: '10000' }));
    const [a, b] = await Promise.all(ranks.map((p) => p.done));
    store.close();
    t.regex(a.stderr, /error ERR_DIST collective #0 differs across ranks: rank 0 issued allReduce\(float32 \[4\], sum\)/);
    t.regex(a.stderr, theirs);
    t.regex(b.stderr, /error ERR_DIST collective #0 differs across ranks: rank 1 issued/);
    t.true(a.ms < 8000 && b.ms < 8000);
  }
});

test('without the debug mode, mismatched shapes are reported at once from the message headers', async (t) => {
  const { ranks, store } = world(2, FAULTS, ['mismatch', 'shape'], () => ({ TIMEOUT_MS: '20000' }));
  const [a, b] = await Promise.all(ranks.map((p) => p.done));
  store.close();
  t.true(a.ms < 10000 && b.ms < 10000);
  // The first to notice closes its connections: the other may fail on those first.
  const headers = /error ERR_DIST allReduce #0 \(float32 \[([45])\], sum\): rank [01] sent a message of collective #0 \((16|20) bytes\) where this rank expected one of collective #0 \((16|20) bytes\): the ranks issued different collectives or shapes/;
  t.true([a, b].some((r) => headers.test(r.stderr)), a.stderr + b.stderr);
  for (const r of [a, b]) t.regex(r.stderr, /error ERR_DIST allReduce #0/);
});

test('init times out naming the ranks that did not join; a wrong token is refused', async (t) => {
  const { ranks, store } = world(4, FAULTS, ['loop', '1'], (rank) => (rank >= 2 ? { WORLD_SIZE: '4', RANK: 'x' } : { TIMEOUT_MS: '800' }));
  const [a, b, c] = await Promise.all(ranks.map((p) => p.done));
  store.close();
  for (const r of [a, b]) t.regex(r.stderr, /error ERR_TIMEOUT init: ranks 2, 3 did not join within 800 ms/);
  t.regex(c.stderr, /error ERR_ARG dist: RANK must be an integer/);

  const bad = world(2, FAULTS, ['loop', '1'], (rank) => (rank === 1 ? { IGNIS_STORE_TOKEN: 'wrong', TIMEOUT_MS: '800' } : { TIMEOUT_MS: '800' }));
  const [x, y] = await Promise.all(bad.ranks.map((p) => p.done));
  bad.store.close();
  t.regex(y.stderr, /error ERR_DIST init: store: the server at 127\.0\.0\.1:\d+ refused this client: wrong token/);
  t.regex(x.stderr, /error ERR_TIMEOUT init: rank 1 did not join/);
});

test('destroy() fails the work in flight with ERR_DIST', async (t) => {
  const { ranks, store } = world(2, FAULTS, ['destroy']);
  const [a, b] = await Promise.all(ranks.map((p) => p.done));
  store.close();
  t.regex(a.stderr, /error ERR_DIST allReduce #0 \(float32 \[4\], sum\): the process group was destroyed/);
  t.true(a.ms < 8000);
  t.is(b.code, 0, b.stderr);
});

test('a launched script runs unchanged as a world of one without the launcher', async (t) => {
  const r = await start([FAULTS, 'loop', '3'], { WORLD_SIZE: '', RANK: '' }).done;
  t.is(r.code, 0, r.stderr);
  t.is(linesWith(r.stdout, /^step \d$/).length, 3);
});
