"""softmax peer: the cases of bench/softmax.js with numpy or PyTorch (CPU), float32."""
from peer_common import args, emit, timeit


def numpy_cases(shape):
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.uniform(-4, 4, shape).astype(np.float32)
    w = rng.uniform(0.5, 1.5, shape[-1:]).astype(np.float32)
    b = rng.uniform(-1, 1, shape[-1:]).astype(np.float32)

    def softmax():
        e = np.exp(x - x.max(-1, keepdims=True))
        return e / e.sum(-1, keepdims=True)

    def log_softmax():
        shifted = x - x.max(-1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))

    def layer_norm():
        mean = x.mean(-1, keepdims=True)
        var = x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-5) * w + b

    return {"softmax": softmax, "logSoftmax": log_softmax, "sum(-1)": lambda: x.sum(-1), "layerNorm": layer_norm}


def torch_cases(shape, threads):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    x = torch.rand(*shape) * 8 - 4
    w = torch.rand(shape[-1]) + 0.5
    b = torch.rand(shape[-1]) * 2 - 1
    return {
        "softmax": lambda: torch.softmax(x, -1),
        "logSoftmax": lambda: torch.log_softmax(x, -1),
        "sum(-1)": lambda: x.sum(-1),
        "layerNorm": lambda: F.layer_norm(x, shape[-1:], w, b),
    }


def main():
    a = args()
    fns = numpy_cases(a["shape"]) if a["lib"] == "numpy" else torch_cases(a["shape"], a["threads"])
    emit({"rows": [{"name": c, "seconds": timeit(fns[c])["median"]} for c in a["cases"]]})


main()
