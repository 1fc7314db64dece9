/**
 * The `ignis` command, run as a child process: finetune on a tiny model, generate with the
 * adapter, merge; usage errors exit non-zero with a message and write nothing.
 */
import test from 'ava';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as ig from '../lib';
import { Tokenizer } from '../lib/data/tokenizer';
import { tempDir } from './helpers';

const BIN = path.join(__dirname, '..', '..', 'bin', 'ignis.js');

function ignis(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', env: { ...process.env, IGNIS_NUM_THREADS: '1' } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A tiny byte-level LLaMA folder and a small text dataset under `root`. */
function tinyModel(root: string): { model: string; data: string } {
  const model = path.join(root, 'model');
  ig.manualSeed(2);
  const tokenizer = Tokenizer.byteLevel();
  const m = new ig.LlamaForCausalLM({ vocabSize: tokenizer.vocabSize, hiddenSize: 32, intermediateSize: 48, numHiddenLayers: 2, numAttentionHeads: 2, maxPositionEmbeddings: 64 });
  m.savePretrained(model);
  m.dispose();
  tokenizer.save(model);
  const data = path.join(root, 'data.jsonl');
  fs.writeFileSync(data, Array.from({ length: 12 }, (_, i) => JSON.stringify({ text: `line ${i}: the quick brown fox` })).join('\n'));
  return { model, data };
}

test('finetune, generate and merge work from the command line', (t) => {
  const root = tempDir(t);
  const { model, data } = tinyModel(root);
  const out = path.join(root, 'out');

  const tune = ignis(['finetune', '--model', model, '--data', data, '--out', out, '--steps', '3', '--batch', '2', '--seq-len', '16', '--rank', '2', '--target', 'q_proj,v_proj']);
  t.is(tune.status, 0, tune.stderr);
  t.regex(tune.stdout, /held-out perplexity [\d.]+ -> [\d.]+/);
  t.regex(tune.stdout, /samples before fine-tuning/);
  t.true(fs.existsSync(path.join(out, 'adapter_model.safetensors')));

  const gen = ignis(['generate', '--model', model, '--adapter', out, '--prompt', 'line', '--max-tokens', '5', '--temperature', '0']);
  t.is(gen.status, 0, gen.stderr);
  t.true(gen.stdout.startsWith('line'));

  const merged = path.join(root, 'merged');
  const merge = ignis(['merge', '--model', model, '--adapter', out, '--out', merged]);
  t.is(merge.status, 0, merge.stderr);
  for (const f of ['config.json', 'model.safetensors', 'tokenizer.json']) t.true(fs.existsSync(path.join(merged, f)), f);
  // the merged model generates what the base model with the adapter generates
  const genMerged = ignis(['generate', '--model', merged, '--prompt', 'line', '--max-tokens', '5', '--temperature', '0']);
  t.is(genMerged.stdout, gen.stdout);
});

test('finetune --nproc-per-node 2 trains data-parallel, with or without sharded weights: the same losses as one process with the whole batch', (t) => {
  const root = tempDir(t);
  const { model, data } = tinyModel(root);
  // 19 training sequences: the fifth step's batch leaves rank 1 one sequence short
  const common = ['finetune', '--model', model, '--data', data, '--steps', '6', '--seq-len', '16', '--rank', '2', '--dropout', '0', '--eval-every', '3'];
  const single = ignis([...common, '--batch', '4', '--out', path.join(root, 'single')]);
  t.is(single.status, 0, single.stderr);
  const parallel = ignis([...common, '--batch', '2', '--nproc-per-node', '2', '--out', path.join(root, 'parallel')]);
  t.is(parallel.status, 0, parallel.stderr);
  t.regex(parallel.stdout, /\[rank 0\] data-parallel on 2 ranks/);
  t.notRegex(parallel.stdout, /\[rank 1\] held-out/);  // rank 1 reports nothing
  const sharded = ignis([...common, '--batch', '2', '--nproc-per-node', '2', '--shard-weights', '--out', path.join(root, 'sharded')]);
  t.is(sharded.status, 0, sharded.stderr);
  t.regex(sharded.stdout, /\[rank 0\] frozen weights sharded/);
  t.regex(sharded.stdout, /samples after fine-tuning/);
  const metrics = (dir: string) => JSON.parse(fs.readFileSync(path.join(root, dir, 'metrics.json'), 'utf8'));
  const adapter = (dir: string) => ig.tidy(() => {
    const w = ig.io.readSafetensors(path.join(root, dir, 'adapter_model.safetensors'));
    return [...w.tensors.entries()].map(([name, x]) => [name, Array.from(x.data() as Float32Array)] as const);
  });
  const a = metrics('single');
  const wa = adapter('single');
  t.is(a.trainLoss.length, 6);
  for (const dir of ['parallel', 'sharded']) {
    const b = metrics(dir);
    t.is(b.settings.worldSize, 2);
    t.true(b.peakBytes > 0 && a.peakBytes > 0);
    for (const key of ['trainLoss', 'evalLoss']) {
      a[key].forEach(([step, loss]: [number, number], i: number) => {
        t.is(b[key][i][0], step);
        t.true(Math.abs(b[key][i][1] - loss) <= 1e-5 * Math.abs(loss), `${dir} ${key} at step ${step}: ${b[key][i][1]} vs ${loss}`);
      });
    }
    const wb = adapter(dir);
    t.deepEqual(wa.map(([n]) => n), wb.map(([n]) => n));
    wa.forEach(([name, xs], i) => xs.forEach((x, j) => t.true(Math.abs(x - wb[i][1][j]) <= 1e-4 + 1e-4 * Math.abs(x), `${dir} ${name}[${j}]`)));
  }
});

// Serial: the other tests' spawnSync calls block this process's timers, the Ctrl-C's among them.
for (const nproc of [1, 2]) {
  test.serial(`Ctrl-C stops finetune on ${nproc} process(es) after a step with a checkpoint, and --resume finishes the run`, async (t) => {
    const root = tempDir(t);
    const { model, data } = tinyModel(root);
    const out = path.join(root, 'out');
    const args = ['finetune', '--model', model, '--data', data, '--out', out, '--steps', '2000', '--batch', '2', '--seq-len', '16', '--eval-every', '1000', '--nproc-per-node', String(nproc)];
    const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, IGNIS_NUM_THREADS: '1' } });
    let stdout = '';
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      // the run has started once the held-out loss before training is printed
      if (/loss before/.test(stdout)) setTimeout(() => child.kill('SIGINT'), 300);
    });
    const code = await new Promise((resolve) => child.on('exit', resolve));
    t.is(code, 130, stdout);
    t.regex(stdout, /stopped at step \d+ of 2000; checkpoint saved/);
    t.true(fs.existsSync(path.join(out, 'checkpoint', 'trainer_state.json')));
    t.false(fs.existsSync(path.join(out, 'adapter_model.safetensors')));
    const state = JSON.parse(fs.readFileSync(path.join(out, 'checkpoint', 'trainer_state.json'), 'utf8'));
    t.true(state.step > 0 && state.step < 2000);
    const changed = ignis([...args.map((a) => (a === '2000' ? '3000' : a)), '--resume']);
    t.is(changed.status, 2, 'the step count is a setting the checkpoint must share');
    t.regex(changed.stderr, /other settings/);
    const resumed = ignis([...args, '--resume']);
    t.is(resumed.status, 0, resumed.stderr);
    t.regex(resumed.stdout, new RegExp(`resumed from .* at step ${state.step} of 2000`));
    t.true(fs.existsSync(path.join(out, 'adapter_model.safetensors')));
  });
}

