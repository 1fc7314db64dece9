'use strict';
// Shared by the benchmark scripts: timing, medians, peers run in Python in the same run, and
// the table + JSON report. Benchmarks compare ratios against a peer measured in the same run,
// because absolute times move on shared machines.
const { spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

function median(values) {
  const s = values.slice().sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Seconds per call of fn: `reps` samples, each running fn enough times to last at least
 * `minSampleMs`, after `warmup` calls. Returns the median and all samples.
 */
function timeit(fn, { reps = 7, warmup = 3, minSampleMs = 20 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  let inner = 1;
  for (;;) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < inner; i++) fn();
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (ms >= minSampleMs || inner >= 1 << 24) break;
    inner *= ms > 0 ? Math.min(100, Math.max(2, Math.ceil((minSampleMs / ms) * 1.2))) : 100;
  }
  const samples = [];
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < inner; i++) fn();
    samples.push(Number(process.hrtime.bigint() - t0) / 1e9 / inner);
  }
  return { median: median(samples), samples };
}

/**
 * Whether the command line asks for `--device cuda` (the CPU otherwise); asking for it where
 * CUDA is not usable throws, naming bench/<script> and the reason.
 */
function wantsCuda(ig, script) {
  const flag = process.argv.indexOf('--device');
  if (flag < 0 || process.argv[flag + 1] !== 'cuda') return false;
  if (!ig.cuda.isAvailable()) throw new Error(`bench/${script} --device cuda: ${ig.cuda.unavailableReason()}`);
  return true;
}

/**
 * Seconds per call of fn on a CUDA device, measured with CUDA events around `inner` calls (so
 * that the GPU's own time is what counts): `reps` samples of at least `minSampleMs` each, after
 * `warmup` calls and a synchronisation. Returns the median and all samples.
 */
function timeCuda(ig, fn, { reps = 15, warmup = 3, minSampleMs = 20 } = {}) {
  for (let i = 0; i < warmup; i++) fn();
  ig.cuda.synchronize();
  const start = new ig.cuda.Event({ enableTiming: true });
  const end = new ig.cuda.Event({ enableTiming: true });
  const sample = (inner) => {
    start.record();
    for (let i = 0; i < inner; i++) fn();
    end.record();
    end.synchronize();
    return start.elapsedTime(end);
  };
  let inner = 1;
  for (;;) {
    const ms = sample(inner);
    if (ms >= minSampleMs || inner >= 1 << 16) break;
    inner *= ms > 0 ? Math.min(100, Math.max(2, Math.ceil((minSampleMs / ms) * 1.2))) : 100;
  }
  const samples = [];
  for (let r = 0; r < reps; r++) samples.push(sample(inner) / 1e3 / inner);
  return { median: median(samples), samples };
}

// Python peers: numpy through `python3` (its own OpenBLAS), PyTorch CPU through /usr/bin/python3
// (Debian's python3-torch).
const PEERS = {
  numpy: { python: process.env.IGNIS_BENCH_NUMPY_PYTHON || 'python3', module: 'numpy' },
  torch: { python: process.env.IGNIS_BENCH_TORCH_PYTHON || '/usr/bin/python3', module: 'torch' },
};

/**
 * Runs bench/peers/<script>.py with the JSON `args` under the peer's Python and returns its JSON
 * output, or { skipped: reason } when the peer is not installed. With `args.threads`, the
 * peer's BLAS and OpenMP pools get that many threads too: torch.set_num_threads does not reach
 * OpenBLAS's own pool, so a "one-thread" PyTorch would otherwise run its GEMMs on every core.
 */
function runPeer(peer, script, args) {
  const { python, module } = PEERS[peer];
  const probe = spawnSync(python, ['-c', `import ${module}`], { encoding: 'utf8' });
  if (probe.error || probe.status !== 0) {
    return { skipped: `${peer} not available (${python} cannot import ${module})` };
  }
  const file = path.join(__dirname, 'peers', `${script}.py`);
  const res = spawnSync(python, [file, JSON.stringify(args)], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    env: {
      ...process.env,
      PYTHONPATH: path.join(__dirname, 'peers'),
      ...(args.threads ? { OPENBLAS_NUM_THREADS: String(args.threads), OMP_NUM_THREADS: String(args.threads) } : {}),
    },
  });
  if (res.status !== 0) throw new Error(`${peer} peer ${script} failed: ${res.stderr || res.error}`);
  return JSON.parse(res.stdout);
}

/**
 * Runs `script --worker <JSON of work>` on `ranks` processes through ignis's launcher, one
 * thread each, and returns what the ranks printed as `RESULT <json>` lines, parsed, in the order
 * they came; throws with the ranks' stderr when the launch failed or nothing came back.
 */
function launchRanks(script, ranks, work) {
  const launcher = path.join(__dirname, '..', 'dist', 'lib', 'dist', 'launch.js');
  const res = spawnSync(process.execPath, [launcher, '--nproc-per-node', String(ranks), '--master-port', '0', script, '--worker', JSON.stringify(work)], {
    encoding: 'utf8',
    maxBuffer: 16 << 20,
    env: { ...process.env, IGNIS_NUM_THREADS: '1' },
  });
  const results = (res.stdout || '').split('\n').filter((l) => /^\[rank \d+\] RESULT /.test(l)).map((l) => JSON.parse(l.slice(l.indexOf('RESULT ') + 7)));
  if (res.status !== 0 || results.length === 0) throw new Error(`ignis ranks failed (${res.status}): ${res.stderr}`);
  return results;
}

function machine() {
  return {
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model,
    node: process.version,
    date: new Date().toISOString(),
    threads: require('..').getNumThreads(),
  };
}

/** Prints rows as an aligned table and writes bench/results/<name>.json. */
function report(name, rows, extra = {}) {
  const columns = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const cell = (v) => (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toPrecision(4)) : String(v ?? ''));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (values) => values.map((v, i) => v.padStart(widths[i])).join('  ');
  console.log(`\n${name}`);
  console.log(line(columns));
  for (const r of rows) console.log(line(columns.map((c) => cell(r[c]))));
  const dir = path.join(__dirname, 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${name}.json`);
  const tmp = `${file}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify({ name, machine: machine(), rows, ...extra }, null, 2));
  fs.renameSync(tmp, file);
  return file;
}

module.exports = { median, timeit, timeCuda, wantsCuda, runPeer, launchRanks, report };
