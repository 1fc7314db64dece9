"""torch.distributed collectives over gloo (or nccl, rank r on GPU r, with "nccl": true) for
bench/collectives.js. Run once by the benchmark, it starts `ranks` local processes of itself
(init_method tcp on a free loopback port), each timing every op and size the same way as the
ignis workers, and prints rank 0's rows as JSON."""
import json
import os
import socket
import subprocess
import sys
import time

from peer_common import args, emit


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker(a):
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    n, r = a["ranks"], a["rank"]
    nccl = a.get("nccl", False)
    device = torch.device(f"cuda:{r}") if nccl else torch.device("cpu")
    if nccl:
        torch.cuda.set_device(device)
    dist.init_process_group("nccl" if nccl else "gloo", init_method=f"tcp://127.0.0.1:{a['port']}", rank=r, world_size=n)

    def slowest(seconds):
        t = torch.tensor([seconds], dtype=torch.float64, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item()

    def sync():
        if nccl:
            torch.cuda.synchronize()

    rows = []
    for op in a["ops"]:
        for size in a["sizes"]:
            count = size // 4  # float32 elements in the op's whole buffer (nccl-tests' "size")
            if op == "allreduce":
                x = torch.full((count,), float(r + 1), device=device)
                run = lambda: dist.all_reduce(x)
                prepare = lambda: x.fill_(float(r + 1))
                wrong = lambda: int((x != n * (n + 1) / 2).sum())
            elif op == "allgather":
                x = torch.full((count // n,), float(r), device=device)
                outs = [torch.empty(count // n, device=device) for _ in range(n)]
                run = lambda: dist.all_gather(outs, x)
                prepare = lambda: None
                wrong = lambda: sum(int((o != q).sum()) for q, o in enumerate(outs))
            elif op == "broadcast":
                x = torch.full((count,), float(r), device=device)
                run = lambda: dist.broadcast(x, 0)
                prepare = lambda: x.fill_(float(r))
                wrong = lambda: int((x != 0).sum())
            elif nccl:
                x = torch.full((count,), float(r + 1), device=device)
                out = torch.empty(count // n, device=device)
                run = lambda: dist.reduce_scatter_tensor(out, x)
                prepare = lambda: None
                wrong = lambda: int((out != n * (n + 1) / 2).sum())
            else:
                rows.append({"op": op, "size": size, "skipped": "torch.distributed gloo has no reduce_scatter"})
                continue
            for _ in range(2):
                run()
            sync()
            t0 = time.perf_counter()
            run()
            sync()
            iters = max(3, min(1000, int(a["target_s"] / max(slowest(time.perf_counter() - t0), 1e-6))))
            dist.barrier()
            t0 = time.perf_counter()
            for _ in range(iters):
                run()
            sync()
            seconds = slowest((time.perf_counter() - t0) / iters)
            prepare()
            run()
            bad = torch.tensor([wrong()], dtype=torch.int64, device=device)
            dist.all_reduce(bad)
            rows.append({"op": op, "size": size, "seconds": seconds, "wrong": int(bad.item()), "iters": iters})
    if r == 0:
        print(json.dumps(rows))
    dist.destroy_process_group()


def main():
    a = args()
    if "rank" in a:
        return worker(a)
    import torch

    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, json.dumps({**a, "rank": r, "port": port})],
            stdout=subprocess.PIPE,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        for r in range(a["ranks"])
    ]
    outs = [p.communicate()[0] for p in procs]
    if any(p.returncode for p in procs):
        sys.exit(f"torch ranks failed: {[p.returncode for p in procs]}")
    emit({"torch": torch.__version__, "rows": json.loads(outs[0])})


main()
