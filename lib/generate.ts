/**
 * Text generation with a causal LM: greedy decoding or sampling (temperature, top-k, top-p) with
 * a seed, a KV cache so each new token costs one position, stopping at EOS, a token budget or
 * stop strings, and streaming to a callback.
 */
import { noGrad } from './autograd/graph';
import { fail } from './errors';
import { tidy } from './memory';
import { tensor } from './ops/creation';
import { Tensor } from './tensor';
import { seededRandom } from './data/dataset';
import type { Tokenizer } from './data/tokenizer';
import type { KVCache } from './nn/cache';

/** What generation needs of a model: logits for token ids, optionally continuing a KV cache. */
export interface GenerativeLM {
  readonly training: boolean;
  train(mode?: boolean): unknown;
  /** The most positions the model takes. */
  readonly config: { maxPositionEmbeddings: number };
  /** The model's weights: the inputs are made on the device of the first. */
  parameters(): Tensor[];
  /** A cache for `batch` sequences of up to `capacity` positions. */
  createCache(batch: number, capacity: number): KVCache;
  /** Logits [batch, length, vocab] of the ids [batch, length], after the cache's positions when given. */
  forward(inputIds: Tensor, opts?: { cache?: KVCache }): { logits: Tensor };
}

/** Options of {@link generate}. */
export interface GenerateOptions {
  /** Tokens to add at most (default 100). */
  maxNewTokens?: number;
  /** Divides the logits before sampling; 0 is greedy decoding (default 1). */
  temperature?: number;
  /** Sample only among the k likeliest tokens (default 0: all). */
  topK?: number;
  /** Sample only within the smallest set of likeliest tokens whose probability reaches p (default 1). */
  topP?: number;
  /** Seeds the sampling (default 0); the same seed gives the same text. */
  seed?: number;
  /** Stop at the tokenizer's EOS token (default true). */
  stopAtEos?: boolean;
  /** Stop once the text contains one of these (the text is cut before it). */
  stop?: string[];
  /** Put BOS before the prompt, when the tokenizer has one (default true). */
  addBos?: boolean;
  /** Reuse keys and values of earlier positions (default true); false recomputes the whole sequence per token. */
  useCache?: boolean;
  /** Receives each token id as it is chosen. */
  onToken?: (id: number) => void;
  /** Receives the text as it grows, piece by piece. */
  onText?: (piece: string) => void;
}

/** What {@link generate} returns. */
export interface GenerateResult {
  /** The generated text (without the prompt). */
  text: string;
  /** The generated token ids. */
  tokens: number[];
  /** Why it stopped. */
  finishReason: 'eos' | 'length' | 'stop';
}

function checkOption(value: number, name: string, ok: (v: number) => boolean, what: string): number {
  if (typeof value !== 'number' || !ok(value)) fail('ERR_ARG', `generate: ${name} must be ${what}, got ${String(value)}`);
  return value;
}

/**
 * The next token from the last position's logits: the argmax when temperature is 0, else a draw
 * from softmax(logits / temperature) restricted to the top-k and top-p sets.
 */
export function pickToken(logits: Float32Array, temperature: number, topK: number, topP: number, random: () => number): number {
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]);
  if (topK > 0) order = order.slice(0, topK);
  const top = logits[order[0]];
  const weights = order.map((i) => Math.exp((logits[i] - top) / temperature));
  const total = weights.reduce((a, b) => a + b, 0);
  let kept = order.length;
  if (topP < 1) {
    let mass = 0;
    kept = 0;
    while (kept < order.length && mass < topP * total) mass += weights[kept++];
  }
  const keptTotal = weights.slice(0, kept).reduce((a, b) => a + b, 0);
  let r = random() * keptTotal;
  for (let i = 0; i < kept; i++) {
    r -= weights[i];
    if (r < 0) return order[i];
  }
  return order[kept - 1];
}

/**
 * Continues `prompt` with `model` (switched to eval mode for the call), on the model's device:
 * each step's input ids are made there and the last logits read back. Generation stops at EOS,
 * after `maxNewTokens`, at a stop string, or when the model's maximum length is reached.
 */
export function generate(model: GenerativeLM, tokenizer: Tokenizer, prompt: string, opts: GenerateOptions = {}): GenerateResult {
  const maxNewTokens = checkOption(opts.maxNewTokens ?? 100, 'maxNewTokens', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  const temperature = checkOption(opts.temperature ?? 1, 'temperature', (v) => v >= 0 && Number.isFinite(v), 'a finite number >= 0');
  const topK = checkOption(opts.topK ?? 0, 'topK', (v) => Number.isInteger(v) && v >= 0, 'a non-negative integer');
  const topP = checkOption(opts.topP ?? 1, 'topP', (v) => v > 0 && v <= 1, 'in (0, 1]');
  const random = seededRandom(checkOption(opts.seed ?? 0, 'seed', Number.isSafeInteger, 'an integer'));
  const useCache = opts.useCache ?? true;
  const stops = opts.stop ?? [];
  const ids = tokenizer.encode(prompt, { addBos: (opts.addBos ?? true) && tokenizer.bosId !== null });
  if (ids.length === 0) fail('ERR_ARG', 'generate: the prompt is empty and the tokenizer has no BOS token to start from');
  const maxLen = model.config.maxPositionEmbeddings;
  if (ids.length > maxLen) fail('ERR_ARG', `generate: the prompt has ${ids.length} tokens, above the model's maximum of ${maxLen}`);
  const budget = Math.min(maxNewTokens, maxLen - ids.length);
  const decodePiece = tokenizer.streamDecoder();
  const tokens: number[] = [];
  let text = '';
  let finishReason: GenerateResult['finishReason'] = 'length';
  const device = model.parameters()[0]?.device ?? 'cpu';
  const wasTraining = model.training;
  model.train(false);
  const cache = useCache ? model.createCache(1, ids.length + budget) : null;
  try {
    let fed = 0;  // tokens already in the cache
    while (tokens.length < budget) {
      const context = useCache ? ids.slice(fed) : ids;
      const last = noGrad(() => tidy(() => {
        const input = tensor(BigInt64Array.from(context, BigInt), { shape: [1, context.length], device });
        const { logits } = model.forward(input, cache ? { cache } : {});
        return logits.select(1, context.length - 1).reshape([-1]).to('float32').data() as Float32Array;
      }));
      fed = ids.length;
      const id = pickToken(last, temperature, topK, topP, random);
      if ((opts.stopAtEos ?? true) && id === tokenizer.eosId) {
        finishReason = 'eos';
        break;
      }
      ids.push(id);
      tokens.push(id);
      opts.onToken?.(id);
      const piece = decodePiece(id);
      const stopAt = stops.map((s) => (text + piece).indexOf(s)).filter((i) => i >= 0);
      if (stopAt.length) {
        const cut = Math.min(...stopAt);
        opts.onText?.((text + piece).slice(text.length, Math.max(cut, text.length)));
        text = (text + piece).slice(0, cut);
        finishReason = 'stop';
        break;
      }
      text += piece;
      if (piece) opts.onText?.(piece);
    }
  } finally {
    cache?.dispose();
    model.train(wasTraining);
  }
  if (finishReason !== 'stop') {
    // the stream decoder holds back an incomplete character at the very end
    const full = tokenizer.decode(tokens);
    if (full.length > text.length) opts.onText?.(full.slice(text.length));
    text = full;
  }
  return { text, tokens, finishReason };
}
