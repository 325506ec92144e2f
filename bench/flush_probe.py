"""Why bench/compare.py's read flush gave fai decode-batch rows faster than the HBM (session 25,
docs/perf/README.md): fai.decode and cuDNN on decode-batch rows timed alone after each flush.

  FAI_LIBRARY=build/libfai.so PYTHONPATH=python python3 bench/flush_probe.py          # call 4
  FAI_LIBRARY=build/libfai.so PYTHONPATH=python python3 bench/flush_probe.py --loop   # call 6

Default: eager and graph replays with events, the kernels' own durations from a CUPTI trace
(torch.profiler), and fai's output against cuDNN's. --loop: graph replays in compare.py's loop
with n = 50 and 714 queued runs, and with a sync after every run."""
import statistics
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, "bench")
from cuda_graph import graphed  # noqa: E402
import fai  # noqa: E402

dev = torch.device("cuda")
flush_buf = torch.ones(64 << 20, dtype=torch.int32, device=dev)  # 256 MB, as compare.py's
flushes = {"read": flush_buf.sum, "write": flush_buf.zero_}
HQ = HK = 32
D, SK = 128, 128


def row(b):
    """decode-batch's tensors at batch b: fai's call, cuDNN's, and the bytes they move."""
    q = torch.randn(b, HQ, D, dtype=torch.float16, device=dev)
    k = torch.randn(b, HK, SK, D, dtype=torch.float16, device=dev)
    v = torch.randn(b, HK, SK, D, dtype=torch.float16, device=dev)
    o = torch.empty_like(q)
    lens = torch.full((b,), SK, dtype=torch.int32, device=dev)
    ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
    kc, vc = k.transpose(1, 2), v.transpose(1, 2)
    qs = q.view(b, 1, HQ, D).transpose(1, 2)

    def f_fai():
        return fai.decode(q, kc, vc, lens, out=o, max_seq_len=SK, workspace=ws)

    def f_cudnn():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(qs, k, v)
    nbytes = 2 * b * HK * SK * D * 2 + 2 * b * HQ * D * 2
    return f_fai, f_cudnn, o, nbytes


def timed(fn, flush, n, sync_each=False, warmup=10):
    """(median, min, first, last) in us of n runs, each after the flush, events around the call."""
    for _ in range(warmup):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for e0, e1 in ev:
        flush()
        e0.record()
        fn()
        e1.record()
        if sync_each:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    t = [a.elapsed_time(b) * 1e3 for a, b in ev]
    return statistics.median(t), min(t), t[0], t[-1]


def cupti_probe():
    from torch.profiler import ProfilerActivity, profile
    for b in (128, 256, 1024):
        f_fai, f_cud, o, nbytes = row(b)
        ref = f_cud().transpose(1, 2).reshape(b, HQ, D)
        f_fai()
        torch.cuda.synchronize()
        err = (o.float() - ref.float()).abs().max().item()
        gf, gc = graphed(f_fai), graphed(f_cud)
        for fl in ("read", "write"):
            for mode, ff, fc in (("eager", f_fai, f_cud), ("graph", gf, gc)):
                tf, tc = timed(ff, flushes[fl], 50)[0], timed(fc, flushes[fl], 50)[0]
                print(f"b={b:5d} {fl:5s} {mode:5s} fai {tf:8.2f} us ({nbytes / tf / 1e3:6.0f} GB/s)  cudnn {tc:8.2f} us  "
                      f"max|fai-cudnn| {err:.2e}", flush=True)
        for fl in ("read", "write"):  # the kernels' own durations after each flush
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for _ in range(20):
                    flushes[fl]()
                    gf()
                torch.cuda.synchronize()
            ks = {}
            for e in prof.events():
                if e.device_type.name == "CUDA":
                    ks.setdefault(e.name[:60], []).append(e.device_time_total)
            for name, ts in ks.items():
                print(f"   cupti {fl:5s} b={b}: {name:60s} n={len(ts)} median {statistics.median(ts):9.2f} us")
        torch.cuda.empty_cache()


def loop_probe():
    for b in (256, 1024):
        f_fai, f_cud, _, _ = row(b)
        gf = graphed(f_fai)
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            gc = graphed(f_cud)
            for fl in ("read", "write"):
                for n, se in ((50, False), (714, False), (714, True)):
                    tf, tc = timed(gf, flushes[fl], n, se, 25), timed(gc, flushes[fl], n, se, 25)
                    print(f"b={b:5d} {fl:5s} n={n:4d} sync_each={int(se)}  fai median {tf[0]:8.2f} min {tf[1]:8.2f} "
                          f"first {tf[2]:8.2f} last {tf[3]:8.2f} us | cudnn median {tc[0]:8.2f} min {tc[1]:8.2f} "
                          f"first {tc[2]:8.2f} last {tc[3]:8.2f}", flush=True)
        torch.cuda.empty_cache()


if __name__ == "__main__":
    loop_probe() if "--loop" in sys.argv else cupti_probe()
