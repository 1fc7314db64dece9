/**
 * Data-parallel training through the Trainer: N ranks with `b` sequences each take the same
 * steps as one process with N * b sequences (float64, within 1e-10), with gradient accumulation
 * and epochs whose last batch leaves some ranks short or empty.
 */
import test from 'ava';
import { launch, start, worker } from './helpers';

interface Result {
  steps: [number, number, number][];
  heldOut: number;
  weights: [string, number[]][];
}

function resultOf(out: { code: number | null; stdout: string; stderr: string }): Result {
  const line = out.stdout.split('\n').find((l) => /^(\[rank 0\] )?result /.test(l));
  if (out.code !== 0 || line === undefined) throw new Error(`exit ${out.code}\n${out.stdout}\n${out.stderr}`);
  return JSON.parse(line.slice(line.indexOf('result ') + 7)) as Result;
}

function assertSame(t: import('ava').ExecutionContext, got: Result, expected: Result): void {
  const close = (a: number, b: number) => Math.abs(a - b) <= 1e-10 * Math.max(1, Math.abs(b));
  t.is(got.steps.length, expected.steps.length);
  got.steps.forEach(([loss, tokens, inputTokens], i) => {
    t.true(close(loss, expected.steps[i][0]), `step ${i + 1} loss ${loss} vs ${expected.steps[i][0]}`);
    t.is(tokens, expected.steps[i][1]);
    t.true(inputTokens <= expected.steps[i][2], `step ${i + 1}: ${inputTokens} input tokens`);  // ranks pad to their own longest sequence
  });
  t.true(close(got.heldOut, expected.heldOut), `held-out loss ${got.heldOut} vs ${expected.heldOut}`);
  t.deepEqual(got.weights.map(([n]) => n), expected.weights.map(([n]) => n));
  let worst = 0;
  got.weights.forEach(([, w], i) => w.forEach((x, j) => (worst = Math.max(worst, Math.abs(x - expected.weights[i][1][j])))));
  t.true(worst <= 1e-10, `largest weight difference ${worst}`);
}

for (const [ranks, batch, gradAccum] of [[2, 2, 1], [2, 1, 2], [3, 2, 2]]) {
  test(`${ranks} ranks x batch ${batch}, accumulation ${gradAccum}, equal one process with batch ${ranks * batch}`, async (t) => {
    const [single, parallel] = await Promise.all([
      start([worker('trainer'), String(ranks * batch), String(gradAccum)]).done,
      launch(ranks, worker('trainer'), [String(batch), String(gradAccum)]).done,
    ]);
    assertSame(t, resultOf(parallel), resultOf(single));
  });
}
