"""nn peer: the cases of bench/nn.js with PyTorch (CPU) eager modules, float32.

Attention and the decoder block compute what Hugging Face's LLaMA layers compute (eager path):
rotary tables from inverse frequencies, rotate_half, key/value heads repeated for grouped-query
attention, an additive causal mask, softmax in float32, SwiGLU, pre-norm RMSNorm residuals.
"""
import math

from peer_common import args, emit, timeit


def build(cfg, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    hidden, heads, kv, inter = cfg["hidden"], cfg["heads"], cfg["kvHeads"], cfg["intermediate"]
    hd = hidden // heads
    rep = heads // kv

    class RMSNorm(nn.Module):
        def __init__(self, n, eps=1e-6):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(n))
            self.eps = eps

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))

    def rotate_half(x):
        x1, x2 = x[..., : x.shape[-1] // 2], x[..., x.shape[-1] // 2 :]
        return torch.cat((-x2, x1), dim=-1)

    class Rotary(nn.Module):
        def __init__(self, dim, base=10000.0):
            super().__init__()
            inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
            self.register_buffer("inv_freq", inv, persistent=False)

        def forward(self, positions):
            freqs = positions.float()[:, :, None] * self.inv_freq[None, None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            return emb.cos(), emb.sin()

    class Attention(nn.Module):
        def __init__(self):
            super().__init__()
            self.q_proj = nn.Linear(hidden, heads * hd, bias=False)
            self.k_proj = nn.Linear(hidden, kv * hd, bias=False)
            self.v_proj = nn.Linear(hidden, kv * hd, bias=False)
            self.o_proj = nn.Linear(heads * hd, hidden, bias=False)

        def forward(self, x, cos, sin):
            b, s, _ = x.shape
            q = self.q_proj(x).view(b, s, heads, hd).transpose(1, 2)
            k = self.k_proj(x).view(b, s, kv, hd).transpose(1, 2)
            v = self.v_proj(x).view(b, s, kv, hd).transpose(1, 2)
            cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k[:, :, None].expand(b, kv, rep, s, hd).reshape(b, heads, s, hd)
            v = v[:, :, None].expand(b, kv, rep, s, hd).reshape(b, heads, s, hd)
            mask = torch.full((s, s), float("-inf")).triu(1)
            scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd) + mask
            probs = torch.softmax(scores, dim=-1, dtype=torch.float32)
            out = torch.matmul(probs, v).transpose(1, 2).reshape(b, s, heads * hd)
            return self.o_proj(out)

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.gate_proj = nn.Linear(hidden, inter, bias=False)
            self.up_proj = nn.Linear(hidden, inter, bias=False)
            self.down_proj = nn.Linear(inter, hidden, bias=False)

        def forward(self, x):
            return self.down_proj(torch.nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.self_attn = Attention()
            self.mlp = MLP()
            self.input_layernorm = RMSNorm(hidden)
            self.post_attention_layernorm = RMSNorm(hidden)

        def forward(self, x, cos, sin):
            h = x + self.self_attn(self.input_layernorm(x), cos, sin)
            return h + self.mlp(self.post_attention_layernorm(h))

    small, large, block, rope = nn.Linear(64, 64), nn.Linear(1024, 1024), Block(), Rotary(hd)
    xs, xl = torch.randn(1, 64), torch.randn(256, 1024)
    x = torch.randn(cfg["batch"], cfg["seq"], hidden)
    positions = torch.arange(cfg["seq"])[None]
    return {
        "linear small": lambda: small(xs),
        "linear large": lambda: large(xl),
        "attention": lambda: block.self_attn(x, *rope(positions)),
        "decoder block": lambda: block(x, *rope(positions)),
    }


def main():
    import torch

    a = args()
    fns = build(a["cfg"], a["threads"])
    with torch.no_grad():
        rows = [{"name": c, "seconds": timeit(fns[c])["median"]} for c in a["cases"]]
    emit({"rows": rows})


main()
