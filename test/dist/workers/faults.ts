/**
 * A rank of the failure tests (test/dist/failures.test.ts). Prints `pid <n>` once joined and
 * `error <code> <message>` for a failed operation (then exits 1). Scenarios:
 * - `loop <steps>`: allReduce in a loop, printing `step <k>`. HANG_RANK stops issuing at step
 *   HANG_STEP (as a rank stuck elsewhere); EXIT_RANK exits with EXIT_CODE at step EXIT_STEP.
 *   After a failure the next operation's error is printed too (`next <code> <message>`).
 * - `mismatch op|shape`: rank 0 runs allReduce(float32 [4]); rank 1 allGather(float32 [4]) or
 *   allReduce(float32 [5]).
 * - `destroy`: rank 0 issues an allReduce rank 1 never joins, then destroys the group.
 * TIMEOUT_MS sets init's timeout; IGNORE_SIGTERM=1 makes the rank ignore SIGTERM;
 * IGNIS_DIST_DEVICE=cuda runs `loop` on the rank's CUDA device (backend 'nccl').
 */
import * as ig from '../../../lib';

const { dist } = ig;
const [scenario, arg] = process.argv.slice(2);
const env = (name: string) => (process.env[name] === undefined ? -1 : Number(process.env[name]));

function report(prefix: string, e: unknown): void {
  const err = e as { code?: string; message?: string };
  console.error(`${prefix} ${err.code} ${err.message}`);
}

if (process.env.IGNORE_SIGTERM === '1') process.on('SIGTERM', () => console.log('ignoring SIGTERM'));

async function main(): Promise<void> {
  const onCuda = process.env.IGNIS_DIST_DEVICE === 'cuda';
  await dist.init({ timeoutMs: Number(process.env.TIMEOUT_MS ?? 10000), backend: onCuda ? 'nccl' : 'auto' });
  const r = dist.rank();
  console.log(`pid ${process.pid}`);
  if (scenario === 'loop') {
    const t = ig.ones([1024], { device: onCuda ? `cuda:${dist.localRank()}` : 'cpu' });
    for (let step = 0; step < Number(arg); step++) {
      if (r === env('HANG_RANK') && step === env('HANG_STEP')) await new Promise(() => setInterval(() => {}, 1000));
      if (r === env('EXIT_RANK') && step === env('EXIT_STEP')) process.exit(env('EXIT_CODE'));
      try {
        await dist.allReduce(t);
      } catch (e) {
        report('error', e);
        try {
          await dist.allReduce(t);
        } catch (next) {
          report('next', next);
        }
        process.exit(1);
      }
      console.log(`step ${step}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  } else if (scenario === 'mismatch') {
    const t = ig.ones([r === 1 && arg === 'shape' ? 5 : 4]);
    const work = r === 1 && arg === 'op' ? dist.allGather(t) : dist.allReduce(t);
    await work;
  } else if (scenario === 'destroy') {
    if (r === 0) {
      const pending = dist.allReduce(ig.ones([4]));
      setTimeout(() => dist.destroy(), 300);
      await pending;
    } else {
      await new Promise((resolve) => setTimeout(resolve, 1500));
    }
  }
  dist.destroy();
}

main().catch((e) => {
  report('error', e);
  process.exit(1);
});
