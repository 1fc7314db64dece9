/**
 * The training loop: accumulation equals one big batch, a run resumed from a checkpoint gives
 * the same losses as one never stopped, evaluation is the token-weighted mean, bad options.
 */
import test from 'ava';
import * as path from 'node:path';
import * as ig from '../../lib';
import { IGNORE_INDEX } from '../../lib/data/dataset';
import { Trainer } from '../../lib/train/trainer';
import type { TrainerOptions } from '../../lib/train/trainer';
import { findTrainingState, loadTrainingState, saveTrainingState } from '../../lib/train/state';
import { assertCode, refOf, tempDir } from '../helpers';
import { examples, tinyModel } from './fixtures';

function trainer(model: ig.LlamaForCausalLM, opts: Partial<TrainerOptions> = {}): Trainer {
  return new Trainer({ model, train: examples(12, 1), heldOut: examples(5, 2), padId: 0, batchSize: 4, totalSteps: 6, lr: 0.01, warmupSteps: 1, seed: 3, ...opts });
}

test('gradient accumulation gives the same steps as one big batch', (t) => {
  const weights = (batchSize: number, gradAccum: number) => {
    const model = tinyModel('float64', false);
    const tr = trainer(model, { batchSize, gradAccum, maxGradNorm: 0.5 });
    const losses = [tr.trainStep().loss, tr.trainStep().loss];
    const out = model.namedParameters().map(([, p]) => refOf(p));
    tr.dispose();
    model.dispose();
    return { losses, out };
  };
  const big = weights(4, 1);
  const small = weights(2, 2);
  const single = weights(1, 4);
  for (const other of [small, single]) {
    other.losses.forEach((l, i) => t.true(Math.abs(l - big.losses[i]) < 1e-10, `loss ${l} vs ${big.losses[i]}`));
    other.out.forEach((ref, i) => t.true(ref.data.every((v, j) => Math.abs(v - big.out[i].data[j]) < 1e-10), `param ${i}`));
  }
});

test('a run resumed from a checkpoint gives the same losses and weights as one never stopped', (t) => {
  const dir = path.join(tempDir(t), 'checkpoint');
  const settings = { lr: 0.01, note: 'x' };
  const full = tinyModel('float32', true);
  const fullTrainer = trainer(full);
  const expected = Array.from({ length: 6 }, () => fullTrainer.trainStep().loss);

  const first = tinyModel('float32', true);
  const firstTrainer = trainer(first);
  const before = Array.from({ length: 3 }, () => firstTrainer.trainStep().loss);
  saveTrainingState(dir, firstTrainer, { settings, history: { before } });
  firstTrainer.trainStep();  // work after the checkpoint is lost, as after a crash
  ig.manualSeed(999);        // and the random stream has moved on
  firstTrainer.dispose();
  first.dispose();

  const resumed = tinyModel('float32', true);
  const resumedTrainer = trainer(resumed);
  const from = findTrainingState(dir);
  t.is(from, dir);
  t.deepEqual(loadTrainingState(dir, resumedTrainer, settings), { before });
  t.is(resumedTrainer.step, 3);
  const after = Array.from({ length: 3 }, () => resumedTrainer.trainStep().loss);
  t.deepEqual([...before, ...after], expected);
  full.namedParameters().forEach(([name, p], i) => t.deepEqual(refOf(resumed.namedParameters()[i][1]).data, refOf(p).data, name));
  assertCode(t, () => loadTrainingState(dir, resumedTrainer, { ...settings, lr: 0.02 }), 'ERR_ARG', /other settings \(lr: checkpoint 0\.01, now 0\.02\)/);
  for (const x of [fullTrainer, resumedTrainer, full, resumed]) x.dispose();
});

test('evaluation is the mean loss per learned token over the held-out examples', (t) => {
  const model = tinyModel('float64', false);
  const heldOut = examples(5, 4);
  const tr = trainer(model, { heldOut, batchSize: 2 });
  const result = tr.evaluate();
  let sum = 0;
  let count = 0;
  for (const e of heldOut) {
    const n = e.labels.filter((l, p) => p > 0 && l !== IGNORE_INDEX).length;
    if (n === 0) continue;
    const ids = ig.tensor(BigInt64Array.from(e.inputIds, BigInt), { shape: [1, e.inputIds.length] });
    const labels = ig.tensor(BigInt64Array.from(e.labels, BigInt), { shape: [1, e.labels.length] });
    sum += ig.tidy(() => (model.forward(ids, { labels }).loss as ig.Tensor).item()) * n;
    count += n;
    ids.dispose();
    labels.dispose();
  }
  t.true(Math.abs(result.loss - sum / count) < 1e-10);
  t.is(result.tokens, count);
  t.true(Math.abs(result.perplexity - Math.exp(sum / count)) < 1e-9);
  tr.dispose();
  model.dispose();
});

test('the trainer moves each batch to the model\'s device (a no-op on the CPU); an unusable device is refused', (t) => {
  const model = tinyModel('float32', true);
  const tr = trainer(model, { totalSteps: 1 });
  t.is(tr.device, 'cpu', 'taken from the model\'s parameters');
  const seen: string[] = [];
  const forward = model.forward.bind(model);
  model.forward = (ids, opts) => {
    seen.push(`${ids.device} ${opts?.labels?.device}`);
    return forward(ids, opts);
  };
  tr.trainStep();
  tr.evaluate();
  t.true(seen.length >= 2 && seen.every((d) => d === 'cpu cpu'), seen.join(', '));
  tr.dispose();
  if (!ig.cuda.isAvailable()) assertCode(t, () => trainer(model, { device: 'cuda' }), 'ERR_DEVICE', /not available/);
  assertCode(t, () => trainer(model, { device: 'tpu' as ig.Device }), 'ERR_DEVICE', /unknown device/);
  model.dispose();
});

test('bad trainer options and states are refused', (t) => {
  const model = tinyModel('float32', false);
  assertCode(t, () => trainer(model, { train: [] }), 'ERR_ARG', /no training examples/);
  assertCode(t, () => trainer(model, { batchSize: 0 }), 'ERR_ARG', /batchSize/);
  assertCode(t, () => trainer(model, { totalSteps: 1.5 }), 'ERR_ARG', /totalSteps/);
  assertCode(t, () => trainer(model, { cudaGraph: true }), 'ERR_ARG', /cudaGraph needs a CUDA device/);
  assertCode(t, () => trainer(model, { cudaGraph: 1 as unknown as boolean }), 'ERR_ARG', /cudaGraph must be a boolean/);
  const tr = trainer(model, { totalSteps: 1, heldOut: [] });
  assertCode(t, () => tr.evaluate(), 'ERR_ARG', /no held-out/);
  tr.trainStep();
  assertCode(t, () => tr.trainStep(), 'ERR_ARG', /all 1 steps are done/);
  tr.dispose();
  model.requiresGrad_(false);
  assertCode(t, () => trainer(model), 'ERR_ARG', /no trainable parameters/);
  model.dispose();
});
