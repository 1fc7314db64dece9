/**
 * Starting real worlds of processes on loopback for the distributed tests: through the launcher,
 * or directly with the environment set (when a test must see what the workers print after a
 * peer died, which the launcher would stop them from doing).
 */
import { ChildProcess, spawn } from 'child_process';
import * as path from 'path';
import { dist } from '../../lib';

/** The compiled launcher script and worker scripts. */
export const LAUNCHER = path.join(__dirname, '..', '..', 'lib', 'dist', 'launch.js');
export function worker(name: string): string {
  return path.join(__dirname, 'workers', `${name}.js`);
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A started process and what it printed so far; `done` resolves when it exited. */
export interface Running {
  child: ChildProcess;
  stdout: () => string;
  done: Promise<Finished>;
}

/** Starts `node args...`; a process still running after `limitMs` is killed (and says so). */
export function start(args: string[], env: NodeJS.ProcessEnv = {}, limitMs = 50000): Running {
  const t0 = Date.now();
  const child = spawn(process.execPath, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => {
    stderr += `\n[test] killed after ${limitMs} ms\n`;
    child.kill('SIGKILL');
  }, limitMs);
  const done = new Promise<Finished>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
  return { child, stdout: () => stdout, done };
}

/** Runs `script` on `n` ranks through the launcher (on a free port). */
export function launch(n: number, script: string, scriptArgs: string[] = [], env: NodeJS.ProcessEnv = {}, launcherArgs: string[] = []): Running {
  return start([LAUNCHER, '--nproc-per-node', String(n), '--master-port', '0', ...launcherArgs, script, ...scriptArgs], env);
}

/**
 * Starts `n` ranks of `script` directly, with a store served by this process on a free port;
 * `envFor(rank)` adds to each one's environment. Returns the ranks and the store (close it after).
 */
export function world(n: number, script: string, scriptArgs: string[] = [], envFor: (rank: number) => NodeJS.ProcessEnv = () => ({})) {
  const token = `test-${process.pid}-${Date.now()}`;
  const store = new dist.TCPStore({ port: 0, isServer: true, token, timeoutMs: 10000 });
  const ranks = Array.from({ length: n }, (_, rank) =>
    start([script, ...scriptArgs], {
      RANK: String(rank),
      WORLD_SIZE: String(n),
      LOCAL_RANK: String(rank),
      LOCAL_WORLD_SIZE: String(n),
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(store.port),
      IGNIS_STORE_TOKEN: token,
      IGNIS_STORE_HOSTED: '1',
      ...envFor(rank),
    }),
  );
  return { ranks, store };
}

/**
 * A world of 3 ranks of `script loop 100000` with an 8 s collective timeout, whose rank 2 is
 * killed (SIGKILL) once every rank printed `ready`. Resolves when the two others have exited
 * (the store then closed), with their results, the time of the kill and the ranks.
 */
export async function killLastOfThree(script: string, ready: RegExp) {
  const { ranks, store } = world(3, script, ['loop', '100000'], () => ({ TIMEOUT_MS: '8000' }));
  await until(() => ranks.every((p) => ready.test(p.stdout())));
  const killedAt = Date.now();
  ranks[2].child.kill('SIGKILL');
  const survivors = await Promise.all([ranks[0].done, ranks[1].done]);
  store.close();
  return { survivors, killedAt, ranks };
}

/** Whether a process with this pid still runs. */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Lines of `text` that start with `prefix`. */
export function linesWith(text: string, prefix: RegExp): string[] {
  return text.split('\n').filter((l) => prefix.test(l));
}

/** Resolves once `cond()` holds (checked every 20 ms); throws after `ms`. */
export async function until(cond: () => boolean, ms = 20000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}
