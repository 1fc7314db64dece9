/**
 * LoRA fine-tuning of a causal language model, end to end: load the base model and tokenizer,
 * read and split the data, add adapters, train with checkpoints, evaluate, and save a PEFT
 * adapter with its loss curve. The `ignis finetune` command is a thin layer over {@link finetune}.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { fail } from '../errors';
import { manualSeed } from '../ops/creation';
import { peakMemory, resetPeakMemory } from '../memory';
import { applyLora } from '../lora/apply';
import { saveAdapter } from '../lora/peft';
import { LlamaForCausalLM } from '../nn/models/llama';
import { IGNORE_INDEX, readRecords, splitExamples, tokenizeRecords } from '../data/dataset';
import type { Example } from '../data/dataset';
import { Tokenizer } from '../data/tokenizer';
import { writeJsonAtomic, writeTextAtomic } from '../io/files';
import { generate } from '../generate';
import { findTrainingState, loadTrainingState, saveTrainingState } from './state';
import { lossCurveSvg } from './plot';
import { checkPositive, Trainer } from './trainer';
import type { EvalResult, StepResult } from './trainer';
import { resolveDevice } from './device';
import * as dist from '../dist';

/** The package's own folder (models/ and data/ ship in it). */
const PACKAGE_DIR = path.join(__dirname, '..', '..', '..');

/** The built-in base model: a small LLaMA pretrained by `scripts/pretrain-base.js`. */
export const BUILTIN_MODEL = path.join(PACKAGE_DIR, 'models', 'ignis-tiny');
/** The built-in fine-tuning dataset: The Devil's Dictionary as prompt/completion records. */
export const BUILTIN_DATA = path.join(PACKAGE_DIR, 'data', 'devils-dictionary.jsonl');

/**
 * The settings of the built-in demo (the built-in model on the built-in dataset, in a few
 * minutes on 2 cores): used for the options not given when neither `model` nor `data` is.
 */
export const BUILTIN_DEMO = { epochs: 3, lr: 3e-3, rank: 16, alpha: 32, target: 'all-linear' } as const;

/**
 * Options of {@link finetune}; every one has a default. Without `model` and `data`, the built-in
 * demo's settings ({@link BUILTIN_DEMO}) replace the defaults of the options not given.
 */
export interface FinetuneOptions {
  /** The base model's folder (HF layout: config.json, model.safetensors, tokenizer.json). Default: the built-in model. */
  model?: string;
  /** The data file: JSONL of {"text"} or {"prompt","completion"} records, or plain text. Default: the built-in dataset. */
  data?: string;
  /** Where the adapter, the loss curve and checkpoints go (default `lora-out`). */
  out?: string;
  /** LoRA rank (default 8). */
  rank?: number;
  /** LoRA alpha (default 16). */
  alpha?: number;
  /** Dropout on the LoRA path (default 0.05). */
  dropout?: number;
  /** Module names to adapt (default ['q_proj', 'v_proj']), or 'all-linear'. */
  target?: string[] | 'all-linear';
  /** Peak learning rate (default 1e-3). */
  lr?: number;
  /** Passes over the training data (default 1; ignored when `steps` is given). */
  epochs?: number;
  /** Optimizer steps in all (default: from epochs). */
  steps?: number;
  /** Examples per micro-batch (default 8). */
  batch?: number;
  /** Tokens per training sequence (default 128). */
  seqLen?: number;
  /** Micro-batches per optimizer step (default 1). */
  gradAccum?: number;
  /** Warmup steps (default: 5% of the steps). */
  warmup?: number;
  /** Seeds the adapters' initialisation, the data order and dropout (default 0). */
  seed?: number;
  /** 'auto' (CUDA when available, else CPU), 'cpu' or 'cuda' (default 'auto'). */
  device?: string;
  /** Evaluate on the held-out split every this many steps (default: 4 times in the run; 0 = only at the start and end). */
  evalEvery?: number;
  /** Share of the examples held out for evaluation (default 0.1). */
  evalFraction?: number;
  /** Write a checkpoint every this many steps (default: at evaluations); one is also written when stopped. */
  saveEvery?: number;
  /** Continue from the checkpoint in `out` (same settings required). */
  resume?: boolean;
  /**
   * In a process group of several ranks: each rank stores 1/N of the frozen base weights
   * ({@link dist.shardFrozenWeights}), gathered layer by layer during forward and backward
   * (default false). The samples after training are drawn once the weights are gathered back.
   */
  shardWeights?: boolean;
  /**
   * On a CUDA device in one process: capture the training step into a CUDA graph and replay it
   * (the Trainer's `cudaGraph`; batches padded to the longest training sequence). Default false.
   */
  cudaGraph?: boolean;
  /** Prompts to sample before and after training, with temperature 0.7, top-p 0.9 and `seed` (default: three held-out prompts). */
  samplePrompts?: string[];
  /** Tokens generated per sample (default 60). */
  sampleTokens?: number;
  /** Stops training after the current step, with a checkpoint (Ctrl-C in the command). */
  signal?: AbortSignal;
  /** Called after each step and evaluation (the command draws its progress bar with it). */
  onProgress?: (event: ProgressEvent) => void;
  /** Called with lines worth showing (summary, samples, evaluations). */
  log?: (line: string) => void;
}

