"""PyTorch peer of bench/io.js: reading the same safetensors file (the safetensors package when
installed, else torch.frombuffer over the specification), and torch.save / torch.load of the
same tensors. Median seconds per call."""
import json
import struct

import torch

from peer_common import args, emit, timeit

DT = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16, "F64": torch.float64, "I64": torch.int64, "I32": torch.int32, "BOOL": torch.bool}

try:
    from safetensors.torch import load_file

    reader = "safetensors"
except ImportError:
    reader = "frombuffer"

    def load_file(path):
        with open(path, "rb") as f:
            raw = bytearray(f.read())
        n = struct.unpack("<Q", raw[:8])[0]
        header = json.loads(raw[8 : 8 + n].decode("utf-8"))
        header.pop("__metadata__", None)
        data = memoryview(raw)[8 + n :]
        out = {}
        for name, e in header.items():
            b, end = e["data_offsets"]
            out[name] = torch.frombuffer(data[b:end], dtype=DT[e["dtype"]]).reshape(e["shape"])
        return out


a = args()
torch.set_num_threads(1)
tensors = load_file(a["file"])
pt = a["out"] + ".pt"
results = {
    "read": timeit(lambda: load_file(a["file"]), reps=5, warmup=1)["median"],
    "torch.save": timeit(lambda: torch.save(tensors, pt), reps=5, warmup=1)["median"],
    "torch.load": timeit(lambda: torch.load(pt), reps=5, warmup=1)["median"],
}
emit({"version": torch.__version__, "reader": reader, "results": results})
