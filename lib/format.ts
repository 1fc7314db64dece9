/**
 * Printing as PyTorch prints (precision 4, summarised above 1000 elements with 3 items at each
 * end, lines of at most 80 characters): `tensor([[1.0000, 2.5000], ...], dtype=float64)`.
 * Only the dtype names differ: ignis writes `float64` where PyTorch writes `torch.float64`.
 */
import type { Tensor } from './tensor';

const PRECISION = 4;
const EDGE = 3; // items shown at each end of a summarised dim
const SUMMARIZE_ABOVE = 1000; // elements
const LINE_WIDTH = 80;
/** The dtypes PyTorch prints without a dtype suffix (when the tensor has elements). */
const IMPLIED_DTYPES = new Set(['float32', 'int64', 'bool']);

type Cell = number | boolean;

/** Formats a tensor as PyTorch prints it. */
export function format(t: Tensor): string {
  if (t.isDisposed) return `tensor(<disposed>, shape=[${t.shape.join(', ')}], dtype=${t.dtype})`;
  const prefix = 'tensor(';
  const suffixes: string[] = [];
  if (t.device !== 'cpu') suffixes.push(`device='${t.device}'`);
  let body: string;
  if (t.numel === 0) {
    if (t.ndim !== 1) suffixes.push(`size=(${t.shape.join(', ')})`);
    if (t.dtype !== 'float32') suffixes.push(`dtype=${t.dtype}`);
    body = '[]';
  } else {
    if (!IMPLIED_DTYPES.has(t.dtype)) suffixes.push(`dtype=${t.dtype}`);
    body = formatElements(t, prefix.length);
  }
  return addSuffixes(prefix + body, suffixes, prefix.length);
}

/** Appends t's elements, row-major, as JS numbers (booleans for bool). */
function appendCells(t: Tensor, out: Cell[]): void {
  if (t.dtype === 'bfloat16' || t.dtype === 'float16') {
    const wide = t.to('float32');
    appendCells(wide, out);
    wide.dispose();
    return;
  }
  const data = t.data();
  for (let i = 0; i < data.length; i++) {
    const v = data[i];
    out.push(t.dtype === 'bool' ? v !== 0 : Number(v));
  }
}

/**
 * The elements a summarised print shows (EDGE at each end of every longer dim), row-major,
 * read through views so that a large tensor is never copied whole.
 */
function appendShown(t: Tensor, out: Cell[]): void {
  if (t.ndim === 0) return appendCells(t, out);
  const size = t.shape[0];
  const parts = size > 2 * EDGE ? [t.narrow(0, 0, EDGE), t.narrow(0, size - EDGE, EDGE)] : [t];
  for (const part of parts) {
    if (t.ndim === 1) {
      appendCells(part, out);
    } else {
      for (let i = 0; i < part.shape[0]; i++) {
        const row = part.select(0, i);
        appendShown(row, out);
        row.dispose();
      }
    }
    if (part !== t) part.dispose();
  }
}

function formatElements(t: Tensor, indent: number): string {
  const summarize = t.numel > SUMMARIZE_ABOVE;
  // the shown elements form a tensor of `shape`; `elided` dims hide a middle after index EDGE - 1
  const elided = t.shape.map((size) => summarize && size > 2 * EDGE);
  const shape = t.shape.map((size, d) => (elided[d] ? 2 * EDGE : size));
  const cells: Cell[] = [];
  if (summarize) appendShown(t, cells);
  else appendCells(t, cells);
  const fmt = formatter(cells, t.dtype);
  const strides = shape.map((_, d) => shape.slice(d + 1).reduce((a, b) => a * b, 1));
  const items = (dim: number): (number | null)[] => {
    const all = Array.from({ length: shape[dim] }, (_, i) => i);
    return elided[dim] ? [...all.slice(0, EDGE), null, ...all.slice(EDGE)] : all;
  };

  const render = (dim: number, offset: number, depth: number): string => {
    if (dim === shape.length) return fmt.format(cells[offset]);
    if (dim === shape.length - 1) {
      const row = items(dim).map((i) => (i === null ? ' ...' : fmt.format(cells[offset + i])));
      return `[${wrapLines(row, fmt.width, depth)}]`;
    }
    const rows = items(dim).map((i) => (i === null ? '...' : render(dim + 1, offset + i * strides[dim], depth + 1)));
    const nested = shape.length - dim;
    return `[${rows.join(',' + '\n'.repeat(nested - 1) + ' '.repeat(depth + 1))}]`;
  };
  return render(0, 0, indent);
}

