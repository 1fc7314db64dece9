/**
 * A rank of the data-parallel tests (test/dist/ddp.test.ts). Scenarios:
 * - `check`: three phases, each training a tiny float64 LLaMA with LoRA on every rank with
 *   DistributedDataParallel (small buckets: several per backward), each rank on its part of the
 *   batch, next to a model trained without DDP on the whole batch in the same process; prints
 *   `check <phase> <largest parameter difference> ...`. Phases: `adamw` (one backward per step),
 *   `nosync` (two micro-batches, the first under noSync), `zero` (ZeroRedundancyOptimizer over
 *   AdamW, with a learning-rate schedule; also prints the optimizer state bytes of both).
 * - `loop <steps>`: DDP steps printing `step <k>`; a failed step prints `error <code> <message>`
 *   and exits 1. TIMEOUT_MS bounds init and every collective.
 */
import * as ig from '../../../lib';
import { Tensor } from '../../../lib';

const { dist } = ig;
const [scenario, arg] = process.argv.slice(2);
const CONFIG = { vocabSize: 13, hiddenSize: 8, intermediateSize: 12, numHiddenLayers: 2, numAttentionHeads: 2, numKeyValueHeads: 1 };
const PER_RANK = 2;
const SEQ = 5;
const STEPS = 3;
const ADAMW = { lr: 0.05, weightDecay: 0.01 };

/** The model every phase trains: LoRA on three projections, and the final norm's weight. */
function build(seed: number): ig.LlamaForCausalLM {
  ig.manualSeed(seed);
  const model = new ig.LlamaForCausalLM(CONFIG, { dtype: 'float64' });
  ig.applyLora(model, { r: 2, alpha: 4, dropout: 0, targetModules: ['q_proj', 'v_proj', 'down_proj'] });
  model.model.norm.weight!.requiresGrad_();
  return model;
}

function trainable(model: ig.nn.Module): Tensor[] {
  return model.parameters().filter((p) => p.requiresGrad);
}

/** The batch of a step: the same on every rank; a rank takes rows [rank * rows, (rank + 1) * rows) of each micro-batch. */
function batch(step: number, rows: number): Tensor {
  ig.manualSeed(1000 + step);
  return ig.randint(0, CONFIG.vocabSize, [rows, SEQ], { dtype: 'int64' });
}

function lossOf(model: { call: ig.LlamaForCausalLM['call'] }, ids: Tensor): Tensor {
  return model.call(ids, { labels: ids }).loss as Tensor;
}

function maxDiff(a: ig.nn.Module, b: ig.nn.Module): number {
  const pb = b.parameters();
  let worst = 0;
  a.parameters().forEach((p, i) => {
    const x = p.data() as Float64Array;
    const y = pb[i].data() as Float64Array;
    for (let k = 0; k < x.length; k++) worst = Math.max(worst, Math.abs(x[k] - y[k]));
  });
  return worst;
}

function phase(name: 'adamw' | 'nosync' | 'zero'): void {
  const n = dist.worldSize();
  const r = dist.rank();
  const micro = name === 'nosync' ? 2 : 1;
  const reference = build(7);
  // a different initialisation on every rank: DDP copies rank 0's, which is the reference's
  const model = build(7 + r);
  const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: 300 / (1024 * 1024) });
  const refOpt = new ig.AdamW(trainable(reference), ADAMW);
  const opt = name === 'zero' ? new dist.ZeroRedundancyOptimizer(trainable(model), ig.AdamW, ADAMW) : new ig.AdamW(trainable(model), ADAMW);
  const schedules = name === 'zero' ? [refOpt, opt].map((o) => new ig.optim.LRScheduler(o, (s) => 1 / (1 + s))) : [];
  const early: number[] = [];
  for (let step = 0; step < STEPS; step++) {
    ig.tidy(() => {
      const whole = batch(step, n * PER_RANK * micro);
      lossOf(reference, whole).backward();
      for (let m = 0; m < micro; m++) {
        const mine = whole.narrow(0, (m * n + r) * PER_RANK, PER_RANK).contiguous();
        const backward = () => lossOf(ddp, mine).div(micro).backward();
        if (m < micro - 1) ddp.noSync(backward);
        else backward();
      }
    });
    early.push(ddp.lastSyncStats!.launchedEarly);
    for (const o of [refOpt, opt]) {
      o.step();
      o.zeroGrad();
    }
    for (const s of schedules) s.step();
  }
  const state = opt instanceof dist.ZeroRedundancyOptimizer ? ` state ${opt.stateBytes()} of ${refOpt.stateBytes()}` : '';
  console.log(`check ${name} ${maxDiff(model, reference)} buckets ${ddp.numBuckets} early ${early.join(',')}${state}`);
  ddp.dispose();
  for (const o of [refOpt, opt]) o.dispose();
  model.dispose();
  reference.dispose();
}

async function main(): Promise<void> {
  await dist.init({ timeoutMs: Number(process.env.TIMEOUT_MS ?? 20000) });
  if (scenario === 'check') {
    for (const name of ['adamw', 'nosync', 'zero'] as const) phase(name);
  } else if (scenario === 'loop') {
    console.log(`pid ${process.pid}`);
    const model = build(dist.rank());
    const ddp = new dist.DistributedDataParallel(model, { bucketCapMB: 300 / (1024 * 1024) });
    const opt = new ig.AdamW(trainable(model), ADAMW);
    for (let step = 0; step < Number(arg); step++) {
      try {
        ig.tidy(() => lossOf(ddp, batch(step * dist.worldSize() + dist.rank(), PER_RANK)).backward());
      } catch (e) {
        const err = e as { code?: string; message?: string };
        console.error(`error ${err.code} ${err.message}`);
        process.exit(1);
      }
      opt.step();
      opt.zeroGrad();
      console.log(`step ${step}`);
    }
  }
  dist.destroy();
}

main().catch((e) => {
  console.error(`error ${e.code} ${e.stack}`);
  process.exit(1);
});
