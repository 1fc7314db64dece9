"""Timing helper for the Python peers: the same method as bench/common.js timeit."""
import json
import sys
import time


def timeit(fn, reps=7, warmup=3, min_sample_ms=20):
    for _ in range(warmup):
        fn()
    inner = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        ms = (time.perf_counter() - t0) * 1e3
        if ms >= min_sample_ms or inner >= 1 << 24:
            break
        inner *= min(100, max(2, int(min_sample_ms / ms * 1.2) + 1)) if ms > 0 else 100
    samples = []
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    samples.sort()
    n = len(samples)
    med = samples[n // 2] if n % 2 else (samples[n // 2 - 1] + samples[n // 2]) / 2
    return {"median": med, "samples": samples}


def time_cuda(torch, fn, reps=15, warmup=3, min_sample_ms=20):
    """Seconds per call of fn on the GPU: CUDA events around `inner` calls, as bench/common.js timeCuda."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    start = torch.cuda.Event(enable_timing=True)
    end = torch.cuda.Event(enable_timing=True)

    def sample(inner):
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    inner = 1
    while True:
        ms = sample(inner)
        if ms >= min_sample_ms or inner >= 1 << 16:
            break
        inner *= min(100, max(2, int(min_sample_ms / ms * 1.2) + 1)) if ms > 0 else 100
    samples = sorted(sample(inner) / 1e3 / inner for _ in range(reps))
    n = len(samples)
    med = samples[n // 2] if n % 2 else (samples[n // 2 - 1] + samples[n // 2]) / 2
    return {"median": med, "samples": samples}


def args():
    return json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}


def emit(obj):
    json.dump(obj, sys.stdout)
