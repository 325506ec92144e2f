#!/usr/bin/env python3
"""The side-by-side run: fai (through the Python package) and PyTorch SDPA's FlashAttention-2
and cuDNN backends on the same tensors, every standard sweep of shared/guides/benchmarks.md,
one timer (CUDA events around each call after an L2 flush, as triton.testing.do_bench times,
but at least 50 timed calls a row: do_bench's 100 ms budget gave long prefill rows 3-11;
--flush read: a read-only flush), one CSV with
fai-bench's columns (so scripts/compare.py and scripts/plot_perf.py read it), then commit
(fai's), torch and cudnn (the versions).

Order: one unreported warm-up row first (the first row, every backend), then each row's
backends in a rotated order (row i starts with backend i mod the number of backends).
Eager mode: an SDPA backend's sdpa_kernel() context is entered once around the row's
measurement, and a short GPU sleep follows each flush, outside the events, so the host is
ahead of the GPU when the timed call starts. Each row's note: the flush, graphs or eager, the
timed runs and their 25th / 75th percentiles (ms); fai's row also the largest absolute
difference of fai's output from cuDNN's (else FA2's) on the same inputs (one untimed call
each, after the row's timing).

  FAI_LIBRARY=build-gpu/libfai.so PYTHONPATH=python python3 bench/compare.py --csv out.csv
  python3 bench/compare.py --suite decode-seq,prefill-seq --csv out.csv
  python3 bench/compare.py --graphs --csv g.csv   # each call timed as a CUDA graph replay
  python3 bench/compare.py --dtype bf16 --suite prefill-seq,prefill-gqa --csv bf16.csv
  python3 bench/compare.py --list            # the rows, no GPU needed

Shapes: every backend of a row reads the same values. Prefill rows hold every sequence at
the same length: Q is [b * s, hq, d] (SDPA's view [b, hq, s, d]), K/V [b, hk, s, d] as SDPA
takes them, and fai a packed copy ([b * s, hk, d] with cu_seqlens). Decode rows keep the
cache as [b, hk, sk, d] (SDPA's layout); fai reads it through a permuted view. Hybrid rows:
fai in one call on the mixed batch (the parts' tensors concatenated), SDPA as two calls (it
has no mixed batch) timed together, in one flushed region (one graph with --graphs), as
fai's one call is. Metrics as benchmarks.md: TFLOP/s = 4 sq sk hq d per sequence (halved for
causal with sq == sk), GB/s of Q, K, V and O moved once."""
import argparse
import contextlib
import csv
import os
import statistics
import subprocess
import sys

# Eager mode: after each flush, torch.cuda._sleep spins one thread of the GPU for this many
# clock cycles (~50 us at the H100's 1.98 GHz boost, ~57 us at 1.755 GHz) before the start
# event is recorded, so the GPU is still busy while the host runs the call's Python and
# launch path (more for SDPA, twice for a hybrid row's two SDPA calls) and that host time
# falls outside the timed region. Outside the events, like the flush.
SLEEP_CYCLES = 100_000

