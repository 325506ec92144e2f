#!/usr/bin/env python3
"""Draws the performance charts from CSVs (fai-bench --csv and shared/tools/sdpa_peers.py
--csv share their columns), on any machine: matplotlib only, no GPU.

  scripts/plot_perf.py --out docs/perf/h100-2026-11-25 fai.csv peers.csv [more.csv ...]

One line chart per suite (x: sequence length, batch or prefill fraction; y: GB/s for decode
and memory-bound rows, TFLOP/s for prefill, microseconds for hybrid), one line per
implementation, the measured ceilings dashed; plus a bar chart of fai / best peer per row.
Rows are matched on (suite, b, sq, sk, hq, hk, d, causal, prefill_frac)."""
import argparse
import csv
import os
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"fai": ("tab:red", "o", "-"), "flash": ("tab:blue", "s", "-"), "cudnn": ("tab:green", "^", "-"),
         "fai-separate": ("tab:orange", "v", "--"), "fai-nohost": ("tab:pink", "x", ":")}
LABEL = {"flash": "FlashAttention-2 (SDPA)", "cudnn": "cuDNN (SDPA)", "fai-separate": "fai, prefill + decode calls",
         "fai-nohost": "fai, no host lengths"}
# suite: (x column, x label, y metric, title)
SUITES = {
    "decode-seq": ("sk", "KV length (batch 128, 32 heads, d 128)", "gbps", "Decode: KV length sweep"),
    "decode-batch": ("b", "batch (KV length 128)", "gbps", "Decode: batch sweep"),
    "decode-gqa": ("label", "batch x KV length (GQA 32/8)", "gbps", "Decode: GQA"),
    "prefill-seq": ("sq", "sequence length (causal, d 128, ~128K tokens)", "tflops", "Prefill: sequence sweep"),
    "prefill-batch": ("b", "batch (seq 128, causal)", "gbps", "Prefill: batch sweep (memory-bound)"),
    "prefill-gqa": ("sq", "sequence length (causal, GQA 32/8, 32K tokens)", "tflops", "Prefill: GQA"),
    "head-dims": ("label", "head dim x seq (causal, 32K tokens)", "tflops", "Prefill: head dims 64 / 256"),
    "hybrid": ("prefill_frac", "prefill fraction (batch 100, seq 128)", "us", "Hybrid prefill + decode"),
}
YLABEL = {"gbps": "GB/s (Q, K, V, O once)", "tflops": "TFLOP/s", "us": "time (us, lower is better)"}


def read(paths):
    rows, ceilings = [], {}
    for path in paths:
        with open(path) as f:
            for r in csv.DictReader(f):
                if r["suite"] == "ceiling":
                    ceilings[r["backend"]] = float(r["gbps"])
                    continue
                if not r.get("ms"):
                    continue
                r["ms"] = float(r["ms"])
                r["gbps"] = float(r["gbps"] or 0)
                r["tflops"] = float(r["tflops"] or 0)
                r["us"] = r["ms"] * 1000
                for k in ("b", "sq", "sk", "hq", "hk", "d"):
                    r[k] = int(r[k])
                r["prefill_frac"] = float(r["prefill_frac"]) if r.get("prefill_frac") else None
                r["label"] = f"{r['b']}x{r['sk']}" if r["suite"] == "decode-gqa" else f"d{r['d']} x {r['sq']}"
                rows.append(r)
    return rows, ceilings


def key(r):
    return (r["suite"], r["b"], r["sq"], r["sk"], r["hq"], r["hk"], r["d"], r["prefill_frac"], r["causal"])


def chart(suite, rows, ceilings, out, device):
    xcol, xlabel, metric, title = SUITES[suite]
    by_backend = defaultdict(list)
    for r in rows:
        by_backend[r["backend"]].append(r)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    categorical = xcol == "label"
    cats = []
    for r in sorted(rows, key=lambda r: (r["b"], r["sk"], r["d"], r["sq"])):
        if r["label"] not in cats:
            cats.append(r["label"])
    for backend, rs in sorted(by_backend.items(), key=lambda kv: kv[0] != "fai"):
        rs = sorted(rs, key=lambda r: cats.index(r["label"]) if categorical else r[xcol])
        xs = [cats.index(r["label"]) if categorical else r[xcol] for r in rs]
        color, marker, ls = STYLE.get(backend, ("gray", ".", "-"))
        ax.plot(xs, [r[metric] for r in rs], marker=marker, linestyle=ls, color=color,
                label=LABEL.get(backend, backend), linewidth=2 if backend == "fai" else 1.3)
    if metric == "gbps":
        for name, style in (("copy", "--"), ("read", ":")):
            if name in ceilings:
                ax.axhline(ceilings[name], color="black", linestyle=style, linewidth=1,
                           label=f"{name} ceiling {ceilings[name]:.0f} GB/s")
    if categorical:
        ax.set_xticks(range(len(cats)))
        ax.set_xticklabels(cats)
    elif xcol in ("sk", "b", "sq") and len({r[xcol] for r in rows}) > 2:
        ax.set_xscale("log", base=2)
        ticks = sorted({r[xcol] for r in rows})
        ax.set_xticks(ticks)
        ax.set_xticklabels([str(t) for t in ticks])
    ax.set_xlabel(xlabel)
    ax.set_ylabel(YLABEL[metric])
    ax.set_title(f"{title}, {device}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, f"{suite}.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ratio_chart(rows, out, device):
    """fai / best peer (time ratio: > 1 means fai is faster) per row that has both."""
    fai = {key(r): r for r in rows if r["backend"] == "fai"}
    best = {}
    for r in rows:
        if r["backend"] in ("flash", "cudnn"):
            k = key(r)
            if k not in best or r["ms"] < best[k]["ms"]:
                best[k] = r
    items = [(k, best[k]["ms"] / fai[k]["ms"], best[k]["backend"]) for k in fai if k in best]
    if not items:
        return None
    items.sort(key=lambda it: (list(SUITES).index(it[0][0]) if it[0][0] in SUITES else 99, it[0][1:3] + it[0][3:]))
    fig, ax = plt.subplots(figsize=(max(7, 0.32 * len(items)), 4.2))
    colors = ["tab:red" if v >= 1 else "tab:gray" for _, v, _ in items]
    ax.bar(range(len(items)), [v for _, v, _ in items], color=colors)
    ax.axhline(1.0, color="black", linewidth=1)
    labels = []
    for (suite, b, sq, sk, hq, hk, d, frac, causal), _, peer in items:
        labels.append(f"{suite} b{b} " + (f"sk{sk}" if sq == 1 else f"s{sq} d{d}") + (f" {hq}/{hk}" if hq != hk else ""))
    ax.set_xticks(range(len(items)))
    ax.set_xticklabels(labels, rotation=75, fontsize=7)
    ax.set_ylabel("best peer time / fai time")
    ax.set_title(f"fai against the faster of FlashAttention-2 and cuDNN, {device}")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, "ratio-to-best-peer.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rows, ceilings = read(a.csv)
    os.makedirs(a.out, exist_ok=True)
    device = rows[0]["device"].replace("NVIDIA ", "") if rows else "?"
    for suite in SUITES:
        rs = [r for r in rows if r["suite"] == suite]
        if rs:
            print(chart(suite, rs, ceilings, a.out, device))
    path = ratio_chart(rows, a.out, device)
    if path:
        print(path)


if __name__ == "__main__":
    main()
