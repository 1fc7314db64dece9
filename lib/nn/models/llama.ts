/**
 * LLaMA as Hugging Face's transformers builds it (LlamaModel, LlamaForCausalLM), from the nn
 * layers, with exactly its parameter names, so that checkpoints load and save as transformers
 * reads and writes them (`config.json` + safetensors, sharded or not).
 */
import * as path from 'path';
import { DType, isInt } from '../../dtype';
import { fail } from '../../errors';
import { readConfig, llamaConfig, LlamaConfig, LlamaConfigInput, writeConfig } from '../../io/config';
import { checkCheckpoint, DEFAULT_MAX_SHARD_SIZE, loadCheckpoint, parseShardSize, readCheckpointIndex, saveCheckpoint } from '../../io/checkpoint';
import { checkDir } from '../../io/files';
import { tidy } from '../../memory';
import { checkTensor, fmtShape, sameShape } from '../../ops/check';
import { full, getRngState, setRngState, tensor } from '../../ops/creation';
import { cat } from '../../ops/indexing';
import { crossEntropy } from '../../ops/loss';
import { Tensor } from '../../tensor';
import { RotaryEmbedding } from '../attention';
import { KVCache } from '../cache';
import { DecoderBlock } from '../decoder';
import { Embedding, Linear, RMSNorm } from '../layers';
import { floatDtype, listNames, Module } from '../module';

/** Options of the LLaMA models' constructors. */
export interface LlamaModelOptions {
  /** The parameters' dtype (default float32). */
  dtype?: DType;
}

/** Options of {@link LlamaModel.forward}. */
export interface LlamaForwardOptions {
  /**
   * Which tokens may be attended to, [batch, seq]: 1 (or true) for tokens, 0 for padding, as
   * transformers' attention_mask. Default: every token (only the causal mask).
   */
  attentionMask?: Tensor | null;
  /** Integer positions [batch or 1, seq] for the rotary embedding (default past .. past + seq - 1). */
  positionIds?: Tensor | null;
  /**
   * Keys and values of earlier positions (from {@link LlamaForCausalLM.createCache}): the input
   * continues them (past = cache.length) and its own keys and values are added. With a cache,
   * `attentionMask` covers the past and the new positions, [batch, past + seq], as transformers'.
   */
  cache?: KVCache | null;
}

/** Options of {@link LlamaForCausalLM.forward}. */
export interface CausalLMForwardOptions extends LlamaForwardOptions {
  /**
   * Integer targets [batch, seq], aligned with the inputs (transformers' labels): the logits at
   * position i are scored against labels[i + 1]; -100 is ignored.
   */
  labels?: Tensor | null;
}

/** What {@link LlamaForCausalLM.forward} returns. */
export interface CausalLMOutput {
  /** [batch, seq, vocabSize], in the model's dtype. */
  logits: Tensor;
  /** The mean cross-entropy over the counted tokens (float32; float64 for a float64 model), or null without labels. */
  loss: Tensor | null;
}

/** Options of {@link LlamaForCausalLM.fromPretrained}. */
export interface FromPretrainedOptions {
  /** The parameters' dtype: a floating-point dtype, or 'auto' for the config's torch_dtype (default float32, as transformers). */
  dtype?: DType | 'auto';
}

/** Options of {@link LlamaForCausalLM.savePretrained}. */
export interface SavePretrainedOptions {
  /** The dtype the weights are saved in (default: the parameters' own). */
  dtype?: DType;
  /** Above this many bytes the weights are split into shards: a number or a size such as '2GB' (default '5GB', as transformers). */
  maxShardSize?: number | string;
}

/** The lowest finite value of each float dtype: the additive mask of padding (finite, so a row of padding gives no NaN). */
const LOWEST: Record<string, number> = { float64: -Number.MAX_VALUE, float32: -3.4028234663852886e38, bfloat16: -3.3895313892515355e38, float16: -65504 };

/** The parameter names of transformers' LlamaForCausalLM. */
const HF_NAME = /^(model\.(embed_tokens|norm|layers\.\d+\.(self_attn\.[qkvo]_proj|mlp\.(gate|up|down)_proj|input_layernorm|post_attention_layernorm))|lm_head)\.(weight|bias)$/;