test('ignis run launches the workers with the rank environment and a share of the cores each', (t) => {
  const script = path.join(tempDir(t), 'worker.js');
  fs.writeFileSync(script, "console.log(`rank ${process.env.RANK} of ${process.env.WORLD_SIZE}, ${process.env.IGNIS_NUM_THREADS} threads`);\n");
  const r = ignis(['run', '--nproc-per-node', '2', script]);
  t.is(r.status, 0, r.stderr);
  t.regex(r.stdout, /\[rank 0\] rank 0 of 2, 1 threads/);  // IGNIS_NUM_THREADS given: kept
  t.regex(r.stdout, /\[rank 1\] rank 1 of 2, 1 threads/);
  const env = { ...process.env };
  delete env.IGNIS_NUM_THREADS;
  const shared = spawnSync(process.execPath, [BIN, 'run', '--nproc-per-node', '2', script], { encoding: 'utf8', env });
  t.is(shared.status, 0, shared.stderr);
  const share = Math.max(1, Math.floor(os.availableParallelism() / 2));
  t.regex(shared.stdout, new RegExp(`\\[rank 1\\] rank 1 of 2, ${share} threads`));
});

test('usage errors exit non-zero with a message', (t) => {
  const root = tempDir(t);
  const cases: [string[], RegExp][] = [
    [['nope'], /unknown command "nope"/],
    [['finetune', '--rank'], /--rank/],
    [['finetune', '--bogus', '1'], /bogus/],
    [['finetune', '--rank', 'x', '--out', path.join(root, 'o')], /--rank must be a number/],
    [['finetune', '--nproc-per-node', '0', '--out', path.join(root, 'o')], /--nproc-per-node must be a positive integer.*\[ERR_ARG\]/],
    [['finetune', '--shard-weights', '--out', path.join(root, 'o')], /shardWeights needs a process group.*\[ERR_ARG\]/],
    [['finetune', '--cuda-graph', '--device', 'cpu', '--out', path.join(root, 'o')], /cudaGraph needs a CUDA device.*\[ERR_ARG\]/],
    [['finetune', '--model', path.join(root, 'missing'), '--out', path.join(root, 'o')], /missing.*\[ERR_IO\]/],
    [['generate', '--model', path.join(root, 'missing'), '--prompt', 'x'], /\[ERR_IO\]/],
    [['generate'], /--prompt is required/],
    [['merge', '--model', 'a'], /--adapter is required/],
  ];
  for (const [args, message] of cases) {
    const r = ignis(args);
    t.not(r.status, 0, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
  t.false(fs.existsSync(path.join(root, 'o')));
  const help = ignis(['finetune', '--help']);
  t.is(help.status, 0);
  t.regex(help.stdout, /usage: ignis finetune/);
});
