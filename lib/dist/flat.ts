/**
 * Flat buffers: tensors of one dtype and device laid end to end in one contiguous tensor, so
 * that one collective moves many small tensors (gradient buckets, parameter broadcasts).
 */
import { Device } from '../device';
import { DType, dtypeSize } from '../dtype';
import { keep } from '../memory';
import { core } from '../native';
import { empty } from '../ops/creation';
import { Tensor } from '../tensor';
import { broadcast } from './collectives';
import { rank } from './group';

/** @internal A contiguous buffer holding tensors of these shapes end to end, then `extra` more elements. */
export class FlatBuffer {
  readonly buffer: Tensor;
  /** One view per tensor, of its shape, into {@link buffer}. */
  readonly views: Tensor[];
  /** The `extra` elements after the tensors' (an empty view when none). */
  readonly tail: Tensor;

  constructor(
    shapes: readonly (readonly number[])[],
    readonly dtype: DType,
    readonly device: Device,
    extra = 0,
  ) {
    const sizes = shapes.map((s) => s.reduce((a, b) => a * b, 1));
    const total = sizes.reduce((a, b) => a + b, 0);
    this.buffer = keep(empty([total + extra], { dtype, device }));
    let offset = 0;
    this.views = shapes.map((shape, i) => {
      const view = keep(this.buffer.narrow(0, offset, sizes[i]).view(shape.slice()));
      offset += sizes[i];
      return view;
    });
    this.tail = keep(this.buffer.narrow(0, total, extra));
  }

  /** Bytes of the buffer. */
  get bytes(): number {
    return this.buffer.numel * dtypeSize(this.dtype);
  }

  /** Copies tensors[i] into view i (a null tensor gives zeros). */
  pack(tensors: readonly (Tensor | null)[], op: string): void {
    tensors.forEach((t, i) => {
      if (t === null) core.fill(this.views[i].handle(op), 0);
      else core.copyInto(this.views[i].handle(op), t.handle(op));
    });
  }

  /** Copies view i into tensors[i]. */
  unpack(tensors: readonly Tensor[], op: string): void {
    tensors.forEach((t, i) => core.copyInto(t.handle(op), this.views[i].handle(op)));
  }

  dispose(): void {
    for (const v of this.views) v.dispose();
    this.tail.dispose();
    this.buffer.dispose();
  }
}

/**
 * Splits `tensors` into groups of one dtype and device each, in order, each of at most
 * `capBytes` (a tensor larger than that is a group of its own): a group is closed when the next
 * tensor of its kind would overflow it, so tensors of several kinds may interleave.
 */
export function groupBySize(tensors: readonly Tensor[], capBytes: number): Tensor[][] {
  const groups: Tensor[][] = [];
  const open = new Map<string, { members: Tensor[]; bytes: number }>();
  for (const t of tensors) {
    const bytes = t.numel * dtypeSize(t.dtype);
    const kind = `${t.dtype} ${t.device}`;
    let current = open.get(kind);
    if (current !== undefined && current.bytes + bytes > capBytes && current.members.length > 0) current = undefined;
    if (current === undefined) {
      current = { members: [], bytes: 0 };
      open.set(kind, current);
      groups.push(current.members);
    }
    current.members.push(t);
    current.bytes += bytes;
  }
  return groups;
}

/**
 * Copies every tensor of rank `src` into the same tensor on every rank (same shapes and dtypes
 * everywhere), one broadcast per group of at most `capBytes`, and waits for them.
 */
export function broadcastTensors(tensors: readonly Tensor[], src: number, capBytes: number, op: string): void {
  for (const members of groupBySize(tensors, capBytes)) {
    const flat = new FlatBuffer(
      members.map((t) => t.shape),
      members[0].dtype,
      members[0].device,
    );
    try {
      const isSource = rank() === src;
      if (isSource) flat.pack(members, op);
      broadcast(flat.buffer, { src }).wait();
      if (!isSource) flat.unpack(members, op);
    } finally {
      flat.dispose();
    }
  }
}
