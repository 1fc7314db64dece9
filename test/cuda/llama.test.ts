/**
 * The LLaMA fine-tuning path on CUDA against the CPU: the LoRA model's forward and backward, a
 * few Trainer steps, `finetune` with a device, a CUDA graph of a whole LoRA training step
 * replayed against the same steps run eagerly (and its count of bad indices), and ERR_INDEX for a
 * bad index outside a capture. Skipped without a GPU; IGNIS_TEST_DEVICE=cpu runs the comparisons
 * CPU against CPU (the graph test needs a GPU).
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ig from '../../lib';
import { Tensor } from '../../lib';
import { Trainer } from '../../lib/train/trainer';
import { shuffled } from '../../lib/data/dataset';
import { finetune } from '../../lib/train/finetune';
import { assertCode, assertRelative, refOf } from '../helpers';
import { CONFIG, examples, finetuneFixture, tinyModel } from '../train/fixtures';

const device = (process.env.IGNIS_TEST_DEVICE ?? 'cuda') as ig.Device;
const reason = device === 'cpu' ? '' : ig.cuda.unavailableReason();
const gpuTest = reason ? test.skip : test;
const graphTest = ig.cuda.isAvailable() && device !== 'cpu' ? test : test.skip;
if (reason) console.log(`test/cuda/llama: GPU tests skipped (${reason})`);

/** float32 on the device against float32 on the CPU. */
const ALLOWED = 1e-4;

/** Token ids [2, 6] and their labels (a prompt position ignored), on `on`. */
function batch(on: ig.Device): { ids: Tensor; labels: Tensor } {
  const values = [3, 7, 1, 19, 4, 4, 0, 12, 5, 8, 2, 11];
  const ids = ig.tensor(BigInt64Array.from(values, BigInt), { shape: [2, 6] });
  const labels = ig.tensor(BigInt64Array.from(values.map((v, i) => (i % 6 === 0 ? -100 : v)), BigInt), { shape: [2, 6] });
  return { ids: ids.to(on), labels: labels.to(on) };
}

/** The LoRA weights' gradients and the loss and logits of one forward and backward. */
function forwardBackward(model: ig.LlamaForCausalLM, on: ig.Device) {
  const { ids, labels } = batch(on);
  const { logits, loss } = model.forward(ids, { labels });
  loss!.backward();
  const grads = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([name, p]) => [name, p.grad!] as const);
  ids.dispose();
  labels.dispose();
  return { logits, loss: loss!, grads };
}

gpuTest('LLaMA with LoRA: forward and backward on the device equal the CPU (float32)', (t) => {
  const cpuModel = tinyModel('float32', true, 0);
  const gpuModel = tinyModel('float32', true, 0).to(device);
  const cpu = forwardBackward(cpuModel, 'cpu');
  const gpu = forwardBackward(gpuModel, device);
  t.is(gpu.loss.device, device === 'cuda' ? `cuda:${ig.cuda.currentDevice()}` : device);
  assertRelative(t, gpu.loss, cpu.loss, 'loss', ALLOWED);
  assertRelative(t, gpu.logits, cpu.logits, 'logits', ALLOWED);
  t.is(gpu.grads.length, 8);
  gpu.grads.forEach(([name, g], i) => assertRelative(t, g, cpu.grads[i][1], `grad of ${name}`, ALLOWED));
  for (const r of [cpu, gpu]) for (const u of [r.logits, r.loss]) u.dispose();
  cpuModel.dispose();
  gpuModel.dispose();
});

gpuTest('a few Trainer steps on the device equal the same steps on the CPU', (t) => {
  const run = (on: ig.Device) => {
    const model = tinyModel('float32', true, 0).to(on);
    const tr = new Trainer({ model, train: examples(12, 1), heldOut: examples(4, 2), padId: 0, batchSize: 4, gradAccum: 2, totalSteps: 3, lr: 0.01, seed: 3 });
    t.is(tr.device, model.parameters()[0].device);
    const losses = [tr.trainStep(), tr.trainStep(), tr.trainStep()].map((r) => [r.loss, r.gradNorm]);
    const held = tr.evaluate().loss;
    const weights = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([, p]) => p.to('cpu'));
    tr.dispose();
    model.dispose();
    return { losses, held, weights };
  };
  const [cpu, gpu] = [run('cpu'), run(device)];
  cpu.losses.flat().forEach((v, i) => t.true(Math.abs(gpu.losses.flat()[i] - v) <= ALLOWED * Math.abs(v), `step figure ${i}: ${gpu.losses.flat()[i]} vs ${v}`));
  t.true(Math.abs(gpu.held - cpu.held) <= ALLOWED * cpu.held);
  gpu.weights.forEach((w, i) => assertRelative(t, w, cpu.weights[i], `weight ${i} after 3 steps`, ALLOWED));
  for (const w of [...cpu.weights, ...gpu.weights]) w.dispose();
});

