/**
 * The `ignis` command: `finetune`, `generate`, `merge` and `run` (the distributed launcher).
 * Each subcommand parses its flags with node:util's parseArgs and calls the TypeScript API.
 */
import * as path from 'node:path';
import * as cliProgress from 'cli-progress';
import * as dist from '../dist';
import { IgnisError } from '../errors';
import { finetune } from '../train/finetune';
import type { FinetuneOptions, ProgressEvent } from '../train/finetune';
import { num, parse } from './args';
import { generateCommand, mergeCommand } from './model-commands';

const USAGE = `usage: ignis <command> [options]

commands:
  finetune   LoRA fine-tuning (no options: the built-in model on the built-in dataset)
  generate   generate text from a model, optionally with an adapter
  merge      fold an adapter into its base model and save the merged model
  run        launch a script on several processes (torchrun-style)

ignis <command> --help shows the command's options.`;

const FINETUNE_USAGE = `usage: ignis finetune [--model DIR] [--data FILE] [--out DIR] [options]

  --model DIR        base model folder (config.json, model.safetensors, tokenizer.json); default: built-in
  --data FILE        JSONL ({"text"} or {"prompt","completion"} per line) or plain text; default: built-in
  --out DIR          output folder for the adapter, loss.svg, metrics.json, checkpoint/ (default lora-out)
  --rank N           LoRA rank (8)            --alpha X      LoRA alpha (16)
  --dropout P        LoRA dropout (0.05)      --target LIST  modules, e.g. q_proj,v_proj or all-linear
  --lr X             peak learning rate (1e-3)
  --epochs N         passes over the data (1) --steps N      optimizer steps (overrides --epochs)
  --batch N          sequences per batch (8)  --seq-len N    tokens per sequence (128)
  --grad-accum N     batches per step (1)     --warmup N     warmup steps (5% of the steps)
  --seed N           seed (0)                 --device D     auto, cpu or cuda (auto)
  --eval-every N     held-out evaluation every N steps (4 times per run)
  --save-every N     checkpoint every N steps (at evaluations)
  --resume           continue from the checkpoint in --out (same settings)
  --nproc-per-node N data-parallel training on N processes of this machine (1); --batch is per
                     process. Under \`ignis run\`, the launched processes train together.
  --shard-weights    with several processes: each stores 1/N of the frozen base weights
  --cuda-graph       on a GPU, in one process: capture the training step into a CUDA graph and
                     replay it (batches padded to the longest training sequence)

Without --model and --data, the built-in model is fine-tuned on the built-in dataset with the
demo's settings unless given: --epochs 3 --lr 3e-3 --rank 16 --alpha 32 --target all-linear.
Ctrl-C stops after the current step and saves a checkpoint.`;

const str = (v: string | boolean | undefined) => (typeof v === 'string' ? v : undefined);

