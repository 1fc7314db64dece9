/**
 * A rank of the data-parallel training test (test/dist/trainer.test.ts), or the single process it
 * is compared with: trains the tiny float64 LLaMA with LoRA for a few steps with
 * `batch` sequences per rank and prints, on rank 0, `result <json>`: each step's loss and token
 * count, the held-out loss, and the trained adapter weights.
 */
import * as ig from '../../../lib';
import { Trainer } from '../../../lib/train/trainer';
import { examples, tinyModel } from '../../train/fixtures';

async function main(): Promise<void> {
  const [batch, gradAccum] = process.argv.slice(2).map(Number);
  const launched = process.env.WORLD_SIZE !== undefined;
  if (launched) await ig.dist.init({ timeoutMs: 20000 });
  const model = tinyModel('float64', true, 0);
  // 13 examples: the last batch of an epoch leaves some ranks short or empty
  const trainer = new Trainer({
    model, train: examples(13, 1), heldOut: examples(7, 2), padId: 0, batchSize: batch, gradAccum,
    totalSteps: 5, lr: 0.02, warmupSteps: 1, seed: 3,
  });
  const steps = Array.from({ length: trainer.totalSteps }, () => trainer.trainStep());
  const heldOut = trainer.evaluate();
  const weights = model.namedParameters().filter(([, p]) => p.requiresGrad).map(([n, p]) => [n, Array.from(p.data() as Float64Array)]);
  if (!launched || ig.dist.rank() === 0) {
    process.stdout.write(`result ${JSON.stringify({ steps: steps.map((s) => [s.loss, s.tokens, s.inputTokens]), heldOut: heldOut.loss, weights })}\n`);
  }
  trainer.dispose();
  model.dispose();
  if (launched) {
    await ig.dist.barrier();
    ig.dist.destroy();
  }
}

main().catch((e) => {
  process.stderr.write(`${e.stack ?? e}\n`);
  process.exit(1);
});
