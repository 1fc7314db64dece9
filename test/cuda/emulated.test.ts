/**
 * The tensor-core attention kernels (native/cuda/attention_mma.cuh) run here without a GPU:
 * test/emulate/harness.cc compiles their source as host C++ with an emulation of the CUDA
 * execution model (each thread a fiber, block barriers, mma.sync and ldmatrix built from the PTX
 * fragment tables, cp.async deferred to its wait, NaN-poisoned memory) and compares forward and
 * backward with a float64 reference over causal/masked/GQA/strided cases, under three thread
 * schedules. Needs g++ on x86-64 Linux (the fibers switch stacks in x86-64 assembly).
 */
import test from 'ava';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..', '..', '..');
const compiler = spawnSync('g++', ['--version']).status === 0;
const reason = os.platform() !== 'linux' || os.arch() !== 'x64' ? 'not x86-64 Linux' : compiler ? '' : 'no g++';
if (reason) console.log(`test/cuda/emulated: skipped (${reason})`);

(reason ? test.skip : test)('tensor-core attention kernels on the emulated GPU match float64 (forward, dQ, dK, dV)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ignis-emulate-'));
  try {
    const harness = path.join(dir, 'harness');
    const emulate = path.join(root, 'test', 'emulate');
    execFileSync('g++', ['-std=c++17', '-O2', `-I${path.join(emulate, 'override')}`, `-I${path.join(root, 'native')}`,
      path.join(emulate, 'harness.cc'), '-o', harness]);
    const run = spawnSync(harness, { encoding: 'utf8', maxBuffer: 16 << 20 });
    const failing = run.stdout.split('\n').filter((line) => !line.startsWith('ok'));
    t.is(run.status, 0, `${failing.join('\n')}\n${run.stderr}`);
    t.regex(run.stdout, /^0 failing case\(s\)/m);
    t.true(run.stdout.split('\n').filter((line) => line.startsWith('ok')).length >= 40, 'every case ran');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
