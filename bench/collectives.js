'use strict';
// Collectives over Gloo on loopback, in the style of nccl-tests: for each op and size, the time
// per op (the slowest rank's mean over enough iterations), algbw = size / time and busbw = algbw
// times 2 (n - 1) / n for allreduce, (n - 1) / n for allgather and reducescatter, 1 for
// broadcast, and #wrong (elements that differ from the expected result after one more op).
// "size" is the op's whole float32 buffer: allgather's output, reducescatter's input. ignis runs
// through its launcher, PyTorch (torch.distributed, gloo backend) through bench/peers/collectives.py,
// in the same run, alternating, and the table keeps each side's best of the rounds.
// --nccl: CUDA tensors through NCCL (rank r on GPU r) against torch.distributed's nccl backend;
// the ops of the timed loop are queued back to back and the last one waited for (and the device
// synchronised), on both sides.
// Usage: node bench/collectives.js [--ranks 2,4] [--rounds 2] [--step 4] [--max-mb 64] [--nccl]
//   (build first: node-gyp build && tsc -p .; --nccl: with IGNIS_ADDON=build-cuda/Release/ignis.node)
const { parseArgs } = require('util');

const OPS = ['allreduce', 'allgather', 'reducescatter', 'broadcast'];

function busFactor(op, n) {
  if (op === 'allreduce') return (2 * (n - 1)) / n;
  if (op === 'broadcast') return 1;
  return (n - 1) / n;
}

// --- a rank (started by the launcher with --worker) ---

async function worker(a) {
  const ig = require('..');
  const { dist } = ig;
  await dist.init({ timeoutMs: 120000, backend: a.nccl ? 'nccl' : 'gloo' });
  const n = dist.worldSize();
  const r = dist.rank();
  const device = a.nccl ? `cuda:${dist.localRank()}` : 'cpu';
  const slowest = (seconds) => dist.allReduce(ig.tensor([seconds], { dtype: 'float64' }), { op: 'max' }).wait().item();
  const rows = [];
  for (const op of a.ops) {
    for (const size of a.sizes) {
      const count = size / 4;
      // x: the op's input (remade before the checked op, for the in-place ones).
      let x, out, run, wrong;
      const input = () => ig.full([op === 'allgather' ? count / n : count], op === 'allreduce' || op === 'reducescatter' ? r + 1 : r, { device });
      x = input();
      // issue() queues one op; run() waits for it (on NCCL, the last op waited implies the others;
      // there wait() only orders the device's stream, and the device is synchronised to time it).
      let issue;
      if (op === 'allreduce') {
        issue = () => dist.allReduce(x);
        wrong = () => x.ne((n * (n + 1)) / 2);
      } else if (op === 'allgather') {
        out = ig.empty([n, count / n], { device });
        issue = () => dist.allGather(x, { out });
        wrong = () => out.ne(ig.arange(0, n).to('float32').reshape([n, 1]).to(device));
      } else if (op === 'reducescatter') {
        out = ig.empty([count / n], { device });
        issue = () => dist.reduceScatter(x, { out });
        wrong = () => out.ne((n * (n + 1)) / 2);
      } else {
        issue = () => dist.broadcast(x, { src: 0 });
        wrong = () => x.ne(0);
      }
      run = () => {
        issue().wait();
        if (a.nccl) ig.cuda.synchronize(dist.localRank());
      };
      const loop = (iters) => {
        if (!a.nccl) for (let i = 0; i < iters; i++) run();
        else {
          for (let i = 1; i < iters; i++) issue();
          run();
        }
      };
      for (let i = 0; i < 2; i++) run();
      let t0 = process.hrtime.bigint();
      run();
      const once = slowest(Number(process.hrtime.bigint() - t0) / 1e9);
      const iters = Math.max(3, Math.min(1000, Math.floor(a.target_s / Math.max(once, 1e-6))));
      dist.barrier().wait();
      t0 = process.hrtime.bigint();
      loop(iters);
      const seconds = slowest(Number(process.hrtime.bigint() - t0) / 1e9 / iters);
      x.dispose();
      x = input();
      run();
      const bad = ig.tidy(() => dist.allReduce(wrong().cpu().to('int64').sum().reshape([1])).wait().item());
      rows.push({ op, size, seconds, wrong: bad, iters });
      x.dispose();
      out?.dispose();
    }
  }
  if (r === 0) console.log(`RESULT ${JSON.stringify(rows)}`);
  dist.destroy();
}

// --- the benchmark ---

function fmtSize(bytes) {
  return bytes >= 1 << 20 ? `${bytes / (1 << 20)} MB` : `${bytes / 1024} KB`;
}

function main() {
  const { values } = parseArgs({
    options: {
      worker: { type: 'string' },
      ranks: { type: 'string', default: '2' },
      rounds: { type: 'string', default: '2' },
      step: { type: 'string', default: '4' },
      'max-mb': { type: 'string', default: '64' },
      'target-ms': { type: 'string', default: '250' },
      nccl: { type: 'boolean', default: false },
    },
  });
  if (values.worker) return worker(JSON.parse(values.worker));
  const { runPeer, launchRanks, report } = require('./common');
  const sizes = [];
  for (let s = 4096; s <= Number(values['max-mb']) * (1 << 20); s *= Number(values.step)) sizes.push(s);
  const work = { ops: OPS, sizes, target_s: Number(values['target-ms']) / 1000, nccl: values.nccl };
  const rows = [];
  let torchVersion;
  for (const n of values.ranks.split(',').map(Number)) {
    const best = { ignis: new Map(), torch: new Map() };
    const keep = (side, list) => {
      for (const row of list) {
        const key = `${row.op} ${row.size}`;
        const prev = best[side].get(key);
        if (!prev || (row.seconds !== undefined && row.seconds < prev.seconds) || row.wrong > 0) best[side].set(key, row);
      }
    };
    for (let round = 0; round < Number(values.rounds); round++) {
      keep('ignis', launchRanks(__filename, n, work)[0]);
      const torch = runPeer('torch', 'collectives', { ...work, ranks: n });
      if (torch.skipped) {
        torchVersion = torch.skipped;
      } else {
        torchVersion = torch.torch;
        keep('torch', torch.rows);
      }
    }
    for (const op of OPS) {
      for (const size of sizes) {
        const mine = best.ignis.get(`${op} ${size}`);
        const theirs = best.torch.get(`${op} ${size}`);
        const algbw = size / mine.seconds / 1e9;
        const busbw = algbw * busFactor(op, n);
        const torchBus = theirs && theirs.seconds ? (size / theirs.seconds / 1e9) * busFactor(op, n) : undefined;
        rows.push({
          ranks: n,
          op,
          size: fmtSize(size),
          count: size / 4,
          'time us': mine.seconds * 1e6,
          'algbw GB/s': algbw,
          'busbw GB/s': busbw,
          '#wrong': mine.wrong,
          'torch us': theirs && theirs.seconds ? theirs.seconds * 1e6 : theirs?.skipped ? 'n/a' : '',
          'torch busbw': torchBus ?? '',
          'busbw vs torch': torchBus ? busbw / torchBus : '',
          'torch #wrong': theirs && theirs.wrong !== undefined ? theirs.wrong : '',
        });
      }
    }
  }
  report(values.nccl ? 'collectives-nccl' : 'collectives', rows, { torch: torchVersion, rounds: Number(values.rounds), backend: values.nccl ? 'nccl' : 'gloo' });
}

Promise.resolve(main()).catch((e) => {
  console.error(e.stack || e);
  process.exit(1);
});
