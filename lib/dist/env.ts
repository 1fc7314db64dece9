/**
 * The environment a launched worker reads, as torchrun sets it (`RANK`, `WORLD_SIZE`,
 * `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`), plus ignis's own:
 * `IGNIS_STORE_TOKEN` (the secret every store client presents) and `IGNIS_STORE_HOSTED=1` (the
 * launcher serves the store, so rank 0 does not).
 */
import { fail } from '../errors';

export interface LaunchEnv {
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  masterAddr: string;
  /** 0 when a single process picks a free port for its own store. */
  masterPort: number;
  token: string;
  storeHosted: boolean;
}

function integer(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const text = env[name];
  if (text === undefined || text === '') return undefined;
  const value = Number(text);
  if (!Number.isInteger(value) || value < min || value > max) {
    fail('ERR_ARG', `dist: ${name} must be an integer in [${min}, ${max}], got '${text}'`);
  }
  return value;
}

/**
 * Reads the launch environment. Without `WORLD_SIZE` the process is a world of one (rank 0, its
 * own store on a free loopback port), so a script also runs unlaunched.
 */
export function readLaunchEnv(env: NodeJS.ProcessEnv = process.env): LaunchEnv {
  const worldSize = integer(env, 'WORLD_SIZE', 1, 1 << 24) ?? 1;
  const rank = integer(env, 'RANK', 0, worldSize - 1);
  if (rank === undefined && worldSize > 1) fail('ERR_ARG', 'dist: WORLD_SIZE is set but RANK is not');
  const masterPort = integer(env, 'MASTER_PORT', 0, 65535);
  if (worldSize > 1 && !masterPort) fail('ERR_ARG', 'dist: MASTER_PORT must be set (1..65535) when WORLD_SIZE > 1');
  const localWorldSize = integer(env, 'LOCAL_WORLD_SIZE', 1, worldSize) ?? worldSize;
  return {
    rank: rank ?? 0,
    worldSize,
    localRank: integer(env, 'LOCAL_RANK', 0, localWorldSize - 1) ?? rank ?? 0,
    localWorldSize,
    masterAddr: env.MASTER_ADDR || '127.0.0.1',
    masterPort: masterPort ?? 0,
    token: env.IGNIS_STORE_TOKEN ?? '',
    storeHosted: env.IGNIS_STORE_HOSTED === '1',
  };
}

/** Where a store serving `masterAddr` listens: loopback only for a loopback address, else everywhere. */
export function storeBindHost(masterAddr: string): string {
  const loopback = masterAddr === 'localhost' || masterAddr === '::1' || /^127\./.test(masterAddr);
  return loopback ? masterAddr.replace(/^localhost$/, '127.0.0.1') : '';
}
