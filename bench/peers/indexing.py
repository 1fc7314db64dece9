"""indexing peer: the cases of bench/indexing.js with PyTorch (CPU)."""
import torch

from peer_common import args, emit, timeit


def main():
    a = args()
    torch.set_num_threads(a["threads"])
    g = torch.Generator().manual_seed(0)
    rand = lambda shape: torch.rand(*shape, generator=g) * 2 - 1
    rows = []
    for case in a["cases"]:
        kind = case["kind"]
        if kind == "embedding":
            weight = rand(case["weight"])
            idx = torch.randint(0, case["weight"][0], case["indices"], generator=g)
            fn = lambda: torch.nn.functional.embedding(idx, weight)
        elif kind == "gather":
            src = rand(case["input"])
            idx = torch.randint(0, case["input"][case["dim"]], case["index"], generator=g)
            fn = lambda: torch.gather(src, case["dim"], idx)
        else:
            tensors = [rand(s) for s in case["shapes"]]
            if case.get("transposed"):
                tensors = [t.t().contiguous().t() for t in tensors]
            op = torch.cat if kind == "cat" else torch.stack
            fn = lambda: op(tensors, case["dim"])
        rows.append({"name": case["name"], "seconds": timeit(fn)["median"]})
    emit({"rows": rows, "torch": torch.__version__})


main()
