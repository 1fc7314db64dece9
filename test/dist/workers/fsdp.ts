/**
 * A rank of a sharded-weights test world (test/dist/fsdp.test.ts): LoRA fine-tuning of a tiny
 * float64 LLaMA whose frozen weights are sharded (dist.shardFrozenWeights), each rank on its part
 * of the batch with the adapters' gradients averaged, checked against the same steps unsharded on
 * the whole batch in this process; then the bytes stored, what the model shows while sharded and
 * every refusal. Prints `ok <checks>` and a `stats` line, or throws naming the first mismatch.
 */
import * as ig from '../../../lib';
import { IgnisError, LlamaForCausalLM, Tensor, nn } from '../../../lib';
import { Rng } from '../../helpers';
import { randomizeParameters, TinyLlama } from '../../nn/models';

const { dist } = ig;
const STEPS = 3;
const ROWS_PER_RANK = 2;
const SEQ = 6;
const CONFIG = { vocabSize: 29, hiddenSize: 16, intermediateSize: 24, numHiddenLayers: 3, numAttentionHeads: 4, numKeyValueHeads: 2, rmsNormEps: 1e-5, ropeTheta: 500 };
const TARGETS = ['q_proj', 'v_proj', 'down_proj'];

let checks = 0;

function ensure(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
  checks++;
}

function expectCode(what: string, fn: () => unknown, code: string, message?: RegExp): void {
  try {
    fn();
  } catch (e) {
    ensure(e instanceof IgnisError && e.code === code && (!message || message.test(e.message)), `${what}: expected ${code}, got ${(e as Error).message}`);
    return;
  }
  throw new Error(`${what}: expected ${code}, nothing was thrown`);
}

function maxDiff(a: Tensor, b: Tensor): number {
  const x = a.data() as Float64Array;
  const y = b.data() as Float64Array;
  if (x.length !== y.length) return Infinity;
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i] - y[i]));
  return m;
}

/** The same LoRA model on every rank and in every run: a fixed seed and random values for every parameter (adapters too). */
function build(tied: boolean): LlamaForCausalLM {
  ig.manualSeed(1);
  const model = new LlamaForCausalLM({ ...CONFIG, tieWordEmbeddings: tied }, { dtype: 'float64' });
  ig.applyLora(model, { r: 2, alpha: 4, targetModules: TARGETS });
  randomizeParameters(model, new Rng(7), -0.4, 0.4);
  return model.train();
}

/** The whole batch (every rank's rows, the same everywhere) for each step. */
function batches(n: number): number[][][] {
  const rng = new Rng(11);
  return Array.from({ length: STEPS }, () =>
    Array.from({ length: n * ROWS_PER_RANK }, () => Array.from({ length: SEQ }, () => Math.floor(rng.next() * CONFIG.vocabSize))));
}

function trainable(model: LlamaForCausalLM): [string, Tensor][] {
  return model.namedParameters().filter(([, p]) => p.requiresGrad);
}

/** STEPS AdamW steps on `rows` of each batch; with `average`, the gradients are averaged over the ranks. Returns the losses. */
function train(model: LlamaForCausalLM, data: number[][][], rows: (batch: number[][]) => number[][], average: boolean): number[] {
  const params = trainable(model).map(([, p]) => p);
  const opt = new ig.AdamW(params, { lr: 1e-2, weightDecay: 0.01 });
  const losses = data.map((batch) => {
    const ids = ig.tensor(rows(batch), { dtype: 'int64' });
    const loss = ig.tidy(() => {
      const l = model.forward(ids, { labels: ids }).loss!;
      l.backward();
      return l;
    });
    if (average) {
      for (const p of params) dist.allReduce(p.grad!, { op: 'avg' }).wait();
      dist.allReduce(loss, { op: 'avg' }).wait();
    }
    opt.step();
    opt.zeroGrad();
    const value = loss.item();
    loss.dispose();
    ids.dispose();
    return value;
  });
  opt.dispose();
  return losses;
}