STANDARD = {
    "prefill-seq": [dict(b=min(128, 131072 // s), sq=s, sk=s, causal=1) for s in (128, 256, 512, 1024, 2048, 4096, 8192)],
    "prefill-batch": [dict(b=b, sq=128, sk=128, causal=1) for b in (1, 8, 32, 128, 512, 2048)],
    "decode-seq": [dict(b=128, sq=1, sk=s) for s in (128, 256, 512, 1024, 2048, 4096, 8192)],
    "decode-batch": [dict(b=b, sq=1, sk=128) for b in (1, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)],
    "hybrid": [dict(b=100, sq=128, sk=128, causal=1, frac=f) for f in (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 0.9, 1.0)],
    "decode-gqa": [dict(b=b, sq=1, sk=s, hq=32, hk=8) for b, s in ((1, 32768), (1, 131072), (16, 8192), (64, 4096))],
    "prefill-gqa": [dict(b=32768 // s, sq=s, sk=s, hq=32, hk=8, causal=1) for s in (2048, 4096, 8192, 16384)],
    "head-dims": [dict(b=32768 // s, sq=s, sk=s, hq=h, hk=h, d=d, causal=1)
                  for s in (4096, 16384) for (d, h) in ((64, 32), (256, 16))],
}
BASE = dict(b=1, sq=1, sk=128, hq=32, hk=32, d=128, causal=0, frac=None)


def rows_of(suites):
    out = []
    for s in suites:
        if s not in STANDARD:
            raise SystemExit(f"compare.py: unknown suite {s!r} (known: {', '.join(STANDARD)})")
        out += [(s, {**BASE, **r}) for r in STANDARD[s]]
    return out


def parts_of(r):
    """(batch, sq, sk, causal) of each part: one, or the prefill and decode parts of a hybrid."""
    if r["frac"] is None:
        return [(r["b"], r["sq"], r["sk"], r["causal"])]
    npre = round(r["b"] * r["frac"])
    return [p for p in ((npre, r["sq"], r["sk"], 1), (r["b"] - npre, 1, r["sk"], 0)) if p[0] > 0]


def work_of(r):
    """FLOPs and bytes that must move, summed over the parts."""
    flops = nbytes = 0.0
    for b, sq, sk, causal in parts_of(r):
        flops += 4.0 * b * sq * sk * r["hq"] * r["d"] / (2 if causal and sq == sk else 1)
        nbytes += 2.0 * (2 * b * sq * r["hq"] * r["d"] + 2 * b * sk * r["hk"] * r["d"])
    return flops, nbytes


def fai_commit():
    """fai's commit: $FAI_COMMIT, else `git describe --always --dirty` of this checkout, else
    "unknown" (a copy without .git)."""
    if os.environ.get("FAI_COMMIT"):
        return os.environ["FAI_COMMIT"]
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, timeout=10,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default=",".join(STANDARD))
    ap.add_argument("--backends", default="fai,flash,cudnn")
    ap.add_argument("--csv", default="")
    ap.add_argument("--batches", default="", help="only the rows of these batch sizes (comma-separated)")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--dtype", default="fp16", choices=("fp16", "bf16"),
                    help="Q, K, V and O (and the decode rows' cache) in this type, for every backend")
    ap.add_argument("--graphs", action="store_true",
                    help="time each call as a CUDA graph replay (the GPU's time alone: no Python or launch "
                         "overhead, as an engine that captures its steps sees it); default: eager calls")
    ap.add_argument("--flush", default="write", choices=("write", "read"),
                    help="the L2 flush before each timed run (CUDA events around the call, median): write "
                         "(a 256 MB zero_(), triton.testing.do_bench's flush, that leaves the L2 dirty, so the "
                         "timed call also writes it back) or read (a 256 MB reduction: the L2 left holding "
                         "clean, unrelated lines)")
    a = ap.parse_args()
    work = rows_of(filter(None, a.suite.split(",")))
    if a.batches:
        keep = {int(x) for x in a.batches.split(",")}
        work = [(s, r) for s, r in work if r["b"] in keep]
    if a.list:
        for suite, r in work:
            print(suite, {k: v for k, v in r.items() if v is not None})
        return 0

    import torch
    import torch.nn.functional as F
    from torch.nn.attention import SDPBackend, sdpa_kernel

    import fai
    from cuda_graph import graphed  # (bench/, beside this script)

    if not torch.cuda.is_available():
        print("compare.py: no CUDA device", file=sys.stderr)
        return 2
    dev = torch.device("cuda")
    device_name = torch.cuda.get_device_name(0)
    sdpa_backend = {"flash": SDPBackend.FLASH_ATTENTION, "cudnn": SDPBackend.CUDNN_ATTENTION}
    dt = torch.float16 if a.dtype == "fp16" else torch.bfloat16

    flush_buf = torch.ones(64 << 20, dtype=torch.int32, device=dev)  # 256 MB
    flush = flush_buf.sum if a.flush == "read" else flush_buf.zero_  # (zero_: do_bench's own flush)

    def timed_ms(fn):
        """(median, 25th percentile, 75th percentile) in ms of n timed calls, and n: each call
        after the L2 flush (and in eager mode the GPU sleep), events around the call alone,
        after 25 warm-up calls: n for about 100 ms of calls as do_bench, but 50 at least
        (do_bench took 3 on a 30 ms row) and 1000 at most."""
        for _ in range(25):
            fn()
        probe = [torch.cuda.Event(enable_timing=True) for _ in range(2)]
        probe[0].record()
        for _ in range(5):
            fn()
        probe[1].record()
        torch.cuda.synchronize()
        n = max(50, min(1000, int(100.0 / max(probe[0].elapsed_time(probe[1]) / 5, 1e-3))))
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(n)]
        for e0, e1 in ev:
            flush()
            if not a.graphs:  # (graph replays launch at once: no host time to hide)
                torch.cuda._sleep(SLEEP_CYCLES)
            e0.record()
            fn()
            e1.record()
        torch.cuda.synchronize()
        t = [e0.elapsed_time(e1) for e0, e1 in ev]
        q1, _, q3 = statistics.quantiles(t, n=4)
        return statistics.median(t), q1, q3, n

    inputs = {}  # the row's tensors of each part, made once and read by every backend

    def tensors(b, sq, sk, hq, hk, d):
        """Q [b*sq, hq, d], K/V as [b, hk, sk, d] (random normal, the same for every backend of
        the row), and a fresh O like Q."""
        key = (b, sq, sk, hq, hk, d)
        if key not in inputs:
            inputs[key] = (torch.randn(b * sq, hq, d, dtype=dt, device=dev),
                           torch.randn(b, hk, sk, d, dtype=dt, device=dev),
                           torch.randn(b, hk, sk, d, dtype=dt, device=dev))
        q, k, v = inputs[key]
        return q, k, v, torch.empty_like(q)

    def fai_part(b, sq, sk, hq, hk, d, causal):
        """fai's call on one part, and the output it writes ([b * sq, hq, d])."""
        q, k, v, o = tensors(b, sq, sk, hq, hk, d)
        if sq == 1:  # decode: the cache through a permuted view [b, sk, hk, d]
            lens = torch.full((b,), sk, dtype=torch.int32, device=dev)
            qd, od = q.view(b, hq, d), o.view(b, hq, d)
            kc, vc = k.transpose(1, 2), v.transpose(1, 2)
            ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
            return lambda: fai.decode(qd, kc, vc, lens, out=od, max_seq_len=sk, workspace=ws), o
        kp = k.transpose(1, 2).reshape(b * sk, hk, d)  # packed copy for the varlen layout
        vp = v.transpose(1, 2).reshape(b * sk, hk, d)
        cu_q = list(range(0, b * sq + 1, sq))
        cq = torch.tensor(cu_q, dtype=torch.int32, device=dev)
        ck = torch.tensor(list(range(0, b * sk + 1, sk)), dtype=torch.int32, device=dev)
        return lambda: fai.prefill(q, kp, vp, cq, ck, sq, max_seq_k=sk, causal=bool(causal), cu_seqlens_q_host=cu_q,
                                   out=o), o

    def fai_hybrid(r):
        """One fai call on the mixed batch: prefill sequences first, then decode steps (the
        parts' tensors, K/V packed, concatenated); the call and its output."""
        hq, hk, d, sk = r["hq"], r["hk"], r["d"], r["sk"]
        lens_q = [sq for b, sq, _, _ in parts_of(r) for _ in range(b)]
        parts = [tensors(b, sq, psk, hq, hk, d) for b, sq, psk, _ in parts_of(r)]
        q = torch.cat([t[0] for t in parts])
        k = torch.cat([t[1].transpose(1, 2).reshape(-1, hk, d) for t in parts])
        v = torch.cat([t[2].transpose(1, 2).reshape(-1, hk, d) for t in parts])
        total_k = k.shape[0]
        o = torch.empty_like(q)
        cu_q = [0]
        for n in lens_q:
            cu_q.append(cu_q[-1] + n)
        cq = torch.tensor(cu_q, dtype=torch.int32, device=dev)
        ck = torch.tensor(list(range(0, total_k + 1, sk)), dtype=torch.int32, device=dev)
        ws = torch.empty(1 << 26, dtype=torch.uint8, device=dev)
        return lambda: fai.prefill(q, k, v, cq, ck, max(lens_q), max_seq_k=sk, causal=True, cu_seqlens_q_host=cu_q,
                                   out=o, workspace=ws), o

    def sdpa_part(b, sq, sk, hq, hk, d, causal):
        """SDPA's call on one part, returning its output [b, hq, sq, d]; the backend is the
        caller's sdpa_kernel() context (entered once around a row's measurement)."""
        q, k, v, _ = tensors(b, sq, sk, hq, hk, d)
        qs = q.view(b, sq, hq, d).transpose(1, 2)
        return lambda: F.scaled_dot_product_attention(qs, k, v, is_causal=bool(causal) and sq > 1, enable_gqa=hq != hk)

    def max_abs_diff(x, y):
        """max |x - y| in FP32, a slice at a time (a prefill row's output is up to 1 GB)."""
        x, y = x.reshape(-1), y.reshape(-1)
        step = 1 << 26
        return max((x[i:i + step].float() - y[i:i + step].float()).abs().max().item()
                   for i in range(0, x.numel(), step))

    def check_row(r):
        """fai's output against cuDNN's (FA2's where cuDNN refuses the shape) on the row's
        inputs, one untimed eager call each: the note's text."""
        hq, hk, d = r["hq"], r["hk"], r["d"]
        try:
            if r["frac"] is not None:
                fn, out = fai_hybrid(r)
            else:
                (b, sq, sk, c), = parts_of(r)
                fn, out = fai_part(b, sq, sk, hq, hk, d, c)
            fn()
        except Exception as e:
            return "check n/a: " + str(e).splitlines()[0][:60].replace(",", ";")
        for peer in ("cudnn", "flash"):
            try:
                with sdpa_kernel([sdpa_backend[peer]]):
                    ref = torch.cat([sdpa_part(b, sq, sk, hq, hk, d, c)().transpose(1, 2).reshape(b * sq, hq, d)
                                     for b, sq, sk, c in parts_of(r)])
            except Exception:  # the backend refuses this shape
                continue
            diff = max_abs_diff(out, ref)
            del ref
            return f"max|fai-{peer}| {diff:.3g}"
        return "check n/a: no SDPA reference"

    backends = a.backends.split(",")

    def time_row(i, suite, r, report):
        """Times every backend of row r (row i starts with backend i mod len(backends)); when
        report, prints each and returns the CSV rows in --backends order."""
        flops, nbytes = work_of(r)
        inputs.clear()
        k = i % len(backends)
        rows = {}
        for backend in backends[k:] + backends[:k]:
            ms, note = 0.0, ""
            runs, p25, p75 = 0, 0.0, 0.0
            try:
                ctx = contextlib.nullcontext() if backend == "fai" else sdpa_kernel([sdpa_backend[backend]])
                if backend == "fai" and r["frac"] is not None:
                    fns = [fai_hybrid(r)[0]]
                elif backend == "fai":
                    fns = [fai_part(b, sq, sk, r["hq"], r["hk"], r["d"], c)[0] for b, sq, sk, c in parts_of(r)]
                else:
                    fns = [sdpa_part(b, sq, sk, r["hq"], r["hk"], r["d"], c) for b, sq, sk, c in parts_of(r)]
                    if len(fns) > 1:  # both in one timed region, as fai's one call
                        note = "two calls"
                        fns = [lambda fs=tuple(fns): [f() for f in fs]]
                with ctx:  # (once, around the warm-up, the capture and the timed runs)
                    if a.graphs:
                        fns = [graphed(fn) for fn in fns]
                    for fn in fns:
                        fn()
                        torch.cuda.synchronize()
                        m, q1, q3, n = timed_ms(fn)
                        ms, p25, p75, runs = ms + m, p25 + q1, p75 + q3, runs + n
            except Exception as e:  # a backend that refuses the shape
                ms, note = None, str(e).splitlines()[0][:100].replace(",", ";")
            torch.cuda.empty_cache()
            if not report:
                continue
            timing = (f"runs {runs}", f"p25 {p25:.5f} p75 {p75:.5f}") if ms is not None else ()
            if ms is not None and nbytes / (ms * 1e-3) / 1e9 > over_speed:
                # (the time stays in the note; ms, TFLOP/s and GB/s are left empty, so that
                # no table or chart counts the row)
                timing += (f"INVALID: {ms:.5f} ms, {nbytes / (ms * 1e-3) / 1e9:.0f} GB/s, over 1.15x the copy ceiling "
                           f"({copy_gbps:.0f} GB/s)",)
                print(f"compare.py: warning: {suite} {backend} b={r['b']} sk={r['sk']} ran faster than the memory "
                      f"can move its bytes: not a valid time", file=sys.stderr, flush=True)
                ms = None
            note = "; ".join(filter(None, (note, f"flush {a.flush}", "graphs" if a.graphs else "eager") + timing))
            rows[backend] = dict(device=device_name, suite=suite, backend=backend, dtype=a.dtype, b=r["b"], sq=r["sq"],
                                 sk=r["sk"], hq=r["hq"], hk=r["hk"], d=r["d"], causal=r["causal"],
                                 prefill_frac="" if r["frac"] is None else r["frac"],
                                 ms="" if ms is None else round(ms, 5),
                                 tflops="" if ms is None else round(flops / (ms * 1e-3) / 1e12, 2),
                                 gbps="" if ms is None else round(nbytes / (ms * 1e-3) / 1e9, 1),
                                 note=note, commit=commit, torch=torch.__version__, cudnn=cudnn_version)
            row = rows[backend]
            print(f"[{i + 1}/{len(work)}] {suite:13s} {backend:5s} b={r['b']:<5d} sq={r['sq']:<6d} sk={r['sk']:<7d} "
                  f"hq={r['hq']} hk={r['hk']} d={r['d']} " +
                  (f"n/a: {note}" if ms is None else
                   f"{ms:.4f} ms {row['tflops']:8.1f} TFLOP/s {row['gbps']:7.0f} GB/s (p25-p75 {p25:.4f}-{p75:.4f})"),
                  flush=True)
        if report and rows.get("fai", {}).get("ms", "") != "":
            check = check_row(r)
            rows["fai"]["note"] += "; " + check
            print(f"[{i + 1}/{len(work)}] {suite:13s} fai   {check}", flush=True)
            inputs.clear()
            torch.cuda.empty_cache()
        return [rows[b] for b in backends if b in rows]

    def copy_ceiling_gbps():
        """A 1 GiB device-to-device copy (read + write bytes), median of 10 after 5 warm-up
        copies, on this timer: the yardstick of the over-speed check below (a coarse one: it
        catches rows far past what the memory moves, not small timing errors)."""
        src = torch.empty(1 << 30, dtype=torch.uint8, device=dev)
        dst = torch.empty_like(src)
        for _ in range(5):
            dst.copy_(src)
        ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(10)]
        for e0, e1 in ev:
            e0.record()
            dst.copy_(src)
            e1.record()
        torch.cuda.synchronize()
        ms = statistics.median(e0.elapsed_time(e1) for e0, e1 in ev)
        del src, dst
        torch.cuda.empty_cache()
        return 2 * (1 << 30) / (ms * 1e-3) / 1e9

    # A row faster than the memory can move its bytes is a timing artifact, not a result: fai's
    # decode-batch rows of 256-2048 sequences came out at 3.9-5.1 TB/s here after --flush read
    # (docs/perf/README.md, session 25; not reproduced outside this script, cause not found).
    copy_gbps = copy_ceiling_gbps()
    over_speed = 1.15 * copy_gbps

    commit = fai_commit()
    cudnn_version = torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else ""
    print(f"compare.py: {device_name}, torch {torch.__version__}, cuDNN {cudnn_version or 'none'}, fai {fai.version()} "
          f"(commit {commit}), flush {a.flush}, {'graphs' if a.graphs else 'eager'}, copy ceiling {copy_gbps:.0f} GB/s",
          flush=True)
    out_rows = []
    if work:  # the first row timed in a process runs slow (docs/perf): one unreported row first
        suite, r = work[0]
        print(f"warm-up row (not reported): {suite} b={r['b']} sq={r['sq']} sk={r['sk']}, every backend", flush=True)
        time_row(0, suite, r, False)
    for i, (suite, r) in enumerate(work):
        out_rows += time_row(i, suite, r, True)
    if a.csv and out_rows:
        with open(a.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(out_rows[0]))
            w.writeheader()
            w.writerows(out_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