function checkIds(op: string, ids: Tensor, name: string): void {
  checkTensor(ids, op, name);
  if (!isInt(ids.dtype)) fail('ERR_DTYPE', `${op}: ${name} must be int32 or int64, got ${ids.dtype}`);
}

/**
 * The additive mask [batch, 1, seq, past + seq] of a padding mask [batch, past + seq] for `seq`
 * new positions after `past` cached ones: 0 where key j <= past + query i and j is a token, the
 * dtype's lowest finite value elsewhere, on the mask's device (built on the host: a padding mask
 * costs a device sync, and cannot be captured in a CUDA graph).
 */
function paddingMask(op: string, mask: Tensor, batch: number, past: number, seq: number, dtype: DType): Tensor {
  checkTensor(mask, op, 'attentionMask');
  const keys = past + seq;
  if (!sameShape(mask.shape, [batch, keys])) {
    fail('ERR_SHAPE', `${op}: attentionMask must be [${batch}, ${keys}] (the cached and the new positions), got ${fmtShape(mask.shape)}`);
  }
  const keep = tidy(() => mask.to('float64').data() as Float64Array);
  const data = dtype === 'float64' ? new Float64Array(batch * seq * keys) : new Float32Array(batch * seq * keys);
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < seq; i++) {
      for (let j = 0; j < keys; j++) data[(b * seq + i) * keys + j] = j <= past + i && keep[b * keys + j] !== 0 ? 0 : LOWEST[dtype];
    }
  }
  return tensor(data, { shape: [batch, 1, seq, keys], dtype, device: mask.device });
}

/**
 * The LLaMA decoder (transformers' LlamaModel): token embeddings, `numHiddenLayers`
 * {@link DecoderBlock}s and a final RMSNorm; parameters `embed_tokens.weight`,
 * `layers.N.self_attn.q_proj.weight`, ..., `norm.weight`. The rotary tables and the mask are
 * built once per forward and shared by the layers.
 */
export class LlamaModel extends Module {
  readonly config: LlamaConfig;
  embed_tokens: Embedding;
  layers: DecoderBlock[];
  norm: RMSNorm;
  rotary_emb: RotaryEmbedding;

  constructor(config: LlamaConfigInput, opts: LlamaModelOptions = {}) {
    super();
    const c = llamaConfig(config);
    const dtype = floatDtype(opts.dtype, 'LlamaModel');
    this.config = c;
    this.embed_tokens = new Embedding(c.vocabSize, c.hiddenSize, { dtype });
    this.layers = Array.from(
      { length: c.numHiddenLayers },
      () =>
        new DecoderBlock({
          hiddenSize: c.hiddenSize,
          intermediateSize: c.intermediateSize,
          numAttentionHeads: c.numAttentionHeads,
          numKeyValueHeads: c.numKeyValueHeads,
          headDim: c.headDim,
          rmsNormEps: c.rmsNormEps,
          attentionBias: c.attentionBias,
          mlpBias: c.mlpBias,
          dtype,
        }),
    );
    this.norm = new RMSNorm(c.hiddenSize, { eps: c.rmsNormEps, dtype });
    this.rotary_emb = new RotaryEmbedding(c.headDim, { theta: c.ropeTheta });
  }

