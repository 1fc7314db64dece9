/**
 * Training checkpoints: the trainable weights, the optimizer's state, the scheduler's and random
 * generator's state, the step and the run's history, in one folder that is replaced whole (a
 * checkpoint is never half-written) and resumes the exact same run.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors';
import { readJson, writeJsonAtomic } from '../io/files';
import { readSafetensors, writeSafetensors } from '../io/safetensors';
import { isPlainObject } from '../optim/optimizer';
import type { ParamState } from '../optim/optimizer';
import { Tensor } from '../tensor';
import type { Trainer, TrainerState } from './trainer';

const STATE_FILE = 'trainer_state.json';
const WEIGHTS_FILE = 'trainable.safetensors';
const OPTIMIZER_FILE = 'optimizer.safetensors';

/** What a checkpoint keeps besides tensors: the run's settings (checked on resume) and its history. */
export interface CheckpointInfo {
  /** The settings a resumed run must share (model, data, hyperparameters); compared key by key. */
  settings: Record<string, unknown>;
  /** Anything JSON the run wants back (losses so far, timings). */
  history: unknown;
}

/**
 * Writes a checkpoint of `trainer` (its model's trainable parameters, by name) into `dir`: first
 * into `dir` + `.tmp`, then swapped in, so `dir` always holds one whole checkpoint.
 */
export function saveTrainingState(dir: string, trainer: Trainer, info: CheckpointInfo): void {
  const temp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(temp, { recursive: true, force: true });
  fs.mkdirSync(temp, { recursive: true });
  const state = trainer.stateDict();
  const weights = new Map(trainer.model.namedParameters().filter(([, p]) => p.requiresGrad));
  const optimizerTensors = new Map<string, Tensor>();
  const counts: Record<string, Record<string, number>> = {};
  try {
    for (const [index, s] of Object.entries(state.optimizer.state)) {
      for (const [key, value] of Object.entries(s)) {
        if (value instanceof Tensor) optimizerTensors.set(`state.${index}.${key}`, value);
        else (counts[index] ??= {})[key] = value;
      }
    }
    writeSafetensors(path.join(temp, WEIGHTS_FILE), weights);
    writeSafetensors(path.join(temp, OPTIMIZER_FILE), optimizerTensors);
    writeJsonAtomic('saveTrainingState', path.join(temp, STATE_FILE), {
      step: state.step,
      rng: { seed: state.rng.seed.toString(), offset: state.rng.offset.toString() },
      scheduler: state.scheduler,
      optimizer: { paramGroups: state.optimizer.paramGroups, counts },
      settings: info.settings,
      history: info.history,
    });
  } catch (e) {
    fs.rmSync(temp, { recursive: true, force: true });
    throw e;
  } finally {
    for (const t of optimizerTensors.values()) t.dispose();
  }
  fs.rmSync(old, { recursive: true, force: true });
  if (fs.existsSync(dir)) fs.renameSync(dir, old);
  fs.renameSync(temp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** The checkpoint folder to resume from: `dir`, or the previous one if a swap was interrupted; null if none. */
export function findTrainingState(dir: string): string | null {
  for (const candidate of [dir, `${dir}.old`]) if (fs.existsSync(path.join(candidate, STATE_FILE))) return candidate;
  return null;
}

/**
 * Restores a checkpoint written by {@link saveTrainingState} into `trainer` and its model. The
 * saved settings must equal `settings` (ERR_ARG listing the differences), and every file is
 * read and checked before anything changes. Returns the saved history.
 */
export function loadTrainingState(dir: string, trainer: Trainer, settings: Record<string, unknown>): unknown {
  const op = 'loadTrainingState';
  const saved = readJson(op, path.join(dir, STATE_FILE));
  if (!isPlainObject(saved) || !isPlainObject(saved.settings) || !isPlainObject(saved.optimizer) || !isPlainObject(saved.rng)) {
    fail('ERR_IO', `${op}: ${path.join(dir, STATE_FILE)} is not a checkpoint state`);
  }
  const differences = Object.keys({ ...settings, ...saved.settings })
    .filter((k) => JSON.stringify(settings[k]) !== JSON.stringify((saved.settings as Record<string, unknown>)[k]))
    .map((k) => `${k}: checkpoint ${JSON.stringify((saved.settings as Record<string, unknown>)[k])}, now ${JSON.stringify(settings[k])}`);
  if (differences.length) fail('ERR_ARG', `${op}: the checkpoint in ${dir} was made with other settings (${differences.join('; ')})`);
  const weights = readSafetensors(path.join(dir, WEIGHTS_FILE)).tensors;
  const optimizerTensors = readSafetensors(path.join(dir, OPTIMIZER_FILE)).tensors;
  try {
    // read on the CPU: moved to the device the trainer runs on
    for (const loaded of [weights, optimizerTensors]) {
      for (const [name, t] of loaded) {
        if (t.device === trainer.device) continue;
        loaded.set(name, t.to(trainer.device));
        t.dispose();
      }
    }
    const optimizerState: Record<number, ParamState> = {};
    for (const [name, t] of optimizerTensors) {
      const [, index, key] = name.split('.');
      (optimizerState[Number(index)] ??= {})[key] = t;
    }
    for (const [index, entries] of Object.entries(saved.optimizer.counts as Record<string, Record<string, number>>)) {
      Object.assign((optimizerState[Number(index)] ??= {}), entries);
    }
    const rng = saved.rng as Record<string, string>;
    const state: TrainerState = {
      step: saved.step as number,
      optimizer: { state: optimizerState, paramGroups: saved.optimizer.paramGroups as Record<string, unknown>[] },
      scheduler: saved.scheduler as TrainerState['scheduler'],
      rng: { seed: BigInt(rng.seed), offset: BigInt(rng.offset) },
    };
    const trainable = trainer.model.namedParameters().filter(([, p]) => p.requiresGrad).map(([name]) => name);
    const missing = trainable.filter((name) => !weights.has(name));
    if (missing.length || weights.size !== trainable.length) {
      fail('ERR_ARG', `${op}: the checkpoint's weights do not match the model's trainable parameters${missing.length ? ` (missing ${missing.slice(0, 5).join(', ')})` : ''}`);
    }
    trainer.model.loadStateDict(weights, { strict: false });
    trainer.loadStateDict(state);
  } finally {
    for (const t of weights.values()) t.dispose();
    for (const t of optimizerTensors.values()) t.dispose();
  }
  return saved.history;
}
