/**
 * Float64 references in plain TypeScript for the nn tests, written from the formulas of
 * PyTorch's layers and Hugging Face's LLaMA (not from the library's code). Not a test file.
 */
import { Tensor } from '../../lib';
import { Ref, refOf } from '../helpers';

/** x [..., in] @ w[out, in]^T + b[out]. */
export function refLinear(x: Ref, w: Ref, b?: Ref | null): Ref {
  const [outF, inF] = w.shape;
  const rows = x.data.length / inF;
  const data = new Float64Array(rows * outF);
  for (let r = 0; r < rows; r++) {
    for (let o = 0; o < outF; o++) {
      let s = b ? b.data[o] : 0;
      for (let i = 0; i < inF; i++) s += x.data[r * inF + i] * w.data[o * inF + i];
      data[r * outF + o] = s;
    }
  }
  return { shape: [...x.shape.slice(0, -1), outF], data };
}

/** Rows of n trailing elements: x / sqrt(mean(x^2) + eps) * w. */
export function refRmsNorm(x: Ref, w: Ref | null, eps: number): Ref {
  const n = x.shape[x.shape.length - 1];
  const data = new Float64Array(x.data.length);
  for (let start = 0; start < data.length; start += n) {
    let ss = 0;
    for (let i = 0; i < n; i++) ss += x.data[start + i] ** 2;
    const scale = 1 / Math.sqrt(ss / n + eps);
    for (let i = 0; i < n; i++) data[start + i] = x.data[start + i] * scale * (w ? w.data[i] : 1);
  }
  return { shape: x.shape.slice(), data };
}

/** HF LlamaRotaryEmbedding in float64: angle(p, i) = p / theta^(2i/dim), tables [cos|cos], [sin|sin]. */
export function refRopeTables(positions: number[], dim: number, theta: number): { cos: Float64Array; sin: Float64Array } {
  const half = dim / 2;
  const cos = new Float64Array(positions.length * dim);
  const sin = new Float64Array(positions.length * dim);
  positions.forEach((p, r) => {
    for (let i = 0; i < half; i++) {
      const angle = p / theta ** ((2 * i) / dim);
      cos[r * dim + i] = cos[r * dim + half + i] = Math.cos(angle);
      sin[r * dim + i] = sin[r * dim + half + i] = Math.sin(angle);
    }
  });
  return { cos, sin };
}

/** HF apply_rotary_pos_emb on one head vector v (length dim) at one position: v * cos + rotate_half(v) * sin. */
export function refRotate(v: Float64Array, cos: ArrayLike<number>, sin: ArrayLike<number>): Float64Array {
  const dim = v.length;
  const half = dim / 2;
  const out = new Float64Array(dim);
  for (let j = 0; j < dim; j++) {
    const rotated = j < half ? -v[j + half] : v[j - half];
    out[j] = v[j] * cos[j] + rotated * sin[j];
  }
  return out;
}

/** The weights of an attention layer as references. */
export interface AttentionWeights {
  q: Ref;
  k: Ref;
  v: Ref;
  o: Ref;
  qb?: Ref | null;
  kb?: Ref | null;
  vb?: Ref | null;
  ob?: Ref | null;
}

export interface AttentionShape {
  heads: number;
  kvHeads: number;
  headDim: number;
}

/**
 * HF LlamaAttention (eager) in float64: x [B, S, H]; cos, sin [B, S, headDim] (per batch row);
 * mask: additive, mask(b, h, i, j), or the causal mask when null. Query head h reads key/value
 * head floor(h / (heads / kvHeads)) (repeat_kv).
 */
export function refAttention(
  x: Ref,
  w: AttentionWeights,
  shape: AttentionShape,
  cos: Ref,
  sin: Ref,
  mask: ((b: number, h: number, i: number, j: number) => number) | null = null,
): Ref {
  const [B, S] = x.shape;
  const { heads, kvHeads, headDim: hd } = shape;
  const rep = heads / kvHeads;
  const q = refLinear(x, w.q, w.qb);
  const k = refLinear(x, w.k, w.kb);
  const v = refLinear(x, w.v, w.vb);
  const headVec = (t: Ref, width: number, b: number, s: number, h: number) =>
    t.data.slice(((b * S + s) * width + h * hd), ((b * S + s) * width + (h + 1) * hd));
  const trig = (t: Ref, b: number, s: number) => t.data.subarray((b * S + s) * hd, (b * S + s + 1) * hd);
  const merged = new Float64Array(B * S * heads * hd);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / rep);
      const qs = Array.from({ length: S }, (_, s) => refRotate(headVec(q, heads * hd, b, s, h), trig(cos, b, s), trig(sin, b, s)));
      const ks = Array.from({ length: S }, (_, s) => refRotate(headVec(k, kvHeads * hd, b, s, g), trig(cos, b, s), trig(sin, b, s)));
      const vs = Array.from({ length: S }, (_, s) => headVec(v, kvHeads * hd, b, s, g));
      for (let i = 0; i < S; i++) {
        const scores = new Float64Array(S);
        for (let j = 0; j < S; j++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += qs[i][d] * ks[j][d];
          scores[j] = dot / Math.sqrt(hd) + (mask ? mask(b, h, i, j) : j > i ? -Infinity : 0);
        }
        const top = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - top));
        const total = e.reduce((a, c) => a + c, 0);
        for (let d = 0; d < hd; d++) {
          let acc = 0;
          for (let j = 0; j < S; j++) acc += (e[j] / total) * vs[j][d];
          merged[((b * S + i) * heads + h) * hd + d] = acc;
        }
      }
    }
  }
  return refLinear({ shape: [B, S, heads * hd], data: merged }, w.o, w.ob);
}

/** The weights of an attention module as references. */
export function attentionWeights(attn: {
  q_proj: { weight: Tensor; bias: Tensor | null };
  k_proj: { weight: Tensor; bias: Tensor | null };
  v_proj: { weight: Tensor; bias: Tensor | null };
  o_proj: { weight: Tensor; bias: Tensor | null };
}): AttentionWeights {
  const opt = (t: Tensor | null) => (t ? refOf(t) : null);
  return {
    q: refOf(attn.q_proj.weight),
    k: refOf(attn.k_proj.weight),
    v: refOf(attn.v_proj.weight),
    o: refOf(attn.o_proj.weight),
    qb: opt(attn.q_proj.bias),
    kb: opt(attn.k_proj.bias),
    vb: opt(attn.v_proj.bias),
    ob: opt(attn.o_proj.bias),
  };
}

/** A [rows, dim] table repeated over a batch of B: [B, rows, dim]. */
export function repeatBatch(t: Ref, B: number): Ref {
  const data = new Float64Array(B * t.data.length);
  for (let b = 0; b < B; b++) data.set(t.data, b * t.data.length);
  return { shape: [B, ...t.shape], data };
}

export function refAdd(a: Ref, b: Ref): Ref {
  return { shape: a.shape.slice(), data: a.data.map((v, i) => v + b.data[i]) };
}

/** silu(v) = v * sigmoid(v). */
export const silu = (v: number): number => v / (1 + Math.exp(-v));

/** HF LlamaMLP: down(silu(gate(x)) * up(x)). */
export function refSwiGLU(x: Ref, gate: Ref, up: Ref, down: Ref): Ref {
  const g = refLinear(x, gate);
  const u = refLinear(x, up);
  const h = { shape: g.shape, data: g.data.map((v, i) => silu(v) * u.data[i]) };
  return refLinear(h, down);
}
