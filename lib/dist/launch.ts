/**
 * The launcher: `node dist/lib/dist/launch.js --nproc-per-node N script.js args...` starts N
 * workers running `script.js` with the torchrun environment set (`RANK`, `WORLD_SIZE`,
 * `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`) and the job's store token, serves
 * the store (on node 0), prefixes every output line with `[rank N]`, forwards SIGINT and SIGTERM,
 * and when a worker fails stops the others (SIGTERM, then SIGKILL after a grace period) and
 * exits non-zero naming it. Unless `IGNIS_NUM_THREADS` is set, each worker gets an equal share of
 * the machine's cores (at least one), so that N workers do not each start a thread per core.
 */
import { ChildProcess, spawn } from 'child_process';
import { randomBytes } from 'crypto';
import { availableParallelism, constants } from 'os';
import { parseArgs } from 'util';
import { storeBindHost } from './env';
import { native, NativeStoreServer } from './native';

const USAGE = `usage: launch [options] script.js [script args...]

options:
  --nproc-per-node N   workers on this node (default 1)
  --nnodes M           nodes in the job (default 1)
  --node-rank K        this node's rank, in [0, M) (default 0)
  --master-addr H      address of node 0, which serves the store (default 127.0.0.1)
  --master-port P      the store's port on node 0 (default 29500; 0 picks a free port, one node only)
  --grace-period S     seconds between SIGTERM and SIGKILL when stopping workers (default 5)
  -h, --help           this text

Every node must have the same IGNIS_STORE_TOKEN when --nnodes > 1 (one node makes its own).`;

