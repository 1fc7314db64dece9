"""LoRA peer: forward + backward of PEFT's LoRA linear formula with PyTorch (CPU) autograd, float32.

y = F.linear(x, W) + F.linear(F.linear(dropout(x), A), B) * scaling, dropout = identity (p = 0);
W without grad, x, A and B with grad; y.backward(dy) computes dx, dA and dB.
"""
import math

from peer_common import args, emit, time_cuda, timeit


def main_cuda(a):
    """The --device cuda case: x and W bfloat16, A and B float32, under autocast (as PEFT trains)."""
    import torch
    import torch.nn.functional as F

    rows = []
    for case in a["cases"]:
        n, fin, fout, r = case["n"], case["in"], case["out"], case["r"]
        scaling = a["alpha"] / r
        x = torch.randn(n, fin, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        w = (torch.randn(fout, fin, device="cuda") / math.sqrt(fin)).to(torch.bfloat16)
        lora_a = ((torch.rand(r, fin, device="cuda") * 2 - 1) / math.sqrt(fin)).requires_grad_()
        lora_b = (torch.randn(fout, r, device="cuda") * 0.01).requires_grad_()
        dy = torch.randn(n, fout, device="cuda", dtype=torch.bfloat16)

        def step():
            x.grad = lora_a.grad = lora_b.grad = None
            with torch.autocast("cuda", dtype=torch.bfloat16):
                y = F.linear(x, w) + F.linear(F.linear(x, lora_a), lora_b) * scaling
            y.backward(dy)

        rows.append({"name": case["name"], "seconds": time_cuda(torch, step)["median"]})
    emit({"rows": rows, "torch": torch.__version__})


def main():
    import torch
    import torch.nn.functional as F

    a = args()
    if a.get("device") == "cuda":
        return main_cuda(a)
    torch.set_num_threads(a["threads"])
    rows = []
    for case in a["cases"]:
        n, fin, fout, r = case["n"], case["in"], case["out"], case["r"]
        scaling = a["alpha"] / r
        x = torch.randn(n, fin, requires_grad=True)
        w = torch.randn(fout, fin) / math.sqrt(fin)
        lora_a = ((torch.rand(r, fin) * 2 - 1) / math.sqrt(fin)).requires_grad_()
        lora_b = (torch.randn(fout, r) * 0.01).requires_grad_()
        dy = torch.randn(n, fout)

        def step():
            x.grad = lora_a.grad = lora_b.grad = None
            y = F.linear(x, w) + F.linear(F.linear(x, lora_a), lora_b) * scaling
            y.backward(dy)

        rows.append({"name": case["name"], "seconds": timeit(step, reps=5, warmup=2)["median"]})
    emit({"rows": rows, "torch": torch.__version__})


main()
