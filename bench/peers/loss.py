"""loss peer: the cases of bench/loss.js with PyTorch (CPU)."""
import torch
import torch.nn.functional as F

from peer_common import args, emit, timeit

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def main():
    a = args()
    torch.set_num_threads(a["threads"])
    g = torch.Generator().manual_seed(0)
    rows = []
    for case in a["cases"]:
        x = (torch.rand(*case["input"], generator=g) * 8 - 4).to(DTYPES[case.get("dtype", "float32")])
        if case["kind"] == "crossEntropy":
            classes = case["input"][1]
            target_shape = case["input"][:1] + case["input"][2:]
            target = torch.randint(0, classes, target_shape, generator=g)
            opts = case.get("opts", {})
            fn = lambda: F.cross_entropy(x, target, reduction=opts.get("reduction", "mean"), label_smoothing=opts.get("labelSmoothing", 0.0))
        else:
            y = torch.rand(*case["target"], generator=g)
            fn = lambda: F.mse_loss(x, y.expand_as(x), reduction=case["reduction"])
        try:
            seconds = timeit(fn)["median"]
        except RuntimeError as e:  # a dtype this torch build lacks on CPU
            seconds = None
        rows.append({"name": case["name"], "seconds": seconds})
    emit({"rows": rows, "torch": torch.__version__})


main()
