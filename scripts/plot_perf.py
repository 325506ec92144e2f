#!/usr/bin/env python3
"""Draws the performance charts from CSVs (fai-bench --csv and shared/tools/sdpa_peers.py
--csv share their columns), on any machine: matplotlib only, no GPU.

  scripts/plot_perf.py --out docs/perf/h100-2026-11-25 fai.csv peers.csv [more.csv ...]

One line chart per suite present (x: sequence length, batch or prefill fraction; y: GB/s for
decode and memory-bound rows, TFLOP/s for prefill, microseconds for hybrid), one line per
implementation, the measured ceilings dashed (copy and read on GB/s charts; on TFLOP/s charts
the cuBLAS GEMM ceiling row of a fai-bench CSV and any --tflops-ceiling); plus bar charts of
fai / best peer and fai / FlashAttention-2 per row (peer time / fai time: above 1, fai is
faster): ratio-to-best-peer.png, ratio-to-flash.png.
Rows are matched on (suite, b, sq, sk, hq, hk, d, causal, prefill_frac).

--peers-text FILE takes the peers' GB/s from a scripts/compare.py decode table (text) when
their CSV is not at hand, joined to the fai rows of the CSVs on (suite, b, sk, hq/hk); their
time is the fai row's time scaled by the GB/s ratio (both count the same bytes)."""
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
PEERS = ("flash", "cudnn")
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


def label_of(r):
    if r["suite"] == "decode-gqa":
        return f"{r['b']}x{r['sk']}"
    return f"d{r['d']} x {r['sq']}"


def finish_row(r):
    r["ms"] = float(r["ms"])
    r["gbps"] = float(r["gbps"] or 0)
    r["tflops"] = float(r["tflops"] or 0)
    r["us"] = r["ms"] * 1000
    for k in ("b", "sq", "sk", "hq", "hk", "d"):
        r[k] = int(r[k])
    r["prefill_frac"] = float(r["prefill_frac"]) if r.get("prefill_frac") else None
    r["label"] = label_of(r)
    return r


def read(paths):
    """Rows with a time (each with its file in "src"), and the ceilings of each file:
    {path: {backend: {"gbps": x, "tflops": y}}}."""
    rows, ceilings = [], {}
    for path in paths:
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if r["suite"] == "ceiling":
                    ceilings.setdefault(path, {})[r["backend"]] = {m: float(r[m]) for m in ("gbps", "tflops")
                                                                    if r.get(m)}
                    continue
                if not r.get("ms"):
                    continue
                r["src"] = path
                rows.append(finish_row(r))
    return rows, ceilings


def read_peers_text(path, rows):
    """Peer rows from a compare.py decode table, joined to the fai rows already read."""
    fai = {(r["suite"], r["b"], r["sk"], r["hq"], r["hk"]): r for r in rows if r["backend"] == "fai" and r["sq"] == 1}
    out = []
    with open(path) as f:
        for line in f:
            t = line.split()
            if len(t) < 10 or not t[0].startswith("decode-") or "/" not in t[3]:
                continue
            hq, hk = (int(x) for x in t[3].split("/"))
            me = fai.get((t[0], int(t[1]), int(t[2]), hq, hk))
            if me is None:
                continue
            for backend, text in zip(PEERS, (t[6], t[7])):
                gbps = float(text)
                r = dict(me, backend=backend, gbps=gbps, note="from " + os.path.basename(path))
                r["ms"] = me["ms"] * me["gbps"] / gbps
                r["us"] = r["ms"] * 1000
                r["tflops"] = me["tflops"] * me["ms"] / r["ms"]
                out.append(r)
    return out


def key(r):
    return (r["suite"], r["b"], r["sq"], r["sk"], r["hq"], r["hk"], r["d"], r["prefill_frac"], r["causal"])


def chart(suite, rows, all_ceilings, extra_tflops, out, name, device, note):
    xcol, xlabel, metric, title = SUITES[suite]
    # The ceilings measured in the same run as fai's rows (else any file's).
    src = next((r["src"] for r in rows if r["backend"] == "fai" and r["src"] in all_ceilings), None)
    ceilings = all_ceilings.get(src) or next(iter(all_ceilings.values()), {})
    by_backend = defaultdict(list)
    for r in rows:
        by_backend[r["backend"]].append(r)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    categorical = xcol == "label"
    cats = []
    cat_order = (lambda r: (r["b"], r["sk"])) if suite == "decode-gqa" else (lambda r: (r["d"], r["sq"], r["b"]))
    for r in sorted(rows, key=cat_order):
        if r["label"] not in cats:
            cats.append(r["label"])
    for backend, rs in sorted(by_backend.items(), key=lambda kv: kv[0] != "fai"):
        rs = sorted(rs, key=lambda r: cats.index(r["label"]) if categorical else r[xcol])
        xs = [cats.index(r["label"]) if categorical else r[xcol] for r in rs]
        color, marker, ls = STYLE.get(backend, ("gray", ".", "-"))
        ax.plot(xs, [r[metric] for r in rs], marker=marker, linestyle=ls, color=color,
                label=LABEL.get(backend, backend), linewidth=2 if backend == "fai" else 1.3)
    if metric == "gbps":
        for cname, style in (("copy", "--"), ("read", ":")):
            if "gbps" in ceilings.get(cname, {}):
                v = ceilings[cname]["gbps"]
                ax.axhline(v, color="black", linestyle=style, linewidth=1, label=f"{cname} ceiling {v:.0f} GB/s")
                bottom, top = ax.get_ylim()
                if v * 1.01 > top:
                    ax.set_ylim(bottom, v * 1.01)
    if metric == "tflops":
        lines = list(extra_tflops)
        if "tflops" in ceilings.get("cublas", {}):
            lines.append(("cuBLAS FP16 GEMM", ceilings["cublas"]["tflops"]))
        for (lname, v), style in zip(lines, ("--", ":", "-.")):
            ax.axhline(v, color="black", linestyle=style, linewidth=1, label=f"{lname} {v:.0f} TFLOP/s")
        ax.set_ylim(bottom=0)
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
    ax.set_title(f"{title}, {device}" + (f"\n{note}" if note else ""), fontsize=11 if note else 12)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def bar_label(k):
    suite, b, sq, sk, hq, hk, d, frac, causal = k
    if suite == "hybrid":
        return f"hybrid {100 * frac:.0f}% prefill"
    text = f"{suite} b{b} " + (f"sk{sk}" if sq == 1 else f"s{sq}")
    if sq > 1 and d != 128:
        text += f" d{d}"
    return text + (f" {hq}/{hk}" if hq != hk else "")