/** Sharded training against the unsharded reference: losses, adapters, and the weights given back by dispose(). */
function checkTraining(tied: boolean, prefetch: boolean): string {
  const n = dist.worldSize();
  const r = dist.rank();
  const data = batches(n);
  const reference = build(tied);
  const refLosses = train(reference, data, (b) => b, false);

  const model = build(tied);
  const namesBefore = model.namedParameters().map(([name]) => name);
  const before = ig.memory().bytes.cpu;
  const sharded = dist.shardFrozenWeights(model, { prefetch });
  const stats = sharded.stats();
  const after = ig.memory().bytes.cpu;
  const what = `${tied ? 'tied' : 'untied'}, prefetch ${prefetch}`;
  // what this rank stores: its shards instead of the full weights
  ensure(after - before === stats.shardBytes - stats.fullBytes, `${what}: memory changed by ${after - before}, expected ${stats.shardBytes - stats.fullBytes}`);
  const units = CONFIG.numHiddenLayers + 2;
  const weights = CONFIG.numHiddenLayers * 7 + (tied ? 1 : 2);
  ensure(stats.units.length === units && stats.units[1] === 'model.layers.0' && stats.tensors === weights, `${what}: ${JSON.stringify(stats)}`);
  const tiedBytes = tied ? CONFIG.vocabSize * CONFIG.hiddenSize * 8 : 0;
  const ideal = (stats.fullBytes + tiedBytes) / n;
  ensure(stats.shardBytes >= ideal && stats.shardBytes <= ideal + units * 8, `${what}: ${stats.shardBytes} bytes of shards for ${stats.fullBytes} in full on ${n} ranks`);
  // parameters() lists what is replicated: adapters and norms, in the model's order
  const listed = model.namedParameters().map(([name]) => name);
  const expected = namesBefore.filter((name) => /lora_|norm/.test(name));
  ensure(JSON.stringify(listed) === JSON.stringify(expected), `${what}: parameters() while sharded: ${listed.join(' ')}`);

  ig.resetPeakMemory();
  const losses = train(model, data, (b) => b.slice(r * ROWS_PER_RANK, (r + 1) * ROWS_PER_RANK), true);
  const peak = ig.peakMemory().cpu - ig.memory().bytes.cpu;
  const lossDiff = Math.max(...losses.map((l, i) => Math.abs(l - refLosses[i])));
  ensure(lossDiff < 1e-10, `${what}: losses ${losses} differ from the reference's ${refLosses} by ${lossDiff}`);
  const refParams = new Map(reference.namedParameters());
  for (const [name, p] of trainable(model)) {
    const d = maxDiff(p, refParams.get(name)!);
    ensure(d < 1e-10, `${what}: ${name} differs from the reference by ${d} after ${STEPS} steps`);
  }
  const after2 = sharded.stats();
  // every unit gathered for its forward and again for its backward, but the embedding needs no
  // backward, and the first block's weights gathered for its backward serve the next forward
  ensure(after2.gathers === STEPS * (2 * units - 1) - (STEPS - 1), `${what}: ${after2.gathers} gathers in ${STEPS} steps`);

  sharded.dispose();
  sharded.dispose();
  ensure(JSON.stringify(model.namedParameters().map(([name]) => name)) === JSON.stringify(namesBefore), `${what}: dispose() puts every parameter back in its place`);
  for (const [name, p] of model.namedParameters()) {
    ensure(!p.requiresGrad || /lora_/.test(name), `${what}: ${name} requires grad after dispose()`);
    ensure(maxDiff(p, refParams.get(name)!) === 0 || /lora_/.test(name), `${what}: ${name} given back differs`);
  }
  if (tied) ensure(model.lm_head.weight === model.model.embed_tokens.weight, `${what}: the tied weight is one tensor again`);
  reference.dispose();
  model.dispose();
  return `${what}: peak ${peak} bytes above the live ones, waited ${after2.waitMs.toFixed(1)} ms for ${after2.gathers} gathers`;
}

/**
 * A module other than LLaMA's classes (units: its children holding frozen weights) and a lone
 * Linear (itself the unit): the adapters' gradients of one backward on this rank's rows equal
 * the unsharded ones.
 */
