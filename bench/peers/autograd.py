"""autograd peer: the training steps of bench/autograd.js with PyTorch (CPU)."""
import torch
import torch.nn.functional as F

from peer_common import args, emit, timeit


def make_step(case, g):
    shape = case["shape"]
    rows, cols = (shape + [1])[:2]
    grad = case.get("grad", True)

    def leaf(s, lo=-1.0, hi=1.0):
        return (torch.rand(*s, generator=g) * (hi - lo) + lo).requires_grad_(grad)

    kind = case["kind"]
    if kind == "add":
        params = [leaf(shape), leaf(shape)]
        if not grad:
            return lambda: torch.add(params[0], params[1])
        forward = lambda: torch.add(params[0], params[1]).sum()
    elif kind == "chain":
        params = [leaf(shape), leaf([cols], 0.5, 1.5)]

        def forward():
            x, w = params
            return torch.softmax(x * w + 1, -1).mul(x).sub(w).div(2).pow(2).sum(1).mean()
    elif kind == "softmax":
        params = [leaf(shape, -4, 4)]
        forward = lambda: (torch.softmax(params[0], -1) * params[0]).sum()
    elif kind == "layerNorm":
        params = [leaf(shape), leaf([cols], 0.5, 1.5), leaf([cols])]
        forward = lambda: (F.layer_norm(params[0], [cols], params[1], params[2]) * params[0]).sum()
    elif kind == "rmsNorm":
        params = [leaf(shape), leaf([cols], 0.5, 1.5)]

        def forward():
            x, w = params
            return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * w * x).sum()
    elif kind == "crossEntropy":
        params = [leaf(shape, -4, 4)]
        target = torch.randint(0, cols, [rows], generator=g)
        forward = lambda: F.cross_entropy(params[0], target)
    elif kind == "embedding":
        params = [leaf(shape)]
        indices = torch.randint(0, rows, [case["indices"]], generator=g)
        forward = lambda: (F.embedding(indices, params[0]) * 2).sum()
    elif kind == "unary":
        params = [leaf(shape, -4, 4)]
        f = {"gelu": F.gelu, "silu": F.silu, "tanh": torch.tanh}[case["op"]]
        forward = lambda: f(params[0]).sum()
    elif kind == "linear":
        params = [leaf(shape), leaf([case["out"], shape[-1]]), leaf([case["out"]])]
        forward = lambda: F.linear(*params).sum()
    elif kind == "matmul":
        params = [leaf(shape), leaf([shape[-1], case["out"]])]
        forward = lambda: torch.matmul(*params).sum()

    def step():
        forward().backward()
        for p in params:
            p.grad = None

    return step


def main():
    a = args()
    torch.set_num_threads(a["threads"])
    g = torch.Generator().manual_seed(0)
    rows = [{"name": c["name"], "seconds": timeit(make_step(c, g))["median"]} for c in a["cases"]]
    emit({"rows": rows, "torch": torch.__version__})


main()
