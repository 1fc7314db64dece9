/** Writing files so that a reader never sees half of one. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fail } from '../errors';

/**
 * Writes `data` to `file` atomically: into a temporary file in the same folder, flushed to disk,
 * then renamed over `file`. On any error the temporary file is removed, `file` keeps its old
 * contents (or stays absent), and an ERR_IO names the file.
 */
export function writeFileAtomic(file: string, data: string | Uint8Array | (string | Uint8Array)[]): void {
  const temp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | null = null;
  try {
    fd = fs.openSync(temp, 'wx', 0o644);
    for (const chunk of Array.isArray(data) ? data : [data]) {
      if (typeof chunk === 'string') fs.writeSync(fd, chunk);
      else writeAll(fd, chunk);
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(temp, file);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(temp, { force: true });
    fail('ERR_IO', `cannot write ${file}: ${(e as Error).message}`);
  }
}

/** Writes every byte of `bytes` (writeSync may write less than asked for). */
function writeAll(fd: number, bytes: Uint8Array): void {
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done, bytes.length - done);
}

/** `file`'s contents parsed as JSON, or ERR_IO naming the file (missing, unreadable, or not JSON). */
export function readJson(file: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail('ERR_IO', `cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    fail('ERR_IO', `${file} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Writes `value` as indented JSON (with a final newline), atomically. */
export function writeJson(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}
