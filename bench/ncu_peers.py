"""One call each of fai's decode and PyTorch SDPA's cuDNN (and FlashAttention-2) backends on
the same decode shapes, inside NVTX ranges named "prof" (each call's backend and shape go to stderr), for Nsight
Compute to profile side by side (what grid, registers, shared memory, DRAM bytes and time
each launch uses). Warm-up calls run outside the ranges.
  ncu --nvtx --nvtx-include 'prof/' --section LaunchStats --section SpeedOfLight \
      --csv python3 bench/ncu_peers.py [--shapes b,sk,hq,hk;...] [--backends fai,cudnn]
The cache is [b, hk, sk, d] (the peers' layout); fai reads it through a permuted view, as
bench/compare.py does. FAI_LIBRARY names libfai.so."""
import argparse
import sys

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import fai


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shapes", default="16,8192,32,8;1,131072,32,8;1,128,32,32;128,256,32,32")
    ap.add_argument("--backends", default="fai,cudnn")
    ap.add_argument("--d", type=int, default=128)
    a = ap.parse_args()
    dev, dt, d = torch.device("cuda"), torch.float16, a.d
    backends = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    for shape in a.shapes.split(";"):
        b, sk, hq, hk = (int(x) for x in shape.split(","))
        q = torch.randn(b, hq, d, dtype=dt, device=dev)
        k = torch.randn(b, hk, sk, d, dtype=dt, device=dev)
        v = torch.randn(b, hk, sk, d, dtype=dt, device=dev)
        o = torch.empty_like(q)
        lens = torch.full((b,), sk, dtype=torch.int32, device=dev)
        ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
        for backend in a.backends.split(","):
            if backend == "fai":
                def fn():
                    fai.decode(q, k.transpose(1, 2), v.transpose(1, 2), lens, out=o, max_seq_len=sk, workspace=ws)
            else:
                def fn(be=backends[backend]):
                    with sdpa_kernel([be]):
                        F.scaled_dot_product_attention(q.view(b, 1, hq, d).transpose(1, 2), k, v,
                                                       enable_gqa=hq != hk)
            for _ in range(3):
                fn()
            torch.cuda.synchronize()
            print(f"prof {backend} b{b} sk{sk} {hq}/{hk}", file=sys.stderr, flush=True)
            torch.cuda.nvtx.range_push("prof")
            fn()
            torch.cuda.synchronize()
            torch.cuda.nvtx.range_pop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