  /** inputIds (int) [batch, seq] -> the final hidden states [batch, seq, hiddenSize]. */
  forward(inputIds: Tensor, opts: LlamaForwardOptions = {}): Tensor {
    const op = 'LlamaModel';
    checkIds(op, inputIds, 'inputIds');
    if (inputIds.ndim !== 2) fail('ERR_SHAPE', `${op}: inputIds must be [batch, seq], got ${fmtShape(inputIds.shape)}`);
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
    const [batch, seq] = inputIds.shape;
    const positions = opts.positionIds ?? null;
    if (positions !== null) {
      checkIds(op, positions, 'positionIds');
      if (positions.ndim !== 2 || (positions.shape[0] !== batch && positions.shape[0] !== 1) || positions.shape[1] !== seq) {
        fail('ERR_SHAPE', `${op}: positionIds must be [${batch} or 1, ${seq}], got ${fmtShape(positions.shape)}`);
      }
    }
    const cache = opts.cache ?? null;
    if (cache !== null) {
      if (!(cache instanceof KVCache)) fail('ERR_ARG', `${op}: cache must be a KVCache (see createCache)`);
      if (cache.layers.length !== this.layers.length) fail('ERR_ARG', `${op}: the cache has ${cache.layers.length} layers, the model ${this.layers.length}`);
    }
    const past = cache?.length ?? 0;
    return tidy(() => {
      let h = this.embed_tokens.call(inputIds);
      // the default positions past .. past + seq - 1 are a range of the rotary tables (views,
      // nothing read back: a step can be captured in a CUDA graph)
      const pe = positions !== null ? this.rotary_emb.call(positions, h.dtype) : this.rotary_emb.positionRange(past, seq, inputIds.device, h.dtype);
      // without a padding mask the attention is causal by itself (no mask tensor, masked tiles skipped)
      const mask = opts.attentionMask ? paddingMask(op, opts.attentionMask, batch, past, seq, h.dtype) : null;
      this.layers.forEach((layer, i) => {
        h = layer.call(h, pe, mask, cache?.layer(i) ?? null);
      });
      return this.norm.call(h);
    });
  }
}

/**
 * LLaMA with its language-model head (transformers' LlamaForCausalLM): `model` (a
 * {@link LlamaModel}) and `lm_head` [vocabSize, hiddenSize] without bias, which with
 * `tieWordEmbeddings` is the embedding's weight itself (one tensor, saved once as
 * `model.embed_tokens.weight`).
 */
export class LlamaForCausalLM extends Module {
  readonly config: LlamaConfig;
  model: LlamaModel;
  lm_head: Linear;

  constructor(config: LlamaConfigInput, opts: LlamaModelOptions = {}) {
    super();
    this.model = new LlamaModel(config, opts);
    const c = this.model.config;
    this.config = c;
    this.lm_head = new Linear(c.hiddenSize, c.vocabSize, { bias: false, dtype: this.model.embed_tokens.weight.dtype });
    if (c.tieWordEmbeddings) {
      this.lm_head.weight.dispose();
      this.lm_head.weight = this.model.embed_tokens.weight;
    }
  }

  /**
   * inputIds (int) [batch, seq] -> `{ logits [batch, seq, vocabSize], loss }`. With `labels`,
   * the loss is transformers' causal-LM loss: the logits at position i against labels[i + 1]
   * (the last position has no target), -100 ignored, the mean over the counted tokens, through
   * the fused {@link crossEntropy} in float32 (float64 for a float64 model).
   */
  forward(inputIds: Tensor, opts: CausalLMForwardOptions = {}): CausalLMOutput {
    const op = 'LlamaForCausalLM';
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
    const labels = opts.labels ?? null;
    if (labels !== null) {
      checkIds(op, labels, 'labels');
      checkTensor(inputIds, op, 'inputIds');
      if (!sameShape(labels.shape, inputIds.shape)) fail('ERR_SHAPE', `${op}: labels must have the shape of inputIds ${fmtShape(inputIds.shape)}, got ${fmtShape(labels.shape)}`);
    }
    return tidy(() => {
      const logits = this.lm_head.call(this.model.call(inputIds, opts));
      if (labels === null) return { logits, loss: null };
      const [batch, seq, vocab] = logits.shape;
      // targets shifted left by one, the last position padded with the ignore index (as transformers)
      const targets = cat([labels.narrow(1, 1, seq - 1).to('int64'), full([batch, 1], -100, { dtype: 'int64', device: labels.device })], 1);
      const scores = logits.dtype === 'float64' ? logits : logits.to('float32');
      const loss = crossEntropy(scores.reshape(batch * seq, vocab), targets.reshape(batch * seq), { ignoreIndex: -100 });
      return { logits, loss };
    });
  }

