/** Which examples each data-parallel rank trains on. */
import { isInitialized, rank as distRank, worldSize as distWorldSize } from '../dist/group';
import { fail } from '../errors';
import { shuffled } from './dataset';

/** Options of {@link DistributedSampler}. */
export interface DistributedSamplerOptions {
  /** This rank (default: the process group's when `dist.init()` ran, else 0). */
  rank?: number;
  /** Ranks in all (default: the process group's size when `dist.init()` ran, else 1). */
  worldSize?: number;
  /** Draw a new order every epoch (default true); else 0, 1, 2, ... */
  shuffle?: boolean;
  /** Seeds the order, with the epoch: the same on every rank (default 0). */
  seed?: number;
  /**
   * Drop the tail that does not divide evenly among the ranks (default false: the order is
   * padded by wrapping around to its start, so that some examples appear twice).
   */
  dropLast?: boolean;
}

function checkInteger(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail('ERR_ARG', `DistributedSampler: ${name} must be an integer >= ${min}, got ${String(value)}`);
  }
  return value;
}

/**
 * The indices of a dataset of `length` examples that one rank trains on in an epoch, as
 * PyTorch's `DistributedSampler`: every rank draws the same seeded permutation (the seed plus the
 * epoch, see {@link setEpoch}), padded by wrapping around (or cut, with `dropLast`) to a multiple
 * of the world size, and rank r takes every worldSize-th index from position r. So the ranks'
 * indices are disjoint (up to the padding), cover the dataset, and every rank gets the same count.
 */
export class DistributedSampler {
  readonly length: number;
  readonly rank: number;
  readonly worldSize: number;
  readonly shuffle: boolean;
  readonly seed: number;
  readonly dropLast: boolean;
  private epoch = 0;

  constructor(length: number, options: DistributedSamplerOptions = {}) {
    if (options === null || typeof options !== 'object') fail('ERR_ARG', 'DistributedSampler: options must be an object');
    this.length = checkInteger(length, 'length', 0);
    const joined = isInitialized();
    this.worldSize = checkInteger(options.worldSize ?? (joined ? distWorldSize() : 1), 'worldSize', 1);
    this.rank = checkInteger(options.rank ?? (joined ? distRank() : 0), 'rank', 0);
    if (this.rank >= this.worldSize) fail('ERR_ARG', `DistributedSampler: rank must be in [0, ${this.worldSize}), got ${this.rank}`);
    const { shuffle = true, seed = 0, dropLast = false } = options;
    if (typeof shuffle !== 'boolean') fail('ERR_ARG', 'DistributedSampler: shuffle must be a boolean');
    if (typeof dropLast !== 'boolean') fail('ERR_ARG', 'DistributedSampler: dropLast must be a boolean');
    this.seed = checkInteger(seed, 'seed', 0);
    this.shuffle = shuffle;
    this.dropLast = dropLast;
  }

  /** Indices per rank and epoch. */
  get numSamples(): number {
    return this.dropLast ? Math.floor(this.length / this.worldSize) : Math.ceil(this.length / this.worldSize);
  }

  /** Sets the epoch, which with the seed fixes the order: call it at the start of every epoch, on every rank. */
  setEpoch(epoch: number): void {
    this.epoch = checkInteger(epoch, 'epoch', 0);
  }

  /** This rank's indices for the current epoch, in training order. */
  indices(): number[] {
    const order = this.shuffle ? shuffled(this.length, this.seed + this.epoch) : Array.from({ length: this.length }, (_, i) => i);
    const total = this.numSamples * this.worldSize;
    const out: number[] = [];
    // position p of the padded order is order[p % length]: the padding wraps around
    for (let p = this.rank; p < total; p += this.worldSize) out.push(order[p % this.length]);
    return out;
  }
}
