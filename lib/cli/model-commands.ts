/** `ignis generate` and `ignis merge`. */
import { IgnisError } from '../errors';
import type { DType } from '../dtype';
import { Tokenizer } from '../data/tokenizer';
import { generate } from '../generate';
import { loadAdapter } from '../lora/peft';
import { mergeLora as mergeAndUnload } from '../lora/apply';
import { LlamaForCausalLM } from '../nn/models/llama';
import { resolveDevice } from '../train/device';
import { BUILTIN_MODEL } from '../train/finetune';
import { num, parse } from './args';

const GENERATE_USAGE = `usage: ignis generate [--model DIR] [--adapter DIR] --prompt TEXT [options]

  --model DIR          model folder (default: the built-in model)
  --adapter DIR        a PEFT LoRA adapter folder to apply
  --prompt TEXT        the text to continue
  --max-tokens N       tokens to generate at most (100)
  --temperature T      0 for greedy decoding (0.8)
  --top-k K            sample among the K likeliest tokens (0: all)
  --top-p P            sample within the smallest set of probability P (1)
  --seed N             seed of the sampling (0)
  --device D           auto, cpu or cuda (auto)`;

const MERGE_USAGE = `usage: ignis merge --model DIR --adapter DIR --out DIR [--dtype D]

  Folds the LoRA adapter into the base weights and saves the merged model (config.json,
  model.safetensors, tokenizer files) in --out, loadable without PEFT.
  --dtype D            the saved weights' dtype (default: the base model's)`;

function required(v: string | boolean | undefined, name: string, usage: string): string {
  if (typeof v !== 'string' || v === '') throw new IgnisError(`--${name} is required\n\n${usage}`, 'ERR_ARG');
  return v;
}

/** `ignis generate`: streams the generated text to stdout. */
export async function generateCommand(argv: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const a = parse(argv, {
    model: s, adapter: s, prompt: s, 'max-tokens': s, temperature: s, 'top-k': s, 'top-p': s, seed: s, device: s,
  }, GENERATE_USAGE);
  const modelDir = typeof a.model === 'string' ? a.model : BUILTIN_MODEL;
  const prompt = required(a.prompt, 'prompt', GENERATE_USAGE);
  const device = resolveDevice(typeof a.device === 'string' ? a.device : 'auto', 'generate');
  const tokenizer = Tokenizer.fromDir(modelDir);
  const model = LlamaForCausalLM.fromPretrained(modelDir, { dtype: 'float32' });
  try {
    if (typeof a.adapter === 'string') loadAdapter(model, a.adapter);
    model.to(device).eval();
    process.stdout.write(prompt);
    generate(model, tokenizer, prompt, {
      maxNewTokens: num(a['max-tokens'], 'max-tokens') ?? 100,
      temperature: num(a.temperature, 'temperature') ?? 0.8,
      topK: num(a['top-k'], 'top-k'),
      topP: num(a['top-p'], 'top-p'),
      seed: num(a.seed, 'seed') ?? 0,
      onText: (piece) => process.stdout.write(piece),
    });
    process.stdout.write('\n');
    return 0;
  } finally {
    model.dispose();
  }
}

/** `ignis merge`: base + adapter -> a plain model folder. */
export async function mergeCommand(argv: string[]): Promise<number> {
  const s = { type: 'string' } as const;
  const a = parse(argv, { model: s, adapter: s, out: s, dtype: s }, MERGE_USAGE);
  const modelDir = required(a.model, 'model', MERGE_USAGE);
  const adapterDir = required(a.adapter, 'adapter', MERGE_USAGE);
  const out = required(a.out, 'out', MERGE_USAGE);
  const model = LlamaForCausalLM.fromPretrained(modelDir, { dtype: 'float32' });
  try {
    loadAdapter(model, adapterDir);
    mergeAndUnload(model);
    model.savePretrained(out, { dtype: typeof a.dtype === 'string' ? (a.dtype as DType) : (model.config.torchDtype ?? undefined) });
    Tokenizer.fromDir(modelDir).save(out);
    process.stdout.write(`merged ${adapterDir} into ${modelDir}; saved in ${out}\n`);
    return 0;
  } finally {
    model.dispose();
  }
}
