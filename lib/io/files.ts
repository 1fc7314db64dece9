/**
 * File plumbing shared by the readers and writers: atomic writes (a temporary file in the same
 * folder, fsync, rename) and JSON reading, with every failure as ERR_IO naming the file.
 * @internal
 */
import * as fs from 'fs';
import * as path from 'path';
import { fail, IgnisError } from '../errors';

/** ERR_IO for a failed file-system call: `op: <what> <file>: <the system's reason>`. An IgnisError passes through. */
export function ioError(op: string, what: string, file: string, err: unknown): never {
  if (err instanceof IgnisError) throw err;
  const reason = err instanceof Error ? err.message : String(err);
  fail('ERR_IO', `${op}: ${what} ${file}: ${reason}`);
}

/** Calls `fn`, turning a system error into ERR_IO (see {@link ioError}). */
export function io<T>(op: string, what: string, file: string, fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    ioError(op, what, file, err);
  }
}

/** The most bytes one read or write call is given (the system calls take at most 2 GiB). */
export const IO_CHUNK = 1 << 30;

/** Writes every byte of `data` at the file's current position (writeSync may write less than asked). */
export function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.byteLength) done += fs.writeSync(fd, data, done, Math.min(data.byteLength - done, IO_CHUNK));
}

/**
 * Writes `file` atomically: `write(fd)` fills a temporary file in the same folder, which is
 * flushed to disk and renamed over `file`. If anything throws, the temporary file is removed
 * and `file` is left as it was (absent, or its previous content). System errors become ERR_IO.
 */
export function writeFileAtomic(op: string, file: string, write: (fd: number) => void): void {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`);
  const fd = io(op, 'cannot create a temporary file for', file, () => fs.openSync(tmp, 'wx'));
  let open = true;
  try {
    write(fd);
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    open = false;
    fs.renameSync(tmp, file);
  } catch (err) {
    if (open) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    ioError(op, 'cannot write', file, err);
  }
  syncDir(dir);
}

/** Flushes a folder's entries (the rename) to disk; some file systems cannot, which is harmless here. */
function syncDir(dir: string): void {
  let fd: number | null = null;
  try {
    fd = fs.openSync(dir, 'r');
    fs.fsyncSync(fd);
  } catch {
    // best effort: the file itself is complete whether or not the folder entry is flushed yet
  } finally {
    if (fd !== null) fs.closeSync(fd);
  }
}

/** Writes `text` (UTF-8) to `file` atomically. */
export function writeTextAtomic(op: string, file: string, text: string): void {
  writeFileAtomic(op, file, (fd) => writeAll(fd, Buffer.from(text, 'utf8')));
}

/** Writes `value` as indented JSON with a final newline to `file` atomically. */
export function writeJsonAtomic(op: string, file: string, value: unknown): void {
  writeTextAtomic(op, file, `${JSON.stringify(value, null, 2)}\n`);
}

/**
 * A dict as Python's `json.dumps(d, indent=2, sort_keys=True)` writes it for Hugging Face
 * files: keys sorted, indent 2, a newline at the end, and the top-level `floatKeys` written with
 * a decimal point when integral (10000.0), as Python writes floats.
 */
export function pythonJson(dict: Record<string, unknown>, floatKeys: readonly string[] = []): string {
  const sorted = Object.fromEntries(Object.keys(dict).sort().map((k) => [k, dict[k]]));
  let text = JSON.stringify(sorted, null, 2);
  for (const key of floatKeys) text = text.replace(new RegExp(`^( {2}${JSON.stringify(key)}: -?\\d+)(,?)$`, 'm'), '$1.0$2');
  return `${text}\n`;
}

/** The parsed JSON of `file`; ERR_IO if it is missing, unreadable or not JSON. */
export function readJson(op: string, file: string): unknown {
  const text = io(op, 'cannot read', file, () => fs.readFileSync(file, 'utf8'));
  try {
    return JSON.parse(text);
  } catch (err) {
    fail('ERR_IO', `${op}: ${file} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Whether `p` is an existing regular file. */
export function isFile(p: string): boolean {
  return fs.statSync(p, { throwIfNoEntry: false })?.isFile() ?? false;
}

/** Checks that `dir` is an existing folder (ERR_IO naming it otherwise). */
export function checkDir(op: string, dir: unknown): string {
  if (typeof dir !== 'string' || dir === '') fail('ERR_ARG', `${op}: expected a folder path, got ${String(dir)}`);
  const stat = fs.statSync(dir, { throwIfNoEntry: false });
  if (stat === undefined) fail('ERR_IO', `${op}: folder ${dir} does not exist`);
  if (!stat.isDirectory()) fail('ERR_IO', `${op}: ${dir} is not a folder`);
  return dir;
}

/** Checks that `file` exists (ERR_IO naming it otherwise). */
export function checkFile(op: string, file: string, what = 'file'): string {
  if (!isFile(file)) fail('ERR_IO', `${op}: ${what} ${file} does not exist`);
  return file;
}
