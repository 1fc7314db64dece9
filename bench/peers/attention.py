"""Attention peer: causal scaled dot-product attention with PyTorch (CPU), float32, [B, H, L, D]
inputs with grad: the forward alone (no grad) and forward + backward. With "device": "cuda":
bfloat16 on the GPU, forward + backward only (timed with CUDA events).

torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True) where PyTorch has it
(2.0+); PyTorch 1.13 has its predecessor F._scaled_dot_product_attention(q, k, v, None, 0.0,
False, True), the same composed math (matmul, causal mask, softmax, matmul).
"""
from peer_common import args, emit, time_cuda, timeit


def main():
    import torch
    import torch.nn.functional as F

    a = args()
    if a.get("device") == "cuda":
        return main_cuda(torch, F, a)
    torch.set_num_threads(a["threads"])
    if hasattr(F, "scaled_dot_product_attention"):
        sdpa, api = (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)), "F.scaled_dot_product_attention"
    else:
        sdpa, api = (lambda q, k, v: F._scaled_dot_product_attention(q, k, v, None, 0.0, False, True)[0]), "F._scaled_dot_product_attention"
    rows = []
    for case in a["cases"]:
        b, h, l, d = case["B"], case["H"], case["L"], case["D"]
        q, k, v = (torch.randn(b, h, l, d, requires_grad=True) for _ in range(3))
        dout = torch.randn(b, h, l, d)

        def forward():
            with torch.no_grad():
                sdpa(q, k, v)

        def step():
            q.grad = k.grad = v.grad = None
            sdpa(q, k, v).backward(dout)

        rows.append({
            "name": case["name"],
            "forward": timeit(forward, reps=5, warmup=2)["median"],
            "step": timeit(step, reps=5, warmup=2)["median"],
        })
    emit({"rows": rows, "torch": torch.__version__, "api": api})


def main_cuda(torch, F, a):
    rows = []
    for case in a["cases"]:
        b, h, l, d = case["B"], case["H"], case["L"], case["D"]
        q, k, v = (torch.randn(b, h, l, d, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        dout = torch.randn(b, h, l, d, device="cuda", dtype=torch.bfloat16)

        def step():
            q.grad = k.grad = v.grad = None
            F.scaled_dot_product_attention(q, k, v, is_causal=True).backward(dout)

        rows.append({"name": case["name"], "step": time_cuda(torch, step, reps=5)["median"]})
    emit({"rows": rows, "torch": torch.__version__, "api": "F.scaled_dot_product_attention"})


main()