graphTest('a Trainer with cudaGraph (padded batches, captured step replayed) equals the eager Trainer on the CPU', (t) => {
  const run = (on: ig.Device, cudaGraph: boolean) => {
    const model = tinyModel('float32', true, 0).to(on);
    // 10 examples in batches of 4: each epoch ends with a short micro-batch. A held-out sequence
    // longer than any training one grows the rotary tables between replays.
    const long = Array.from({ length: 40 }, (_, i) => (i * 7) % CONFIG.vocabSize);
    const heldOut = [...examples(3, 2), { inputIds: long, labels: long }];
    const tr = new Trainer({ model, train: examples(10, 1), heldOut, padId: 0, batchSize: 4, gradAccum: 2, totalSteps: 6, lr: 0.01, warmupSteps: 2, seed: 3, cudaGraph });
    const steps = Array.from({ length: 3 }, () => tr.trainStep());
    const heldBetween = tr.evaluate().loss;
    steps.push(tr.trainStep(), tr.trainStep());
    const state = tr.stateDict();
    tr.loadStateDict(state);  // drops the captured step: the next runs eagerly
    steps.push(tr.trainStep());
    for (const v of Object.values(state.optimizer.state).flatMap((e) => Object.values(e))) if (v instanceof Tensor) v.dispose();
    const held = tr.evaluate().loss;
    const weights = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([, p]) => p.to('cpu'));
    tr.dispose();
    model.dispose();
    return { steps, held, heldBetween, weights };
  };
  const [cpu, gpu] = [run('cpu', false), run(device, true)];
  t.true(Math.abs(gpu.heldBetween - cpu.heldBetween) <= ALLOWED * cpu.heldBetween);
  cpu.steps.forEach((c, i) => {
    const g = gpu.steps[i];
    t.is(g.tokens, c.tokens);
    t.is(g.lr, c.lr, `step ${i + 1}: the scheduled lr`);
    for (const key of ['loss', 'gradNorm'] as const) t.true(Math.abs(g[key] - c[key]) <= ALLOWED * Math.abs(c[key]), `step ${i + 1} ${key}: ${g[key]} vs ${c[key]}`);
  });
  t.true(Math.abs(gpu.held - cpu.held) <= ALLOWED * cpu.held);
  gpu.weights.forEach((w, i) => assertRelative(t, w, cpu.weights[i], `weight ${i} after 6 steps`, ALLOWED));
  for (const w of [...cpu.weights, ...gpu.weights]) w.dispose();
});

graphTest('a Trainer with cudaGraph: micro-batches and whole steps without a learned token equal the eager Trainer', (t) => {
  // batches of 2, 2 per step, 5 per epoch (orders shuffled(10, 3), then shuffled(10, 4)): these
  // examples ignored leave micro-batch 0 (the eager step) and 4 (a replay) without a learned
  // token, and the whole of step 4 (micro-batches 6 and 7)
  const train = examples(10, 4);
  const [first, second] = [shuffled(10, 3), shuffled(10, 4)];
  for (const i of [first[8], first[9], ...second.slice(2, 6)]) train[i] = { inputIds: train[i].inputIds, labels: train[i].labels.map(() => -100) };
  const run = (on: ig.Device, cudaGraph: boolean) => {
    const model = tinyModel('float32', true, 0).to(on);
    const tr = new Trainer({ model, train, padId: 0, batchSize: 2, gradAccum: 2, totalSteps: 5, lr: 0.01, seed: 3, cudaGraph });
    const steps = Array.from({ length: 5 }, () => tr.trainStep());
    const weights = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([, p]) => p.to('cpu'));
    tr.dispose();
    model.dispose();
    return { steps, weights };
  };
  const [cpu, gpu] = [run('cpu', false), run(device, true)];
  cpu.steps.forEach((c, i) => {
    const g = gpu.steps[i];
    t.is(g.tokens, c.tokens, `step ${i + 1}: tokens`);
    for (const key of ['loss', 'gradNorm'] as const) {
      if (Number.isNaN(c[key])) t.true(Number.isNaN(g[key]), `step ${i + 1} ${key}: ${g[key]} vs NaN`);
      else t.true(Math.abs(g[key] - c[key]) <= ALLOWED * Math.abs(c[key]), `step ${i + 1} ${key}: ${g[key]} vs ${c[key]}`);
    }
  });
  t.is(cpu.steps[3].tokens, 0, 'step 4 learns nothing');
  gpu.weights.forEach((w, i) => assertRelative(t, w, cpu.weights[i], `weight ${i} after 5 steps`, ALLOWED));
  for (const w of [...cpu.weights, ...gpu.weights]) w.dispose();
});