/** Cells of one innermost row, as many per line as fit in LINE_WIDTH after `indent`. */
function wrapLines(cells: string[], width: number, indent: number): string {
  const perLine = Math.max(1, Math.floor((LINE_WIDTH - indent) / (width + 2)));
  const lines: string[] = [];
  for (let i = 0; i < cells.length; i += perLine) lines.push(cells.slice(i, i + perLine).join(', '));
  return lines.join(',\n' + ' '.repeat(indent + 1));
}

function addSuffixes(text: string, suffixes: string[], indent: number): string {
  let out = text;
  let lastLine = text.length - text.lastIndexOf('\n') + 1;
  for (const suffix of suffixes) {
    if (lastLine + suffix.length + 2 > LINE_WIDTH) {
      out += `,\n${' '.repeat(indent)}${suffix}`;
      lastLine = indent + suffix.length;
    } else {
      out += `, ${suffix}`;
      lastLine += suffix.length + 2;
    }
  }
  return out + ')';
}

interface Formatter {
  width: number;
  format(v: Cell): string;
}

/**
 * PyTorch's choice of notation: integers, booleans as they are; floats as `1.` when every
 * value is an integer, else fixed `1.2500`; scientific when the nonzero finite magnitudes span
 * more than 1000x, exceed 1e8 or (non-integers) fall below 1e-4. The width comes from the
 * nonzero finite values only.
 */
function formatter(values: Cell[], dtype: string): Formatter {
  if (dtype === 'bool' || dtype === 'int32' || dtype === 'int64') {
    const text = (v: Cell) => (typeof v === 'boolean' ? (v ? 'True' : 'False') : String(v));
    const width = Math.max(1, ...values.map((v) => text(v).length));
    return { width, format: (v) => text(v).padStart(width) };
  }
  const nonzero = (values as number[]).filter((v) => Number.isFinite(v) && v !== 0);
  let width = 1;
  let mode: 'int' | 'fixed' | 'sci' = 'int';
  if (nonzero.length > 0) {
    const abs = nonzero.map(Math.abs);
    const max = Math.max(...abs);
    const min = Math.min(...abs);
    const ints = nonzero.every(Number.isInteger);
    if (max / min > 1000 || max > 1e8 || (!ints && min < 1e-4)) mode = 'sci';
    else mode = ints ? 'int' : 'fixed';
    const measure = mode === 'int' ? (v: number) => v.toFixed(0).length + 1 : (v: number) => text(v).length;
    width = Math.max(...nonzero.map(measure));
  }
  function text(v: number): string {
    if (Number.isNaN(v)) return 'nan';
    if (!Number.isFinite(v)) return v > 0 ? 'inf' : '-inf';
    const sign = v < 0 || Object.is(v, -0) ? '-' : '';
    if (mode === 'int') return `${sign}${Math.abs(v).toFixed(0)}.`;
    return sign + (mode === 'sci' ? exponential(Math.abs(v)) : fixed(Math.abs(v)));
  }
  return { width, format: (v) => text(v as number).padStart(width) };
}

// JS rounds decimal ties away from zero, Python (and so PyTorch) to even: 0.03125 prints as
// 0.0312. A tie is exact in binary, so 30 extra digits tell one apart from a near-tie.

/** `x.toFixed(PRECISION)` with ties to even, x >= 0. */
function fixed(x: number): string {
  const long = x.toFixed(PRECISION + 30);
  const cut = long.indexOf('.') + PRECISION + 1;
  return isTie(long.slice(cut)) ? toEven(long.slice(0, cut), x.toFixed(PRECISION)) : x.toFixed(PRECISION);
}

/** Python's `'{:.4e}'` (two-digit exponent at least, ties to even), x >= 0. */
function exponential(x: number): string {
  const long = x.toExponential(PRECISION + 30);
  const [mantissa, exp] = long.split('e');
  const cut = PRECISION + 2;
  let text = x.toExponential(PRECISION);
  if (isTie(mantissa.slice(cut))) text = toEven(`${mantissa.slice(0, cut)}e${exp}`, text);
  return text.replace(/e([+-])(\d)$/, 'e$10$2');
}

function isTie(rest: string): boolean {
  return /^50*$/.test(rest);
}

/** Of the truncated and the rounded-up text, the one whose last mantissa digit is even. */
function toEven(truncated: string, roundedUp: string): string {
  const lastDigit = (s: string) => Number(s.split('e')[0].slice(-1));
  return lastDigit(truncated) % 2 === 0 ? truncated : roundedUp;
}