const OPTIONS = {
  'nproc-per-node': { type: 'string' },
  nnodes: { type: 'string' },
  'node-rank': { type: 'string' },
  'master-addr': { type: 'string' },
  'master-port': { type: 'string' },
  'grace-period': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** The launcher's settings, from its command line. */
interface LaunchConfig {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  masterAddr: string;
  masterPort: number;
  gracePeriodMs: number;
  script: string;
  scriptArgs: string[];
}

class UsageError extends Error {}

function integerOption(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  const text = values[name];
  if (text === undefined) return fallback;
  const value = Number(text);
  if (typeof text !== 'string' || text.trim() === '' || !Number.isInteger(value) || value < min || value > max) {
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got '${String(text)}'`);
  }
  return value;
}

/** Splits argv at the script: the launcher's options come before it, the script's after. */
function parseConfig(argv: string[]): LaunchConfig | null {
  let split = argv.length;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      split = i + 1;
      break;
    }
    if (!arg.startsWith('-')) {
      split = i;
      break;
    }
    const name = arg.replace(/^--?/, '').split('=')[0];
    const spec = (OPTIONS as Record<string, { type: string }>)[name];
    if (spec?.type === 'string' && !arg.includes('=')) i++; // its value
  }
  const own = argv.slice(0, argv[split - 1] === '--' ? split - 1 : split);
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs({ args: own, options: OPTIONS, allowPositionals: false, strict: true }));
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  if (values.help) return null;
  const [script, ...scriptArgs] = argv.slice(split);
  if (script === undefined) throw new UsageError('missing the script to run');
  const nnodes = integerOption(values, 'nnodes', 1, 1, 1 << 16);
  const config: LaunchConfig = {
    nprocPerNode: integerOption(values, 'nproc-per-node', 1, 1, 1 << 12),
    nnodes,
    nodeRank: integerOption(values, 'node-rank', 0, 0, nnodes - 1),
    masterAddr: (values['master-addr'] as string | undefined) ?? '127.0.0.1',
    masterPort: integerOption(values, 'master-port', 29500, 0, 65535),
    gracePeriodMs: integerOption(values, 'grace-period', 5, 0, 3600) * 1000,
    script,
    scriptArgs,
  };
  if (config.masterAddr === '') throw new UsageError('--master-addr must not be empty');
  if (config.masterPort === 0 && nnodes > 1) throw new UsageError('--master-port 0 (a free port) works on one node only');
  return config;
}

/** Writes a child's stream to ours, each line prefixed; a last line without newline is completed. */
function forwardLines(from: NodeJS.ReadableStream, to: NodeJS.WritableStream, prefix: string): void {
  let rest = '';
  from.setEncoding('utf8');
  from.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    if (lines.length) to.write(lines.map((l) => prefix + l + '\n').join(''));
  });
  from.on('end', () => {
    if (rest) to.write(prefix + rest + '\n');
    rest = '';
  });
}

function signalNumber(signal: NodeJS.Signals): number {
  return (constants.signals as Record<string, number>)[signal] ?? 1;
}

interface Worker {
  rank: number;
  child: ChildProcess;
  code: number | null;
  signal: NodeJS.Signals | null;
}

/**
 * Runs the launcher with these arguments (without `node` and the script name) and resolves with
 * the exit code to use: 0 when every worker succeeded; else the failed worker's exit code (128 +
 * the signal number when a signal ended it), or 2 for a bad command line. Leaves no worker
 * running.
 */
export async function launch(argv: string[]): Promise<number> {
  let config: LaunchConfig | null;
  try {
    config = parseConfig(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    process.stderr.write(`launch: ${e.message}\n${USAGE}\n`);
    return 2;
  }
  if (config === null) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const { nprocPerNode, nnodes, nodeRank, masterAddr, gracePeriodMs } = config;
  let token = process.env.IGNIS_STORE_TOKEN;
  if (!token) {
    if (nnodes > 1) {
      process.stderr.write('launch: set IGNIS_STORE_TOKEN to the same secret on every node when --nnodes > 1\n');
      return 2;
    }
    token = randomBytes(32).toString('hex');
  }

  // Node 0 serves the store for the whole job, so that it outlives any one worker.
  let server: NativeStoreServer | null = null;
  let masterPort = config.masterPort;
  if (nodeRank === 0) {
    try {
      server = new native.StoreServer(storeBindHost(masterAddr), masterPort, token);
    } catch (e) {
      process.stderr.write(`launch: cannot serve the store: ${(e as Error).message}\n`);
      return 1;
    }
    masterPort = server.port();
  }

  const workers: Worker[] = [];
  const exits: Promise<void>[] = [];
  let failure: Worker | null = null;
  let interrupted: NodeJS.Signals | null = null;
  let killTimer: NodeJS.Timeout | null = null;

  const stopAll = (signal: NodeJS.Signals) => {
    for (const w of workers) if (w.code === null && w.signal === null) w.child.kill(signal);
    if (killTimer === null) {
      killTimer = setTimeout(() => {
        for (const w of workers) if (w.code === null && w.signal === null) w.child.kill('SIGKILL');
      }, gracePeriodMs);
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted === null && failure === null) interrupted = signal;
    stopAll(signal);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  // A closed stdout or stderr (`... | head`) must not end the launcher and orphan the workers.
  const ignore = () => {};
  process.stdout.on('error', ignore);
  process.stderr.on('error', ignore);

  try {
    for (let local = 0; local < nprocPerNode; local++) {
      const rank = nodeRank * nprocPerNode + local;
      const env = {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(nnodes * nprocPerNode),
        LOCAL_RANK: String(local),
        LOCAL_WORLD_SIZE: String(nprocPerNode),
        GROUP_RANK: String(nodeRank),
        MASTER_ADDR: masterAddr,
        MASTER_PORT: String(masterPort),
        IGNIS_STORE_TOKEN: token,
        IGNIS_STORE_HOSTED: '1',
        IGNIS_LAUNCHER_PID: String(process.pid),
        IGNIS_NUM_THREADS: process.env.IGNIS_NUM_THREADS || String(Math.max(1, Math.floor(availableParallelism() / nprocPerNode))),
      };
      const child = spawn(process.execPath, [config.script, ...config.scriptArgs], {
        env,
        stdio: [local === 0 ? 'inherit' : 'ignore', 'pipe', 'pipe'],
      });
      const prefix = `[rank ${rank}] `;
      forwardLines(child.stdout!, process.stdout, prefix);
      forwardLines(child.stderr!, process.stderr, prefix);
      const worker: Worker = { rank, child, code: null, signal: null };
      const ended = (code: number | null, signal: NodeJS.Signals | null) => {
        if (worker.code !== null || worker.signal !== null) return;
        worker.code = code;
        worker.signal = signal;
        // The first worker to fail on its own stops the others; those then end by our signals.
        if ((code !== 0 || signal !== null) && failure === null && interrupted === null) {
          failure = worker;
          stopAll('SIGTERM');
        }
      };
      exits.push(
        new Promise<void>((resolve) => {
          child.on('error', (e) => {
            process.stderr.write(`launch: cannot start rank ${rank}: ${e.message}\n`);
            ended(127, null);
            resolve();
          });
          child.on('close', (code, signal) => {
            ended(code, signal);
            resolve();
          });
        }),
      );
      workers.push(worker);
    }
    await Promise.all(exits);
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.stdout.off('error', ignore);
    process.stderr.off('error', ignore);
    if (killTimer !== null) clearTimeout(killTimer);
    server?.close();
  }

  if (failure !== null) {
    const f: Worker = failure;
    const how = f.signal !== null ? `was killed by ${f.signal}` : `exited with code ${f.code}`;
    process.stderr.write(`launch: rank ${f.rank} (pid ${f.child.pid}) ${how}; stopped the other workers\n`);
    return f.signal !== null ? 128 + signalNumber(f.signal) : f.code!;
  }
  if (interrupted !== null) return 128 + signalNumber(interrupted);
  return 0;
}

if (require.main === module) {
  launch(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (e) => {
      process.stderr.write(`launch: ${(e as Error).stack ?? e}\n`);
      process.exitCode = 1;
    },
  );
}
