/**
 * finetune end to end on a tiny model saved to disk: PEFT files, loss curve and metrics written;
 * a run stopped by its signal and resumed gives the same losses as one never stopped; bad inputs
 * give clear errors and leave no output behind.
 */
import test from 'ava';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ig from '../../lib';
import { Tokenizer } from '../../lib/data/tokenizer';
import { finetune } from '../../lib/train/finetune';
import type { FinetuneOptions } from '../../lib/train/finetune';
import { resolveDevice } from '../../lib/train/device';
import { assertCode } from '../helpers';
import { finetuneFixture as fixture } from './fixtures';

const BASE: FinetuneOptions = { rank: 4, alpha: 8, batch: 2, seqLen: 32, steps: 6, evalEvery: 3, lr: 0.01, seed: 1, sampleTokens: 4 };

test('resolveDevice: auto is cuda when a GPU is usable, else the CPU; cuda without one is ERR_DEVICE with the reason', (t) => {
  const available = ig.cuda.isAvailable();
  t.is(resolveDevice('auto', 'op'), available ? `cuda:${ig.cuda.currentDevice()}` : 'cpu');
  t.is(resolveDevice('cpu', 'op'), 'cpu');
  if (available) {
    t.is(resolveDevice('cuda:0', 'op'), 'cuda:0');
  } else {
    for (const d of ['cuda', 'cuda:1']) {
      const err = t.throws(() => resolveDevice(d, 'op'), { instanceOf: ig.IgnisError });
      t.is(err?.code, 'ERR_DEVICE');
      t.true(err?.message.includes(`not available: ${ig.cuda.unavailableReason()}`), err?.message);
    }
  }
  for (const d of ['tpu', 'cuda:x', '']) assertCode(t, () => resolveDevice(d, 'op'), 'ERR_ARG', /device must be/);
});

test.serial('finetune writes a PEFT adapter, a loss curve and metrics, and the adapter loads back', async (t) => {
  const { model, data, root } = fixture(t);
  const out = path.join(root, 'out');
  const events: string[] = [];
  const r = await finetune({ ...BASE, model, data, out, onProgress: (e) => events.push(e.kind) });
  t.false(r.stopped);
  t.is(r.steps, 6);
  for (const f of ['adapter_config.json', 'adapter_model.safetensors', 'loss.svg', 'metrics.json']) t.true(fs.existsSync(path.join(out, f)), f);
  t.true(fs.readFileSync(path.join(out, 'loss.svg'), 'utf8').startsWith('<svg'));
  t.deepEqual(events.filter((k) => k !== 'step'), ['start', 'eval', 'eval']);
  t.is(events.filter((k) => k === 'step').length, 6);
  t.is(r.samplesBefore.length, 1);  // 10 records, 10% held out
  t.true(r.evalAfter !== null && r.evalAfter.loss < r.evalBefore.loss);
  // the model's weights at least (float32), and the step's activations on top
  t.true(r.peakBytes > 4 * r.totalParameters, `peak ${r.peakBytes} bytes`);
  const config = JSON.parse(fs.readFileSync(path.join(out, 'adapter_config.json'), 'utf8'));
  t.is(config.r, 4);
  t.is(config.lora_alpha, 8);
  const loaded = ig.LlamaForCausalLM.fromPretrained(model);
  ig.lora.loadAdapter(loaded, out);
  t.is(loaded.namedParameters().filter(([n]) => n.includes('lora_')).length, 8);
  loaded.dispose();
});

test.serial('a run stopped by its signal resumes to the same losses as one never stopped', async (t) => {
  const { model, data, root } = fixture(t);
  const whole = await finetune({ ...BASE, model, data, out: path.join(root, 'whole') });
  const out = path.join(root, 'stopped');
  const stop = new AbortController();
  const first = await finetune({ ...BASE, model, data, out, signal: stop.signal, onProgress: (e) => e.kind === 'step' && e.step === 4 && stop.abort() });
  t.true(first.stopped);
  t.is(first.steps, 4);
  t.false(fs.existsSync(path.join(out, 'adapter_model.safetensors')));
  t.true(fs.existsSync(path.join(out, 'checkpoint', 'trainer_state.json')));
  const resumed = await finetune({ ...BASE, model, data, out, resume: true });
  t.is(resumed.steps, 6);
  const losses = (dir: string) => JSON.parse(fs.readFileSync(path.join(dir, 'metrics.json'), 'utf8')).trainLoss;
  t.deepEqual(losses(out), losses(path.join(root, 'whole')));
  t.is(resumed.evalAfter?.loss, whole.evalAfter?.loss);
  await t.throwsAsync(finetune({ ...BASE, model, data, out, resume: true, lr: 0.02 }), { code: 'ERR_ARG', message: /other settings/ });
});

test.serial('bad inputs are clear errors raised before anything is written', async (t) => {
  const { model, data, root } = fixture(t);
  const out = path.join(root, 'never');
  const bad = path.join(root, 'bad.jsonl');
  fs.writeFileSync(bad, '{"prompt": "a", "completion": "b"}\n{"prompt": "a"\n');
  const cases: [FinetuneOptions, string, RegExp][] = [
    [{ model: path.join(root, 'missing') }, 'ERR_IO', /missing/],
    [{ data: bad }, 'ERR_IO', /bad\.jsonl:2: not valid JSON/],
    [{ data: path.join(root, 'none.jsonl') }, 'ERR_IO', /no such file/],
    [{ seqLen: 65 }, 'ERR_ARG', /above the model's maximum of 64/],
    [{ rank: 0 }, 'ERR_ARG', /rank/],
    [{ dropout: 1 }, 'ERR_ARG', /dropout/],
    [{ device: 'tpu' }, 'ERR_ARG', /device/],
    ...(ig.cuda.isAvailable() ? [] : [[{ device: 'cuda' }, 'ERR_DEVICE', /device cuda is not available/] as [FinetuneOptions, string, RegExp]]),
    [{ resume: true }, 'ERR_IO', /no checkpoint/],
    [{ target: ['nope_proj'] }, 'ERR_ARG', /nope_proj/],
  ];
  for (const [opts, code, message] of cases) {
    await t.throwsAsync(finetune({ ...BASE, model, data, out, ...opts }), { code, message }, JSON.stringify(opts));
  }
  t.false(fs.existsSync(out));
  assertCode(t, () => Tokenizer.fromDir(root), 'ERR_IO');
});
