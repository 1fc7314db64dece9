"""Fine-tuning peer: one LoRA training step of a small LLaMA in PyTorch (CPU, or the GPU with
device cuda), float32.

The model is Hugging Face's LLaMA written out in plain PyTorch (RMSNorm, rotary embeddings with
rotate_half, causal attention with grouped-query heads, SwiGLU MLP), with PEFT's LoRA formula on
the chosen projections: base(x) + lora_B(lora_A(dropout(x))) * alpha / r, base weights frozen,
AdamW on the adapters. A step is forward, cross-entropy, backward and the optimizer step.
"""
import math

from peer_common import args, emit, time_cuda, timeit


def main():
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    a = args()
    torch.set_num_threads(a["threads"])
    torch.manual_seed(0)
    c = a["config"]
    d, heads, kv_heads, layers = c["hidden"], c["heads"], c["kvHeads"], c["layers"]
    head_dim = d // heads
    scaling = a["alpha"] / a["r"]

    class LoraLinear(nn.Module):
        def __init__(self, fin, fout, lora):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(fout, fin) * 0.02, requires_grad=False)
            self.lora = lora
            if lora:
                self.lora_A = nn.Linear(fin, a["r"], bias=False)
                self.lora_B = nn.Linear(a["r"], fout, bias=False)
                nn.init.zeros_(self.lora_B.weight)
                self.dropout = nn.Dropout(a["dropout"])

        def forward(self, x):
            y = F.linear(x, self.weight)
            if self.lora:
                y = y + self.lora_B(self.lora_A(self.dropout(x))) * scaling
            return y

    class RMSNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(d), requires_grad=False)

        def forward(self, x):
            return self.weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6))

    def rotate_half(x):
        h = x.shape[-1] // 2
        return torch.cat((-x[..., h:], x[..., :h]), dim=-1)

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            t = a["targets"]
            self.q_proj = LoraLinear(d, heads * head_dim, "q_proj" in t)
            self.k_proj = LoraLinear(d, kv_heads * head_dim, "k_proj" in t)
            self.v_proj = LoraLinear(d, kv_heads * head_dim, "v_proj" in t)
            self.o_proj = LoraLinear(heads * head_dim, d, "o_proj" in t)
            self.gate_proj = LoraLinear(d, c["intermediate"], "gate_proj" in t)
            self.up_proj = LoraLinear(d, c["intermediate"], "up_proj" in t)
            self.down_proj = LoraLinear(c["intermediate"], d, "down_proj" in t)
            self.input_layernorm = RMSNorm()
            self.post_attention_layernorm = RMSNorm()

        def forward(self, x, cos, sin, mask):
            b, n, _ = x.shape
            h = self.input_layernorm(x)
            q = self.q_proj(h).view(b, n, heads, head_dim).transpose(1, 2)
            k = self.k_proj(h).view(b, n, kv_heads, head_dim).transpose(1, 2)
            v = self.v_proj(h).view(b, n, kv_heads, head_dim).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(heads // kv_heads, dim=1)
            v = v.repeat_interleave(heads // kv_heads, dim=1)
            # torch 1.13 has no scaled_dot_product_attention: HF's eager attention
            scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + mask
            attn = torch.softmax(scores, dim=-1) @ v
            x = x + self.o_proj(attn.transpose(1, 2).reshape(b, n, d))
            h = self.post_attention_layernorm(x)
            return x + self.down_proj(F.silu(self.gate_proj(h)) * self.up_proj(h))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed_tokens = nn.Embedding(c["vocab"], d)
            self.embed_tokens.weight.requires_grad_(False)
            self.layers = nn.ModuleList([Block() for _ in range(layers)])
            self.norm = RMSNorm()
            self.lm_head = LoraLinear(d, c["vocab"], False)

        def forward(self, ids, labels):
            n, dev = ids.shape[1], ids.device
            inv = 1.0 / (10000 ** (torch.arange(0, head_dim, 2, device=dev).float() / head_dim))
            freqs = torch.outer(torch.arange(n, device=dev).float(), inv)
            emb = torch.cat((freqs, freqs), dim=-1)
            cos, sin = emb.cos(), emb.sin()
            mask = torch.full((n, n), float("-inf"), device=dev).triu(1)
            x = self.embed_tokens(ids)
            for layer in self.layers:
                x = layer(x, cos, sin, mask)
            logits = self.lm_head(self.norm(x))
            return F.cross_entropy(logits[:, :-1].reshape(-1, c["vocab"]), labels[:, 1:].reshape(-1))

    device = a.get("device", "cpu")
    model = Model().to(device)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    ids = torch.randint(0, c["vocab"], (a["batch"], a["seqLen"]), device=device)

    def step():
        loss = model(ids, ids)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    if device == "cuda":
        seconds = time_cuda(torch, step, reps=a["reps"], warmup=2, min_sample_ms=0)["median"]
    else:
        seconds = timeit(step, reps=a["reps"], warmup=2, min_sample_ms=0)["median"]
    emit({"seconds": seconds, "trainable": sum(p.numel() for p in params), "torch": torch.__version__})


main()