graphTest('finetune with cudaGraph trains and writes the adapter', async (t) => {
  const { model, data, root } = finetuneFixture(t);
  const out = path.join(root, 'out');
  const r = await finetune({ model, data, out, device, cudaGraph: true, rank: 4, alpha: 8, dropout: 0.1, batch: 2, seqLen: 32, steps: 4, lr: 0.01, seed: 1, sampleTokens: 4 });
  t.is(r.steps, 4);
  t.true(r.evalAfter !== null && r.evalAfter.loss < r.evalBefore.loss);
  t.true(fs.existsSync(path.join(out, 'adapter_model.safetensors')));
});

gpuTest('finetune with a device trains there and writes the adapter', async (t) => {
  const { model, data, root } = finetuneFixture(t);
  const out = path.join(root, 'out');
  const r = await finetune({ model, data, out, device, rank: 4, alpha: 8, batch: 2, seqLen: 32, steps: 3, lr: 0.01, seed: 1, sampleTokens: 4 });
  t.is(r.steps, 3);
  t.true(r.evalAfter !== null && Number.isFinite(r.evalAfter.loss));
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'metrics.json']) t.true(fs.existsSync(path.join(out, f)), f);
  t.is(r.samplesAfter.length, 1, 'generation ran on the model\'s device');
});

gpuTest('an index out of range outside a capture is ERR_INDEX on the device, as on the CPU', (t) => {
  const weight = ig.randn([5, 3], { device });
  const bad = ig.tensor(BigInt64Array.from([1, 5], BigInt), { shape: [2] }).to(device);
  const logits = ig.randn([2, 5], { device });
  assertCode(t, () => ig.embedding(bad, weight), 'ERR_INDEX', /index 5 is out of range/);
  assertCode(t, () => ig.gather(logits, 1, bad.view(2, 1)), 'ERR_INDEX', /index 5 is out of range/);
  assertCode(t, () => ig.crossEntropy(logits, bad), 'ERR_INDEX', /target 5 is out of range/);
  const model = tinyModel('float32', true).to(device);
  const ids = ig.full([1, 3], CONFIG.vocabSize, { dtype: 'int64', device });
  assertCode(t, () => model.forward(ids), 'ERR_INDEX');
  for (const u of [weight, bad, logits, ids]) u.dispose();
  model.dispose();
});

graphTest('a CUDA graph of a whole LLaMA LoRA step replayed equals the steps run eagerly; bad indices are counted', (t) => {
  const setup = () => {
    const model = tinyModel('float32', true, 0).to(device);
    model.train();
    const params = model.parameters().filter((p) => p.requiresGrad);
    const opt = new ig.AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
    const { ids, labels } = batch(device);
    const step = () => {
      ig.tidy(() => model.forward(ids, { labels }).loss!.backward());
      ig.clipGradNormTensor(params, 1);
      opt.step();
      opt.zeroGrad();
    };
    const dispose = () => {
      opt.dispose();
      model.dispose();
      ids.dispose();
      labels.dispose();
    };
    return { params, step, labels, dispose };
  };
  const eager = setup();
  const captured = setup();
  eager.step();
  captured.step();  // warm-up: optimizer state, cuBLAS, the rotary tables
  const g = ig.cuda.graph(() => captured.step());
  for (let i = 0; i < 3; i++) {
    eager.step();
    g.replay();
  }
  eager.params.forEach((p, i) => assertRelative(t, captured.params[i], p, `param ${i} after 3 replays`, ALLOWED));
  t.is(g.indexErrors(), 0);
  // a bad target copied into the captured labels: no fault, counted instead of raised
  captured.labels.copy_(ig.full([2, 6], 999, { dtype: 'int64', device }));
  g.replay();
  ig.cuda.synchronize();
  t.true(g.indexErrors() > 0);
  t.true(captured.params.every((p) => ig.tidy(() => refOf(p.to('cpu')).data).every(Number.isFinite)), 'an all-bad batch leaves finite weights');
  g.dispose();
  eager.dispose();
  captured.dispose();
});