/** What {@link FinetuneOptions.onProgress} receives. */
export type ProgressEvent =
  | { kind: 'start'; step: number; totalSteps: number }
  | ({ kind: 'step'; totalSteps: number; tokensPerSecond: number } & StepResult)
  | ({ kind: 'eval'; step: number } & EvalResult);

/** One sample: the prompt and the text the model added. */
export interface Sample {
  prompt: string;
  completion: string;
}

/** What {@link finetune} returns. */
export interface FinetuneResult {
  /** The folder holding adapter_config.json, adapter_model.safetensors, loss.svg and metrics.json. */
  out: string;
  /** Steps done (all of them unless stopped). */
  steps: number;
  totalSteps: number;
  /** True when stopped by the signal before the end (a checkpoint was written; the adapter was not). */
  stopped: boolean;
  /** Held-out loss and perplexity before and after training. */
  evalBefore: EvalResult;
  evalAfter: EvalResult | null;
  samplesBefore: Sample[];
  samplesAfter: Sample[];
  /** Tokens fed through the model per second (padding included), median over the steps. */
  tokensPerSecond: number;
  /** Trainable and total parameter counts. */
  trainableParameters: number;
  totalParameters: number;
  /**
   * The most tensor bytes held at once on the training device during the training steps (the
   * largest over the ranks when data-parallel): weights, optimizer state, activations.
   */
  peakBytes: number;
}

interface History {
  train: [number, number][];
  eval: [number, number][];
  evalBefore: EvalResult;
  samplesBefore: Sample[];
  /** Each step's tokens per second, as the progress events give them. */
  stepRates: number[];
}

function median(values: number[]): number {
  const s = values.slice().sort((a, b) => a - b);
  return s.length ? s[s.length >> 1] : NaN;
}

/**
 * Fine-tunes a LoRA adapter on a causal LM and saves it as PEFT does (adapter_config.json and
 * adapter_model.safetensors, loadable by PEFT on the same base model), with loss.svg (training
 * and held-out loss) and metrics.json. Bad options, an unreadable model folder or data file,
 * a sequence length above the model's maximum, and malformed data lines are clear errors raised
 * before any file is written. Dropout draws from the global generator (seeded from `seed`): two
 * runs interleaved in one process would share it, so run them one after the other.
 *
 * In a process group of several ranks (`dist.init()` first, e.g. under `ignis run` or
 * `ignis finetune --nproc-per-node N`), every rank calls it with the same options: `batch` is
 * per rank, the ranks train data-parallel, rank 0 alone reports progress, samples and writes
 * files, a stop asked for on any rank stops all of them after the same step, and every rank
 * returns the same figures (the samples are drawn on rank 0 alone).
 */
