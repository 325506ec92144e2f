"""Session 25 call 6: compare.py's read-flush over-speed rows. The same graph replay of fai.decode
(decode-batch 256 and 1024) timed in compare.py's loop with n = 50 and n = 714 queued iterations,
and with a sync after every iteration; cuDNN alongside."""
import statistics, sys, torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel, SDPBackend
sys.path.insert(0, "bench")
from cuda_graph import graphed
import fai

dev = torch.device("cuda")
flush_buf = torch.ones(64 << 20, dtype=torch.int32, device=dev)
flushes = {"read": flush_buf.sum, "write": flush_buf.zero_}

def timed(fn, flush, n, sync_each=False):
    for _ in range(25):
        fn()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
    for e0, e1 in ev:
        flush(); e0.record(); fn(); e1.record()
        if sync_each:
            torch.cuda.synchronize()
    torch.cuda.synchronize()
    t = [a.elapsed_time(b) * 1e3 for a, b in ev]
    return statistics.median(t), min(t), t[0], t[-1]

for b in (256, 1024):
    hq = hk = 32; d = 128; sk = 128
    q = torch.randn(b, hq, d, dtype=torch.float16, device=dev)
    k = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    v = torch.randn(b, hk, sk, d, dtype=torch.float16, device=dev)
    o = torch.empty_like(q)
    lens = torch.full((b,), sk, dtype=torch.int32, device=dev)
    ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
    kc, vc = k.transpose(1, 2), v.transpose(1, 2)
    gf = graphed(lambda: fai.decode(q, kc, vc, lens, out=o, max_seq_len=sk, workspace=ws))
    qs = q.view(b, 1, hq, d).transpose(1, 2)
    with sdpa_kernel([SDPBackend.CUDNN_ATTENTION]):
        gc = graphed(lambda: F.scaled_dot_product_attention(qs, k, v))
        for fl in ("read", "write"):
            for n, se in ((50, False), (714, False), (714, True)):
                tf = timed(gf, flushes[fl], n, se)
                tc = timed(gc, flushes[fl], n, se)
                print(f"b={b:5d} {fl:5s} n={n:4d} sync_each={int(se)}  fai median {tf[0]:8.2f} min {tf[1]:8.2f} first {tf[2]:8.2f} last {tf[3]:8.2f} us | cudnn median {tc[0]:8.2f} min {tc[1]:8.2f} first {tc[2]:8.2f} last {tc[3]:8.2f}", flush=True)
    del q, k, v, o, ws, gf, gc
    torch.cuda.empty_cache()
