"""PyTorch peer of bench/creation.js: the same ops and sizes, median seconds per call."""
import math

import torch

from peer_common import args, emit, timeit

a = args()
torch.set_num_threads(a["threads"])
OPS = {
    "rand": lambda n: torch.rand(n),
    "rand f64": lambda n: torch.rand(n, dtype=torch.float64),
    "randn": lambda n: torch.randn(n),
    "randn f64": lambda n: torch.randn(n, dtype=torch.float64),
    "randn bf16": lambda n: torch.randn(n, dtype=torch.bfloat16),
    "randint": lambda n: torch.randint(0, 1000, (n,)),
    "arange": lambda n: torch.arange(0, n, 1, dtype=torch.float32),
    "linspace": lambda n: torch.linspace(0, 1, n),
    "eye": lambda n: torch.eye(round(math.sqrt(n))),
}
results = {}
for name in a["ops"]:
    for n in a["sizes"]:
        results[f"{name} {n}"] = timeit(lambda: OPS[name](n))["median"]
emit({"version": torch.__version__, "results": results})