function checkGeneric(): void {
  const r = dist.rank();
  const make = () => {
    ig.manualSeed(2);
    const m = new TinyLlama({ vocabSize: 11, numLayers: 2, hiddenSize: 8, intermediateSize: 12, numAttentionHeads: 2, dtype: 'float64' });
    ig.applyLora(m, { r: 2, targetModules: ['q_proj', 'up_proj'] });
    randomizeParameters(m, new Rng(5), -0.5, 0.5);
    return m;
  };
  const ids = ig.tensor([[1 + r, 2, 3, 4, 5]], { dtype: 'int64' });
  const grads = (m: TinyLlama) => {
    ig.tidy(() => {
      const y = m.call(ids);
      y.mul(y).sum().backward();
    });
    return m.namedParameters().filter(([, p]) => p.requiresGrad).map(([name, p]) => [name, p.grad!] as const);
  };
  const reference = make();
  const model = make();
  const sharded = dist.shardFrozenWeights(model);
  ensure(JSON.stringify(sharded.stats().units) === '["embed_tokens","layers.0","layers.1","lm_head"]', `units of a module: ${sharded.stats().units}`);
  const expected = new Map(grads(reference));
  for (const [name, g] of grads(model)) ensure(maxDiff(g, expected.get(name)!) < 1e-12, `${name}: the gradient with sharded weights differs`);
  sharded.dispose();
  reference.dispose();
  model.dispose();

  ig.manualSeed(4);
  const linear = new nn.Linear(6, 5, { dtype: 'float64' });
  linear.weight.requiresGrad_(false);
  const full = linear.weight.clone();
  const x = ig.randn([3, 6], { dtype: 'float64' }).requiresGrad_(true);
  const alone = dist.shardFrozenWeights(linear, { prefetch: false });
  ensure(JSON.stringify(alone.stats().units) === '["(model)"]' && linear.parameters().length === 1, 'a lone Linear is its own unit; its bias stays');
  linear.call(x).sum().backward();
  const dx = ig.ones([3, 5], { dtype: 'float64' }).matmul(full);
  ensure(maxDiff(x.grad!, dx) < 1e-12, 'a lone sharded Linear: dx = g W');
  alone.dispose();
  for (const t of [full, x, dx]) t.dispose();
  linear.dispose();
  ids.dispose();
}

/** Bytes a forward leaves allocated while its graph is alive. */
function forwardBytes(model: LlamaForCausalLM, ids: Tensor): number {
  const before = ig.memory().bytes.cpu;
  const loss = model.forward(ids, { labels: ids }).loss!;
  const bytes = ig.memory().bytes.cpu - before;
  loss.backward();
  loss.dispose();
  for (const p of model.parameters()) p.grad?.dispose();
  return bytes;
}

/**
 * The gathered weights are freed after each unit's forward: the graph of a sharded forward does
 * not keep them (small activations, so that full weights would stand out).
 */
function checkFreed(): void {
  const ids = ig.tensor([[1, 2, 3, 4]], { dtype: 'int64' });
  const model = build(false);
  const replicated = forwardBytes(model, ids);
  const sharded = dist.shardFrozenWeights(model);
  const full = sharded.stats().fullBytes;
  const extra = forwardBytes(model, ids) - replicated;
  ensure(full > replicated && extra < full / 8, `a sharded forward holds ${extra} bytes more than a replicated one (${replicated}); the weights are ${full}`);
  sharded.dispose();
  model.dispose();
  ids.dispose();
}

