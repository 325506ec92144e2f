"""Where a short call's time goes in CUDA graph replays: fai's decode and PyTorch SDPA (cuDNN)
on one shape, each captured in a graph and replayed after do_bench's L2 flush (a 256 MB zero
fill), traced with torch.profiler (CUPTI). Prints, per backend, the medians over the replays
of: the gap from the flush kernel's end to the first kernel of the replay, each kernel's
duration, and flush end to the replay's last kernel end.

  FAI_LIBRARY=build/libfai.so PYTHONPATH=python python3 bench/graph_gaps.py --b 1 --sk 128
"""
import argparse
import json
import os
import statistics
import sys
import tempfile


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--b", type=int, default=1)
    ap.add_argument("--sk", type=int, default=128)
    ap.add_argument("--hq", type=int, default=32)
    ap.add_argument("--hk", type=int, default=32)
    ap.add_argument("--d", type=int, default=128)
    ap.add_argument("--reps", type=int, default=50)
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.profiler import ProfilerActivity, profile

    import fai
    from cuda_graph import graphed  # (bench/, beside this script)

    dev = torch.device("cuda")
    b, sk, hq, hk, d = a.b, a.sk, a.hq, a.hk, a.d
    q = torch.randn(b, hq, d, dtype=torch.float16, device=dev)
    k = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    v = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    o = torch.empty_like(q)
    lens = torch.full((b,), sk, dtype=torch.int32, device=dev)
    ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
    kc, vc = k.transpose(1, 2), v.transpose(1, 2)
    qs = q.view(b, 1, hq, d).transpose(1, 2)

    def run_fai():
        fai.decode(q, kc, vc, lens, out=o, max_seq_len=sk, workspace=ws)

    def run_cudnn():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(qs, k, v, enable_gqa=hq != hk)

    cache = torch.empty(256 << 20, dtype=torch.int8, device=dev)  # do_bench's flush buffer
    for name, fn in (("fai", run_fai), ("cudnn", run_cudnn)):
        replay = graphed(fn)
        for _ in range(20):
            cache.zero_()
            replay()
        torch.cuda.synchronize()
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(a.reps)]
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for e0, e1 in ev:
                cache.zero_()
                e0.record()
                replay()
                e1.record()
            torch.cuda.synchronize()
        events_ms = statistics.median(e0.elapsed_time(e1) for e0, e1 in ev)
        path = os.path.join(tempfile.mkdtemp(), "trace.json")
        prof.export_chrome_trace(path)
        with open(path) as fh:
            trace = json.load(fh)
        kernels = sorted((e for e in trace["traceEvents"] if e.get("cat") == "kernel"), key=lambda e: e["ts"])
        flushes = [i for i, e in enumerate(kernels) if "fill" in e["name"].lower() or "zero" in e["name"].lower()]
        gaps, spans, durs = [], [], {}
        for j, i in enumerate(flushes):
            end = flushes[j + 1] if j + 1 < len(flushes) else len(kernels)
            mine = kernels[i + 1:end]
            if not mine:
                continue
            f_end = kernels[i]["ts"] + kernels[i]["dur"]
            gaps.append(mine[0]["ts"] - f_end)
            spans.append(mine[-1]["ts"] + mine[-1]["dur"] - f_end)
            for e in mine:
                durs.setdefault(e["name"][:60], []).append(e["dur"])
        print(f"{name}: b={b} sk={sk} hq={hq} hk={hk} d={d}: events {events_ms * 1000:.2f} us; "
              f"flush end -> first kernel {statistics.median(gaps):.2f} us; flush end -> last kernel end "
              f"{statistics.median(spans):.2f} us ({len(gaps)} replays)")
        for kname, ds in durs.items():
            print(f"    {statistics.median(ds):7.2f} us x{len(ds)}  {kname}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