  /**
   * A key/value cache for `batchSize` sequences of up to `maxLength` positions, in the model's
   * dtype and on its device, for {@link forward}'s `cache` option (generation). It belongs to the caller: dispose it.
   */
  createCache(batchSize: number, maxLength: number): KVCache {
    const c = this.config;
    return new KVCache({
      numLayers: c.numHiddenLayers, batchSize, numKeyValueHeads: c.numKeyValueHeads, headDim: c.headDim,
      maxLength, dtype: this.model.embed_tokens.weight.dtype, device: this.model.embed_tokens.weight.device,
    });
  }

  /**
   * Loads a transformers checkpoint folder: `config.json` and `model.safetensors`, or the shards
   * listed by `model.safetensors.index.json`. Before any weight is read, the config is checked,
   * then every tensor's name and shape against the model the config describes: a missing folder
   * or file (ERR_IO naming it), missing or unexpected tensors (ERR_IO listing them; a tied
   * checkpoint may still hold `lm_head.weight`, and old `rotary_emb.inv_freq` buffers are
   * skipped), shapes that disagree with the config (ERR_SHAPE naming each tensor and both
   * shapes). Weights are converted to `opts.dtype`. The model is returned in evaluation mode;
   * if loading fails, nothing half-loaded is returned and the global random state is unchanged.
   */
  static fromPretrained(dir: string, opts: FromPretrainedOptions = {}): LlamaForCausalLM {
    const op = 'LlamaForCausalLM.fromPretrained';
    checkDir(op, dir);
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
    const config = readConfig(path.join(dir, 'config.json'));
    const dtype = opts.dtype === 'auto' ? (config.torchDtype ?? 'float32') : floatDtype(opts.dtype, op);
    const found = readCheckpointIndex(op, dir);
    // the initial weights are overwritten: their draws must not move the global generator
    const rng = getRngState();
    let model: LlamaForCausalLM;
    try {
      model = new LlamaForCausalLM(config, { dtype });
    } finally {
      setRngState(rng);
    }
    try {
      const expected = model.namedParameters();
      const skipped = (name: string) => (config.tieWordEmbeddings && name === 'lm_head.weight') || name.endsWith('rotary_emb.inv_freq');
      checkCheckpoint(op, dir, found, expected, skipped);
      loadCheckpoint(model, found, expected.map(([name]) => name), dtype);
    } catch (err) {
      model.dispose();
      throw err;
    }
    return model.eval();
  }

  /**
   * Saves the model as transformers does: `config.json` (torch_dtype the saved dtype) and
   * `model.safetensors`, or above `maxShardSize` the shards `model-0000i-of-0000n.safetensors`
   * and `model.safetensors.index.json`; a tied head is saved once, as the embedding. Each file
   * is written atomically (weight files of an earlier save that this one does not write are
   * removed). A model holding LoRA layers is refused (ERR_ARG): merge them first
   * (`lora.mergeAndUnload`) or save the adapter alone (`lora.saveAdapter`).
   */
  savePretrained(dir: string, opts: SavePretrainedOptions = {}): void {
    const op = 'LlamaForCausalLM.savePretrained';
    if (typeof dir !== 'string' || dir === '') fail('ERR_ARG', `${op}: expected a folder path`);
    if (typeof opts !== 'object' || opts === null) fail('ERR_ARG', `${op}: options must be an object`);
    const dtype = opts.dtype === undefined ? undefined : floatDtype(opts.dtype, op);
    const maxShardSize = parseShardSize(op, opts.maxShardSize ?? DEFAULT_MAX_SHARD_SIZE);
    const params = this.namedParameters();
    const foreign = params.map(([name]) => name).filter((name) => !HF_NAME.test(name));
    if (foreign.length > 0) {
      fail('ERR_ARG', `${op}: parameters ${listNames(foreign, 5)} are not LLaMA's; merge LoRA adapters first (lora.mergeAndUnload) or save them with lora.saveAdapter`);
    }
    for (const [, t] of params) t.handle(op);
    saveCheckpoint(op, dir, params, { dtype, maxShardSize });
    writeConfig(path.join(dir, 'config.json'), this.config, dtype ?? this.model.embed_tokens.weight.dtype);
  }
}