/** `ignis finetune`: a progress bar on stderr, a summary with samples on stdout. */
async function finetuneCommand(argv: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const a = parse(argv, {
    model: s, data: s, out: s, rank: s, alpha: s, dropout: s, target: s, lr: s, epochs: s, steps: s, batch: s,
    'seq-len': s, 'grad-accum': s, warmup: s, seed: s, device: s, 'eval-every': s, 'save-every': s, resume: { type: 'boolean' },
    'nproc-per-node': s, 'shard-weights': { type: 'boolean' }, 'cuda-graph': { type: 'boolean' },
  }, FINETUNE_USAGE);
  const nproc = num(a['nproc-per-node'], 'nproc-per-node') ?? 1;
  if (!Number.isInteger(nproc) || nproc < 1) throw new IgnisError(`--nproc-per-node must be a positive integer, got ${nproc}`, 'ERR_ARG');
  if (nproc > 1 && process.env.WORLD_SIZE === undefined) {
    // This process becomes the launcher of N copies of the command.
    const { launch } = await import('../dist/launch');
    const rest = argv.filter((arg, i) => arg !== '--nproc-per-node' && argv[i - 1] !== '--nproc-per-node' && !arg.startsWith('--nproc-per-node='));
    return launch(['--nproc-per-node', String(nproc), path.join(__dirname, '..', '..', '..', 'bin', 'ignis.js'), 'finetune', ...rest]);
  }
  const target = str(a.target);
  const options: FinetuneOptions = {
    model: str(a.model), data: str(a.data), out: str(a.out),
    rank: num(a.rank, 'rank'), alpha: num(a.alpha, 'alpha'), dropout: num(a.dropout, 'dropout'),
    target: target === undefined ? undefined : target === 'all-linear' ? 'all-linear' : target.split(',').map((t) => t.trim()).filter(Boolean),
    lr: num(a.lr, 'lr'), epochs: num(a.epochs, 'epochs'), steps: num(a.steps, 'steps'), batch: num(a.batch, 'batch'),
    seqLen: num(a['seq-len'], 'seq-len'), gradAccum: num(a['grad-accum'], 'grad-accum'), warmup: num(a.warmup, 'warmup'),
    seed: num(a.seed, 'seed'), device: str(a.device), evalEvery: num(a['eval-every'], 'eval-every'),
    saveEvery: num(a['save-every'], 'save-every'), resume: a.resume === true, shardWeights: a['shard-weights'] === true,
    cudaGraph: a['cuda-graph'] === true,
  };
  const launched = Number(process.env.WORLD_SIZE ?? 1) > 1;
  const stop = new AbortController();
  let firstSigint = 0;
  const onSigint = () => {
    // A launched worker gets a terminal's Ctrl-C twice: from the terminal and from the launcher.
    if (launched && stop.signal.aborted && performance.now() - firstSigint < 1000) return;
    if (stop.signal.aborted) process.exit(130);  // a second Ctrl-C: the checkpoint on disk is whole either way
    firstSigint = performance.now();
    process.stderr.write('\nstopping after this step (Ctrl-C again to quit now)...\n');
    stop.abort();
  };
  process.on('SIGINT', onSigint);
  const bar = new cliProgress.SingleBar({
    format: 'finetune |{bar}| {value}/{total} steps | loss {loss} | eval {eval} | {tps} tok/s | ETA {eta_formatted}',
    stream: process.stderr,
    noTTYOutput: true,
    notTTYSchedule: 10000,
    etaBuffer: 20,
    hideCursor: true,
  }, cliProgress.Presets.shades_classic);
  const payload = { loss: '-', eval: '-', tps: '-' };
  const onProgress = (e: ProgressEvent) => {
    if (e.kind === 'start') bar.start(e.totalSteps, e.step, payload);
    else if (e.kind === 'step') {
      payload.loss = e.loss.toFixed(3);
      payload.tps = e.tokensPerSecond.toFixed(0);
      bar.update(e.step, payload);
    } else {
      payload.eval = e.loss.toFixed(3);
      bar.update(e.step, payload);
    }
  };
  if (launched) await dist.init();
  try {
    const r = await finetune({ ...options, signal: stop.signal, onProgress, log: (line) => process.stdout.write(line + '\n') });
    bar.stop();
    if (r.stopped) return 130;
    if (launched && dist.rank() !== 0) return 0;  // rank 0 reports for all
    const show = (title: string, samples: { prompt: string; completion: string }[]) => {
      process.stdout.write(`\n${title}\n`);
      for (const x of samples) process.stdout.write(`  ${JSON.stringify(x.prompt)} -> ${JSON.stringify(x.completion)}\n`);
    };
    show('samples before fine-tuning (temperature 0.7, top-p 0.9):', r.samplesBefore);
    show('samples after fine-tuning (the same sampling and seed):', r.samplesAfter);
    const after = r.evalAfter as NonNullable<typeof r.evalAfter>;
    process.stdout.write(`\nheld-out perplexity ${r.evalBefore.perplexity.toFixed(2)} -> ${after.perplexity.toFixed(2)} ` +
      `(loss ${r.evalBefore.loss.toFixed(4)} -> ${after.loss.toFixed(4)}), ${r.steps} steps, ${r.tokensPerSecond.toFixed(0)} tokens/s\n` +
      `adapter saved in ${r.out} (adapter_config.json, adapter_model.safetensors; loss curve loss.svg)\n`);
    return 0;
  } finally {
    bar.stop();
    process.off('SIGINT', onSigint);
    if (launched) dist.destroy();
  }
}

/** Runs `ignis <argv>` and returns the exit code; errors are printed, never thrown. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'finetune':
        return await finetuneCommand(rest);
      case 'generate':
        return await generateCommand(rest);
      case 'merge':
        return await mergeCommand(rest);
      case 'run': {
        const { launch } = await import('../dist/launch');
        return await launch(rest);
      }
      case undefined:
      case '-h':
      case '--help':
        process.stdout.write(USAGE + '\n');
        return command === undefined ? 1 : 0;
      default:
        process.stderr.write(`ignis: unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
        return 1;
    }
  } catch (e) {
    if (e instanceof IgnisError) {
      process.stderr.write(`ignis ${command}: ${e.message} [${e.code}]\n`);
      return 2;
    }
    throw e;
  }
}
