/** Command-line flags: parsing with node:util's parseArgs and checked conversions. */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { IgnisError } from '../errors';

/** Flags as parseArgs wants them, all strings or booleans. */
export type Flags = NonNullable<ParseArgsConfig['options']>;

/** Parses `argv` against `flags`; unknown flags and stray arguments are ERR_ARG with the usage. */
export function parse(argv: string[], flags: Flags, usage: string): Record<string, string | boolean | undefined> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: { ...flags, help: { type: 'boolean', short: 'h' } }, allowPositionals: false, strict: true });
  } catch (e) {
    throw new IgnisError(`${(e as Error).message}\n\n${usage}`, 'ERR_ARG');
  }
  if (parsed.values.help) {
    process.stdout.write(usage + '\n');
    process.exit(0);
  }
  return parsed.values as Record<string, string | boolean | undefined>;
}

/** A number flag, or ERR_ARG naming it. */
export function num(v: string | boolean | undefined, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== 'string' || v.trim() === '' || !Number.isFinite(n)) throw new IgnisError(`--${name} must be a number, got ${String(v)}`, 'ERR_ARG');
  return n;
}