/** What is refused while sharded, and sharding twice. */
function checkRefusals(): void {
  const model = build(false);
  const sharded = dist.shardFrozenWeights(model);
  expectCode('reading a sharded weight', () => model.lm_head.weight, 'ERR_DIST', /lm_head\.weight .*sharded across \d ranks.*dispose\(\)/);
  expectCode('reading a LoRA base weight', () => model.model.layers[0].self_attn.k_proj.weight.shape, 'ERR_DIST', /model\.layers\.0\.self_attn\.k_proj\.weight/);
  expectCode('assigning a sharded weight', () => (model.lm_head.weight = ig.zeros([1])), 'ERR_DIST');
  expectCode('stateDict', () => model.stateDict(), 'ERR_DIST', /stateDict: .*sharded/);
  expectCode('stateDict of a block', () => model.model.layers[1].stateDict(), 'ERR_DIST');
  const head = ig.zeros([CONFIG.vocabSize, CONFIG.hiddenSize], { dtype: 'float64' });
  expectCode('loadStateDict naming a sharded weight', () => model.loadStateDict(new Map([['lm_head.weight', head]]), { strict: false }), 'ERR_DIST', /loadStateDict: lm_head\.weight is sharded/);
  expectCode('loadStateDict of a block naming one', () => model.model.layers[0].loadStateDict({ 'mlp.up_proj.weight': head }), 'ERR_DIST', /mlp\.up_proj\.weight/);
  head.dispose();
  // the adapters load as ever
  const { a } = (model.model.layers[0].self_attn.q_proj as unknown as ig.LoraLinear).adapterWeights();
  const newA = ig.full(a.shape.slice(), 0.25, { dtype: 'float64' });
  model.loadStateDict(new Map([['model.layers.0.self_attn.q_proj.lora_A.default.weight', newA]]), { strict: false });
  ensure(maxDiff(a, newA) === 0, 'loadStateDict of an adapter while sharded');
  newA.dispose();
  expectCode('createCache', () => model.createCache(1, 4), 'ERR_DIST', /model\.embed_tokens\.weight/);
  expectCode('savePretrained', () => model.savePretrained('/nonexistent/never-written'), 'ERR_DIST');
  expectCode('mergeLora', () => ig.lora.mergeAndUnload(model), 'ERR_DIST');
  expectCode('sharding twice', () => dist.shardFrozenWeights(model), 'ERR_ARG', /sharded already/);
  expectCode('sharding a part of a sharded model', () => dist.shardFrozenWeights(model.model.layers[0]), 'ERR_ARG', /sharded already/);
  // a graph recorded while sharded cannot be backpropagated once the weights are gathered back
  const ids = ig.tensor([[1, 2, 3]], { dtype: 'int64' });
  const loss = model.forward(ids, { labels: ids }).loss!;
  sharded.dispose();
  expectCode('backward after dispose()', () => loss.backward(), 'ERR_DIST', /disposed/);
  loss.dispose();
  // the unsharded model works again, and can be sharded anew
  const unsharded = ig.noGrad(() => model.forward(ids, { labels: ids }).loss!.item());
  const again = dist.shardFrozenWeights(model, { prefetch: false, minNumel: 400 });
  const stats = again.stats();
  ensure(stats.tensors === 2 && JSON.stringify(stats.units) === '["model.embed_tokens","lm_head"]', `minNumel keeps the blocks' weights replicated: ${JSON.stringify(stats)}`);
  ensure(model.model.layers[0].mlp.up_proj.weight.shape[0] === CONFIG.intermediateSize, 'a replicated weight stays readable');
  const loss2 = ig.noGrad(() => model.forward(ids, { labels: ids }).loss!.item());
  ensure(Math.abs(loss2 - unsharded) < 1e-12, `the loss with the embedding and head sharded: ${loss2}, unsharded ${unsharded}`);
  again.dispose();
  ids.dispose();
  // bad options and nothing to shard
  expectCode('prefetch not a boolean', () => dist.shardFrozenWeights(model, { prefetch: 1 as unknown as boolean }), 'ERR_ARG');
  expectCode('negative minNumel', () => dist.shardFrozenWeights(model, { minNumel: -1 }), 'ERR_ARG');
  expectCode('unknown option', () => dist.shardFrozenWeights(model, { prefech: true } as never), 'ERR_ARG', /unknown option prefech/);
  expectCode('not a module', () => dist.shardFrozenWeights({} as never), 'ERR_ARG');
  model.requiresGrad_(true);
  expectCode('nothing frozen', () => dist.shardFrozenWeights(model), 'ERR_ARG', /no frozen Linear or Embedding weight/);
  model.dispose();
}

async function main(): Promise<void> {
  await dist.init();
  const lines = [checkTraining(false, true), checkTraining(false, false), checkTraining(true, true)];
  checkGeneric();
  checkFreed();
  checkRefusals();
  dist.destroy();
  for (const line of lines) console.log(`stats ${line}`);
  console.log(`ok ${checks}`);
}

main().catch((e) => {
  console.error(`FAIL ${(e as { code?: string }).code ?? ''} ${(e as Error).stack}`);
  process.exit(1);
});