export async function finetune(given: FinetuneOptions = {}): Promise<FinetuneResult> {
  const demo = given.model === undefined && given.data === undefined;
  const options: FinetuneOptions = demo ? { ...BUILTIN_DEMO, ...definedOnly(given) } : given;
  const o = {
    model: options.model ?? BUILTIN_MODEL,
    data: options.data ?? BUILTIN_DATA,
    out: options.out ?? 'lora-out',
    rank: checkPositive(options.rank ?? 8, 'finetune', 'rank'),
    alpha: checkPositive(options.alpha ?? 16, 'finetune', 'alpha', false),
    dropout: options.dropout ?? 0.05,
    target: options.target ?? ['q_proj', 'v_proj'],
    lr: checkPositive(options.lr ?? 1e-3, 'finetune', 'lr', false),
    epochs: checkPositive(options.epochs ?? 1, 'finetune', 'epochs'),
    batch: checkPositive(options.batch ?? 8, 'finetune', 'batch'),
    seqLen: checkPositive(options.seqLen ?? 128, 'finetune', 'seqLen'),
    gradAccum: checkPositive(options.gradAccum ?? 1, 'finetune', 'gradAccum'),
    seed: options.seed ?? 0,
    evalFraction: options.evalFraction ?? 0.1,
  };
  if (!(o.dropout >= 0 && o.dropout < 1)) fail('ERR_ARG', `finetune: dropout must be in [0, 1), got ${o.dropout}`);
  if (!Number.isSafeInteger(o.seed)) fail('ERR_ARG', `finetune: seed must be an integer, got ${o.seed}`);
  const lead = !dist.isInitialized() || dist.rank() === 0;
  const log = (lead && options.log) || (() => {});
  const onProgress = (lead && options.onProgress) || (() => {});
  const device = resolveDevice(options.device ?? 'auto', 'finetune');
  if (options.cudaGraph && device === 'cpu') fail('ERR_ARG', 'finetune: cudaGraph needs a CUDA device, training would run on cpu');
  if (options.cudaGraph && dist.isInitialized() && dist.worldSize() > 1) fail('ERR_ARG', 'finetune: cudaGraph trains in one process, not distributed');

  const tokenizer = Tokenizer.fromDir(o.model);
  const records = readRecords(o.data);
  const model = LlamaForCausalLM.fromPretrained(o.model, { dtype: 'float32' });
  try {
    const maxLen = model.config.maxPositionEmbeddings;
    if (o.seqLen > maxLen) fail('ERR_ARG', `finetune: seqLen ${o.seqLen} is above the model's maximum of ${maxLen} positions`);
    const examples = tokenizeRecords(records, tokenizer, { seqLen: o.seqLen });
    const { train, heldOut } = splitExamples(examples, o.evalFraction, o.seed);
    if (heldOut.length === 0) fail('ERR_ARG', `finetune: the data gives ${examples.length} example(s); at least 2 are needed to hold one out`);

    manualSeed(o.seed);
    const summary = applyLora(model, { r: o.rank, alpha: o.alpha, dropout: o.dropout, targetModules: o.target });
    model.to(device);
    const worldSize = dist.isInitialized() ? dist.worldSize() : 1;
    if (options.shardWeights && worldSize === 1) fail('ERR_ARG', 'finetune: shardWeights needs a process group of more than one rank');
    const checkpointDir = path.join(o.out, 'checkpoint');
    const resumeFrom = options.resume ? findTrainingState(checkpointDir) : null;
    if (options.resume && resumeFrom === null) fail('ERR_IO', `finetune: resume asked for, but ${checkpointDir} holds no checkpoint`);
    const samplePrompts = options.samplePrompts ?? heldOutPrompts(heldOut, tokenizer);
    const sample = (): Sample[] => !lead ? [] : samplePrompts.map((prompt) => ({
      prompt,
      completion: generate(model, tokenizer, prompt, { maxNewTokens: options.sampleTokens ?? 60, temperature: 0.7, topP: 0.9, seed: o.seed }).text,
    }));
    // Sampling needs the whole weights: it comes before they are sharded.
    const samplesBefore = resumeFrom === null ? sample() : [];
    manualSeed(o.seed);  // sampling must not move the training's random stream
    // After a failure the shards are not gathered back (that needs every rank): the finalizer frees them.
    let sharded = options.shardWeights ? dist.shardFrozenWeights(model) : null;
    const perEpoch = Math.ceil(Math.ceil(train.length / (o.batch * worldSize)) / o.gradAccum);
    const totalSteps = options.steps === undefined ? perEpoch * o.epochs : checkPositive(options.steps, 'finetune', 'steps');
    const warmup = options.warmup ?? Math.floor(totalSteps * 0.05);
    const evalEvery = options.evalEvery ?? Math.max(1, Math.ceil(totalSteps / 4));
    const saveEvery = options.saveEvery ?? evalEvery;
    const trainer = new Trainer({
      model, train, heldOut, padId: tokenizer.padId, batchSize: o.batch, gradAccum: o.gradAccum,
      totalSteps, lr: o.lr, warmupSteps: warmup, seed: o.seed, cudaGraph: options.cudaGraph,
    });
    try {
      log(`base model ${o.model}: ${summary.total - summary.trainable} parameters; LoRA r=${o.rank} alpha=${o.alpha} on ${summary.targeted.length} modules: ${summary.trainable} trainable (${((100 * summary.trainable) / summary.total).toFixed(2)}%)`);
      log(`data ${o.data}: ${records.length} records -> ${train.length} training and ${heldOut.length} held-out sequences of up to ${o.seqLen} tokens; ${totalSteps} steps on ${device}`);
      const world = trainer.world;
      const settings = { ...o, out: undefined, totalSteps, warmup, ...(world.size > 1 ? { worldSize: world.size } : {}) };
      if (world.size > 1) log(`data-parallel on ${world.size} ranks: ${o.batch} sequences per rank per batch`);
      if (sharded !== null) {
        const { shardBytes, fullBytes } = sharded.stats();
        log(`frozen weights sharded: ${(shardBytes / 2 ** 20).toFixed(1)} of ${(fullBytes / 2 ** 20).toFixed(1)} MiB on each rank`);
      }

      let history: History;
      if (resumeFrom !== null) {
        history = loadTrainingState(resumeFrom, trainer, settings) as History;
        log(`resumed from ${resumeFrom} at step ${trainer.step} of ${totalSteps}`);
      } else {
        const evalBefore = trainer.evaluate();
        history = { train: [], eval: [[0, evalBefore.loss]], evalBefore, samplesBefore, stepRates: [] };
        log(`held-out loss before: ${evalBefore.loss.toFixed(4)} (perplexity ${evalBefore.perplexity.toFixed(2)})`);
      }
      if (lead) fs.mkdirSync(o.out, { recursive: true });
      const save = () => {
        if (lead) saveTrainingState(checkpointDir, trainer, { settings, history });
      };
      // A stop asked for on any rank stops every rank after the same step.
      const stopAsked = () => trainer.reduceOverRanks([options.signal?.aborted ? 1 : 0], 'max')[0] === 1;

      resetPeakMemory();
      onProgress({ kind: 'start', step: trainer.step, totalSteps });
      let stopped = false;
      while (trainer.step < totalSteps) {
        if (stopAsked()) {
          stopped = true;
          break;
        }
        const started = performance.now();
        const result = trainer.trainStep();
        const tokensPerSecond = result.inputTokens / ((performance.now() - started) / 1000);
        history.stepRates.push(tokensPerSecond);
        history.train.push([result.step, result.loss]);
        onProgress({ kind: 'step', totalSteps, tokensPerSecond, ...result });
        if (result.step % evalEvery === 0 || result.step === totalSteps) {
          const e = trainer.evaluate();
          history.eval.push([result.step, e.loss]);
          onProgress({ kind: 'eval', step: result.step, ...e });
        }
        if (result.step % saveEvery === 0 && result.step < totalSteps) save();
        await nextTurn();  // lets a signal (Ctrl-C) arrive between steps
      }
      const [peakBytes] = trainer.reduceOverRanks([peakMemory()[device === 'cpu' ? 'cpu' : 'cuda']], 'max');
      log(`peak memory during training: ${(peakBytes / 2 ** 20).toFixed(1)} MiB${world.size > 1 ? ' on the busiest rank' : ''}`);
      const evalAfter = stopped ? null : trainer.evaluate();
      // Every rank gets here after the same step: gather the weights back (sampling needs them).
      sharded?.dispose();
      sharded = null;
      const samplesAfter = stopped ? [] : sample();
      if (stopped) {
        save();
        log(`stopped at step ${trainer.step} of ${totalSteps}; checkpoint saved in ${checkpointDir} (resume with the same settings and resume)`);
      } else if (lead) {
        saveAdapter(model, o.out, { baseModelNameOrPath: o.model });
      }
      if (lead) writeTextAtomic('finetune', path.join(o.out, 'loss.svg'), lossCurveSvg(`LoRA fine-tuning of ${path.basename(o.model)}`, [
        { name: 'training loss', points: history.train, color: '#1f77b4' },
        { name: 'held-out loss', points: history.eval, color: '#d62728' },
      ]));
      const result: FinetuneResult = {
        out: o.out,
        steps: trainer.step,
        totalSteps,
        stopped,
        evalBefore: history.evalBefore,
        evalAfter,
        samplesBefore: history.samplesBefore,
        samplesAfter,
        tokensPerSecond: median(history.stepRates),
        trainableParameters: summary.trainable,
        totalParameters: summary.total,
        peakBytes,
      };
      if (lead) writeJsonAtomic('finetune', path.join(o.out, 'metrics.json'), { ...result, settings, trainLoss: history.train, evalLoss: history.eval });
      // The other ranks return once rank 0's files are written (or its failure reached them).
      if (world.size > 1) await dist.barrier();
      return result;
    } finally {
      trainer.dispose();
    }
  } finally {
    model.dispose();
  }
}

/** `opts` without the keys whose value is undefined (so that they do not hide defaults). */
function definedOnly<T extends object>(opts: T): Partial<T> {
  return Object.fromEntries(Object.entries(opts).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/**
 * Three held-out prompts: the prompt part of prompt/completion examples, or the first 16 tokens
 * of text examples.
 */
function heldOutPrompts(heldOut: Example[], tokenizer: Tokenizer): string[] {
  return heldOut.slice(0, 3).map((e) => {
    const prompt = e.inputIds.filter((_, p) => e.labels[p] === IGNORE_INDEX);
    return tokenizer.decode(prompt.length ? prompt : e.inputIds.slice(0, 16));
  });
}
