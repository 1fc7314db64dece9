'use strict';
// safetensors files: reading and writing a checkpoint-shaped file (LLaMA layer shapes, float32
// and bfloat16), against reading the same bytes with fs.readFileSync (the page-cache floor) and
// PyTorch in the same run (the safetensors package when installed, else torch.frombuffer over
// the specification; and torch.load / torch.save of the same tensors). Writes include the
// fsync of the atomic write. Usage: node bench/io.js [--mb 64]
const fs = require('fs');
const os = require('os');
const path = require('path');
const { timeit, runPeer, report } = require('./common');
const ig = require('..');

const mbArg = process.argv.indexOf('--mb');
const targetMb = mbArg > 0 ? Number(process.argv[mbArg + 1]) : 64;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-bench-io-'));
const rows = [];
try {
  for (const dtype of ['float32', 'bfloat16']) {
    // layers of a small LLaMA (hidden 1024, intermediate 2816) until the file holds targetMb
    const tensors = new Map();
    const hidden = 1024;
    const inter = 2816;
    const bytes = dtype === 'float32' ? 4 : 2;
    let total = 0;
    for (let l = 0; total < targetMb * 2 ** 20; l++) {
      const p = `model.layers.${l}`;
      for (const [name, shape] of [
        ['self_attn.q_proj.weight', [hidden, hidden]],
        ['self_attn.k_proj.weight', [hidden / 4, hidden]],
        ['self_attn.v_proj.weight', [hidden / 4, hidden]],
        ['self_attn.o_proj.weight', [hidden, hidden]],
        ['mlp.gate_proj.weight', [inter, hidden]],
        ['mlp.up_proj.weight', [inter, hidden]],
        ['mlp.down_proj.weight', [hidden, inter]],
        ['input_layernorm.weight', [hidden]],
      ]) {
        tensors.set(`${p}.${name}`, ig.randn(shape, { dtype }));
        total += shape.reduce((a, b) => a * b, 1) * bytes;
      }
    }
    const file = path.join(dir, `${dtype}.safetensors`);
    ig.io.writeSafetensors(file, tensors, { format: 'pt' });
    const mb = fs.statSync(file).size / 2 ** 20;
    const read = timeit(() => {
      for (const t of ig.io.readSafetensors(file).tensors.values()) t.dispose();
    }, { reps: 5, warmup: 1 }).median;
    const floor = timeit(() => fs.readFileSync(file), { reps: 5, warmup: 1 }).median;
    const write = timeit(() => ig.io.writeSafetensors(path.join(dir, 'out.safetensors'), tensors), { reps: 5, warmup: 1 }).median;
    const peer = runPeer('torch', 'io', { file, out: path.join(dir, 'peer') });
    const theirs = (k) => (peer.skipped ? 'n/a' : mb / peer.results[k]);
    rows.push({
      dtype,
      MB: mb,
      'ignis read MB/s': mb / read,
      'readFileSync MB/s': mb / floor,
      [`torch ${peer.reader ?? ''} read MB/s`]: theirs('read'),
      'torch.load MB/s': theirs('torch.load'),
      'ignis write MB/s': mb / write,
      'torch.save MB/s': theirs('torch.save'),
    });
    for (const t of tensors.values()) t.dispose();
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true });
}
report('io', rows, { threads: ig.getNumThreads() });
