"""Peer timings for bench/elementwise.js: numpy or PyTorch (CPU, eager), per the 'peer' argument."""
import peer_common as pc

args = pc.args()
peer = args["peer"]
large, small = args["large"], args["small"]
out = {}

if peer == "numpy":
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal(large, dtype=np.float32)
    b = rng.standard_normal(large, dtype=np.float32)
    out["add_large"] = pc.timeit(lambda: np.add(a, b))["median"]
    out["exp_large"] = pc.timeit(lambda: np.exp(a))["median"]
    out["tanh_large"] = pc.timeit(lambda: np.tanh(a))["median"]
    x = rng.standard_normal(small, dtype=np.float32)
    y = rng.standard_normal(small, dtype=np.float32)
    out["add_small"] = pc.timeit(lambda: np.add(x, y), min_sample_ms=50)["median"]
else:
    import torch

    torch.set_num_threads(args["threads"])
    a = torch.randn(large)
    b = torch.randn(large)
    out["add_large"] = pc.timeit(lambda: torch.add(a, b))["median"]
    out["exp_large"] = pc.timeit(lambda: torch.exp(a))["median"]
    out["gelu_large"] = pc.timeit(lambda: torch.nn.functional.gelu(a))["median"]
    x = torch.randn(small)
    y = torch.randn(small)
    out["add_small"] = pc.timeit(lambda: torch.add(x, y), min_sample_ms=50)["median"]
    out["version"] = torch.__version__

pc.emit(out)
