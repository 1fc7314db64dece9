"""optim peer: the AdamW steps of bench/optim.js with torch.optim.AdamW (CPU): a per-tensor loop,
foreach (multi-tensor) and fused where this torch build has it."""
import torch

from peer_common import args, emit, timeit


def main():
    a = args()
    torch.set_num_threads(a["threads"])
    g = torch.Generator().manual_seed(0)
    rows = []
    for case in a["cases"]:
        params = [torch.nn.Parameter(torch.rand(*s, generator=g) * 2 - 1) for s in case["shapes"]]
        for p in params:
            p.grad = torch.rand(*p.shape, generator=g) * 2 - 1
        for variant in ["for-loop", "foreach", "fused"]:
            kwargs = {"foreach": False} if variant == "for-loop" else {variant: True}
            name = f"{case['name']} {variant}"
            try:
                opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-2, **kwargs)
                seconds = timeit(opt.step, reps=a["reps"], warmup=2, min_sample_ms=0)["median"]
            except (TypeError, RuntimeError, ValueError) as e:  # fused needs a newer torch, or CUDA
                rows.append({"name": name, "seconds": None, "skipped": str(e).splitlines()[0]})
                continue
            rows.append({"name": name, "seconds": seconds})
    emit({"rows": rows, "torch": torch.__version__})


main()
