"""matmul peer: the cases of bench/matmul.js with numpy or PyTorch: float32 on the CPU, or on the GPU (device cuda)."""
import ctypes

from peer_common import args, emit, time_cuda, timeit


def blas_config():
    """The config string of the OpenBLAS this process loaded (core included), when it has one."""
    with open("/proc/self/maps") as f:
        paths = sorted({line.split()[-1] for line in f if "blas" in line.split()[-1].lower()})
    for path in paths:
        lib = ctypes.CDLL(path)
        for name in ("openblas_get_config", "scipy_openblas_get_config64_", "openblas_get_config64_"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "no OpenBLAS found (" + ", ".join(paths) + ")"


def main_cuda(a):
    """The --device cuda cases: square products on the GPU, TF32 allowed or not per case."""
    import torch

    rows = []
    for case in a["cases"]:
        torch.backends.cuda.matmul.allow_tf32 = case["precision"] == "high"
        dtype = getattr(torch, case["dtype"])
        x = torch.randn(case["n"], case["n"], dtype=dtype, device="cuda")
        y = torch.randn(case["n"], case["n"], dtype=dtype, device="cuda")
        rows.append({"name": case["name"], "seconds": time_cuda(torch, lambda: x @ y)["median"]})
        del x, y
    emit({"rows": rows, "version": f"{torch.__version__} (CUDA {torch.version.cuda}, cuBLAS via torch)"})


def main():
    a = args()
    if a.get("device") == "cuda":
        return main_cuda(a)
    if a["lib"] == "torch":
        import torch

        torch.set_num_threads(a["threads"])
        rand = lambda shape: torch.rand(*shape, dtype=torch.float32) * 2 - 1
        linear = torch.nn.functional.linear
    else:
        import numpy as np

        rng = np.random.default_rng(0)
        rand = lambda shape: rng.uniform(-1, 1, shape).astype(np.float32)
        linear = lambda x, w, b: x @ w.T + b
    rows = []
    for case in a["cases"]:
        x = rand(case["a"])
        y = rand(case["b"])
        if case.get("transA"):
            x = x.swapaxes(-1, -2) if a["lib"] == "numpy" else x.transpose(-1, -2)
        if case.get("linear"):
            bias = rand([case["b"][0]])
            fn = lambda: linear(x, y, bias)
        else:
            fn = lambda: x @ y
        rows.append({"name": case["name"], "seconds": timeit(fn)["median"]})
    emit({"rows": rows, "blas": blas_config()})


main()
