"""Session 25 call 4: why compare.py's read flush gives fai > HBM speed on decode-batch 256-2048.
Times fai.decode and cuDNN on decode-batch rows under both flushes, eager and graph, with CUDA
events, and reads the kernels' own durations from a CUPTI trace (torch.profiler); checks fai's
output against cuDNN's."""
import statistics, sys, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
sys.path.insert(0, "bench")
from cuda_graph import graphed
import fai

dev = torch.device("cuda")
flush_buf = torch.ones(64 << 20, dtype=torch.int32, device=dev)
flushes = {"read": flush_buf.sum, "write": flush_buf.zero_}

def timed(fn, flush, n=50):
    for _ in range(10):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for e0, e1 in ev:
        flush(); e0.record(); fn(); e1.record()
    torch.cuda.synchronize()
    return statistics.median(a.elapsed_time(b) for a, b in ev) * 1e3

for b in (128, 256, 1024):
    hq = hk = 32; d = 128; sk = 128
    q = torch.randn(b, hq, d, dtype=torch.float16, device=dev)
    k = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    v = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    o = torch.empty_like(q)
    lens = torch.full((b,), sk, dtype=torch.int32, device=dev)
    ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
    kc, vc = k.transpose(1, 2), v.transpose(1, 2)
    f_fai = lambda: fai.decode(q, kc, vc, lens, out=o, max_seq_len=sk, workspace=ws)
    qs = q.view(b, 1, hq, d).transpose(1, 2)
    def f_cud():
        with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
            return F.scaled_dot_product_attention(qs, k, v)
    ref = f_cud().transpose(1, 2).reshape(b, hq, d)
    f_fai(); torch.cuda.synchronize()
    err = (o.float() - ref.float()).abs().max().item()
    nbytes = 2 * b * hk * sk * d * 2 + 2 * b * hq * d * 2
    gf, gc = graphed(f_fai), graphed(f_cud)
    for fl in ("read", "write"):
        for mode, ff, fc in (("eager", f_fai, f_cud), ("graph", gf, gc)):
            tf, tc = timed(ff, flushes[fl]), timed(fc, flushes[fl])
            print(f"b={b:5d} {fl:5s} {mode:5s} fai {tf:8.2f} us ({nbytes / tf / 1e3:6.0f} GB/s)  cudnn {tc:8.2f} us  max|fai-cudnn| {err:.2e}", flush=True)
    # CUPTI: kernel durations of fai's graph replay after each flush
    from torch.profiler import profile, ProfilerActivity
    for fl in ("read", "write"):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(20):
                flushes[fl](); gf()
            torch.cuda.synchronize()
        ks = {}
        for e in prof.events():
            if e.device_type.name == "CUDA":
                ks.setdefault(e.name[:60], []).append(e.device_time_total if hasattr(e, 'device_time_total') else e.cuda_time_total)
        for name, ts in ks.items():
            print(f"   cupti {fl:5s} b={b}: {name:60s} n={len(ts)} median {statistics.median(ts):9.2f} us")
    del q, k, v, o, ws, gf, gc
    torch.cuda.empty_cache()
