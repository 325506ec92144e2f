#!/usr/bin/env python3
"""Host time per call of the Python package against SDPA's: the CPU microseconds one call
takes to enqueue its work (the GPU's time does not count: the calls are timed back to back
on tiny shapes, where the host is the bottleneck), and a cProfile of fai's calls, so that
the package's overhead on small batches is measured, not guessed.

  FAI_LIBRARY=build-gpu/libfai.so PYTHONPATH=python python3 bench/host_overhead.py [--profile]"""
import argparse
import cProfile
import pstats
import sys
import time


def per_call_us(fn, n=2000):
    import torch
    for _ in range(50):
        fn()
    torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(n):
        fn()
    host = (time.perf_counter() - t) / n * 1e6
    torch.cuda.synchronize()
    return host


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", action="store_true", help="cProfile fai's decode and prefill calls too")
    a = ap.parse_args()
    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import fai

    dev = torch.device("cuda")
    h, d, sk = 32, 128, 128
    q1 = torch.randn(1, h, d, dtype=torch.float16, device=dev)
    kc = torch.randn(1, sk, h, d, dtype=torch.float16, device=dev)
    vc = torch.randn(1, sk, h, d, dtype=torch.float16, device=dev)
    lens = torch.full((1,), sk, dtype=torch.int32, device=dev)
    o1 = torch.empty_like(q1)
    ws = torch.empty(1 << 24, dtype=torch.uint8, device=dev)
    qp = torch.randn(sk, h, d, dtype=torch.float16, device=dev)
    kp = torch.randn(sk, h, d, dtype=torch.float16, device=dev)
    vp = torch.randn(sk, h, d, dtype=torch.float16, device=dev)
    op = torch.empty_like(qp)
    cu = torch.tensor([0, sk], dtype=torch.int32, device=dev)
    qs, ks, vs = (x.view(1, sk, h, d).transpose(1, 2) for x in (qp, kp, vp))

    calls = {
        "fai.decode (out, workspace given)":
            lambda: fai.decode(q1, kc, vc, lens, out=o1, max_seq_len=sk, workspace=ws),
        "fai.decode (allocating out)": lambda: fai.decode(q1, kc, vc, lens, max_seq_len=sk, workspace=ws),
        "fai.prefill (out given, host offsets)":
            lambda: fai.prefill(qp, kp, vp, cu, cu, sk, max_seq_k=sk, causal=True, cu_seqlens_q_host=[0, sk], out=op),
        "fai.prefill (out given)": lambda: fai.prefill(qp, kp, vp, cu, cu, sk, max_seq_k=sk, causal=True, out=op),
        "torch.empty_like (a floor)": lambda: torch.empty_like(qp),
    }
    for name, backend in (("sdpa flash", SDPBackend.FLASH_ATTENTION), ("sdpa cudnn", SDPBackend.CUDNN_ATTENTION)):
        def run(backend=backend):
            with sdpa_kernel([backend]):
                return F.scaled_dot_product_attention(qs, ks, vs, is_causal=True)
        calls[f"{name} prefill (seq 128)"] = run
    print(f"host time per call, {torch.cuda.get_device_name(0)}, torch {torch.__version__}")
    for name, fn in calls.items():
        print(f"  {name:44s} {per_call_us(fn):8.1f} us")
    if a.profile:
        for name in ("fai.decode (out, workspace given)", "fai.prefill (out given, host offsets)"):
            fn = calls[name]
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(500):
                fn()
            prof.disable()
            torch.cuda.synchronize()
            print(f"\n== cProfile of 500 x {name} (tottime, top 18)")
            pstats.Stats(prof, stream=sys.stdout).sort_stats("tottime").print_stats(18)
    return 0


if __name__ == "__main__":
    sys.exit(main())