def ratio_chart(rows, out, name, device, note, peers=PEERS):
    """fai / best of `peers` (time ratio: > 1 means fai is faster) per row that has both."""
    fai = {key(r): r for r in rows if r["backend"] == "fai"}
    best = {}
    for r in rows:
        if r["backend"] in peers:
            k = key(r)
            if k not in best or r["ms"] < best[k]["ms"]:
                best[k] = r
    items = [(k, best[k]["ms"] / fai[k]["ms"], best[k]["backend"]) for k in fai if k in best]
    if not items:
        return None
    order = list(SUITES)
    field = {"b": 1, "sq": 2, "sk": 3, "prefill_frac": 7}

    def order_key(it):
        k = it[0]
        xcol = SUITES[k[0]][0] if k[0] in SUITES else "label"
        if xcol in field:
            x = (k[field[xcol]] or 0,)
        else:  # the line charts' category order
            x = (k[1], k[3]) if k[0] == "decode-gqa" else (k[6], k[2], k[1])
        return (order.index(k[0]) if k[0] in order else 99,) + x + (k[1], k[2], k[3])

    items.sort(key=order_key)
    fig, ax = plt.subplots(figsize=(max(7, 0.3 * len(items) + 1.5), 4.6))
    colors = ["tab:red" if v >= 1 else "tab:gray" for _, v, _ in items]
    ax.bar(range(len(items)), [v for _, v, _ in items], color=colors)
    for i, (_, v, peer) in enumerate(items):
        ax.text(i, v + 0.01, f"{v:.3f}", ha="center", va="bottom", fontsize=6, rotation=90)
    ax.axhline(1.0, color="black", linewidth=1)
    ax.set_xticks(range(len(items)))
    ax.set_xticklabels([bar_label(k) for k, _, _ in items], rotation=75, ha="right", fontsize=7)
    ax.set_xlim(-0.7, len(items) - 0.3)
    ax.set_ylim(0, max(1.3, max(v for _, v, _ in items) + 0.15))
    ahead = sum(v >= 1 for _, v, _ in items)
    ax.set_ylabel("best peer time / fai time" if len(peers) > 1 else f"{peers[0]} time / fai time")
    against = "the faster of FlashAttention-2 and cuDNN" if len(peers) > 1 else LABEL.get(peers[0], peers[0])
    ax.set_title(f"fai against {against}, {device}: "
                 f"ahead on {ahead} of {len(items)} rows" + (f"\n{note}" if note else ""), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = os.path.join(out, f"{name}.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", nargs="+", help="fai-bench and sdpa_peers.py CSVs")
    ap.add_argument("--out", required=True, help="folder for the PNGs")
    ap.add_argument("--prefix", default="", help="put before every file name (e.g. r3-)")
    ap.add_argument("--peers-text", action="append", default=[], metavar="FILE",
                    help="a compare.py decode table to take the peers' GB/s from (may repeat)")
    ap.add_argument("--tflops-ceiling", action="append", default=[], metavar="NAME=VALUE",
                    help="a dashed line on the TFLOP/s charts (e.g. 'mma.sync ceiling=638')")
    ap.add_argument("--note", default="", help="a second title line on every chart (the data's origin)")
    a = ap.parse_args()
    rows, ceilings = read(a.csv)
    for path in a.peers_text:
        rows += read_peers_text(path, rows)
    extra = []
    for item in a.tflops_ceiling:
        lname, _, value = item.rpartition("=")
        extra.append((lname, float(value)))
    os.makedirs(a.out, exist_ok=True)
    device = rows[0]["device"].replace("NVIDIA ", "") if rows else "?"
    for suite in SUITES:
        rs = [r for r in rows if r["suite"] == suite]
        if rs:
            print(chart(suite, rs, ceilings, extra, a.out, a.prefix + suite, device, a.note))
    for name, peers in (("ratio-to-best-peer", PEERS), ("ratio-to-flash", ("flash",))):
        path = ratio_chart(rows, a.out, a.prefix + name, device, a.note, peers)
        if path:
            print(path)


if __name__ == "__main__":
    main()
