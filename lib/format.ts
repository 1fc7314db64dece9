/** PyTorch-style printing: `tensor([[1.0000, 2.0000], ...], dtype=float64)`, summarised when large. */
import type { Tensor } from './tensor';

const EDGE = 3; // items shown at each end of a summarised dim
const SUMMARIZE_ABOVE = 1000; // elements

type Cell = number | boolean;

/** Formats a tensor as PyTorch prints it. */
export function format(t: Tensor): string {
  if (t.isDisposed) return `tensor(<disposed>, shape=[${t.shape.join(', ')}], dtype=${t.dtype})`;
  const summarize = t.numel > SUMMARIZE_ABOVE;
  const values = t.toArray();
  const flat: Cell[] = [];
  collect(values, t.ndim, summarize, flat);
  const fmt = numberFormatter(flat, t.dtype);
  const width = Math.max(0, ...flat.map((v) => fmt(v).length));
  const prefix = 'tensor(';
  let body = render(values, t.ndim, summarize, (v) => fmt(v).padStart(width), prefix.length);
  if (t.numel === 0) body = t.ndim === 1 ? '[]' : `[], size=(${t.shape.join(', ')})`;
  const extras: string[] = [];
  if (t.dtype !== 'float32' && t.dtype !== 'int64' && t.dtype !== 'bool') extras.push(`dtype=${t.dtype}`);
  if (t.device !== 'cpu') extras.push(`device='${t.device}'`);
  return `${prefix}${body}${extras.map((e) => `, ${e}`).join('')})`;
}

function shown<T>(items: T[], summarize: boolean): (T | null)[] {
  if (!summarize || items.length <= 2 * EDGE) return items;
  return [...items.slice(0, EDGE), null, ...items.slice(-EDGE)];
}

function collect(v: unknown, depth: number, summarize: boolean, out: Cell[]): void {
  if (depth === 0) {
    out.push(v as Cell);
    return;
  }
  for (const item of shown(v as unknown[], summarize)) if (item !== null) collect(item, depth - 1, summarize, out);
}

function render(v: unknown, depth: number, summarize: boolean, cell: (c: Cell) => string, indent: number): string {
  if (depth === 0) return cell(v as Cell);
  const items = shown(v as unknown[], summarize).map((item) =>
    item === null ? '...' : render(item, depth - 1, summarize, cell, indent + 1),
  );
  if (depth === 1) return `[${items.join(', ')}]`;
  const sep = ',' + '\n'.repeat(depth - 1) + ' '.repeat(indent + 1);
  return `[${items.join(sep)}]`;
}

function numberFormatter(values: Cell[], dtype: string): (v: Cell) => string {
  if (dtype === 'bool') return (v) => (v ? 'True' : 'False');
  if (dtype === 'int32' || dtype === 'int64') return (v) => String(v);
  const finite = (values as number[]).filter((v) => Number.isFinite(v));
  const abs = finite.map(Math.abs).filter((v) => v > 0);
  const allInts = finite.every((v) => Number.isInteger(v));
  const maxAbs = abs.length ? Math.max(...abs) : 0;
  const minAbs = abs.length ? Math.min(...abs) : 0;
  const scientific = maxAbs >= 1e8 || (abs.length > 0 && (maxAbs / minAbs > 1000 || minAbs < 1e-4));
  return (v) => {
    const x = v as number;
    if (Number.isNaN(x)) return 'nan';
    if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
    if (allInts && !scientific) return `${x.toFixed(0)}.`;
    if (scientific) return x.toExponential(4).replace(/e([+-])(\d)$/, 'e$10$2');
    return x.toFixed(4);
  };
}
