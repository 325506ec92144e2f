#!/usr/bin/env python3
"""Side-by-side table of fai-bench and sdpa_peers.py CSVs (same columns), joined on the
shape. Usage: compare.py FAI_CSV [PEERS_CSV] [--markdown]. Standard library only.
A bench/compare.py CSV holds fai's rows and the peers' of one run (one timer, the same inputs):
give it alone (FAI_CSV's own flash and cudnn rows are the peers when there is no PEERS_CSV).
Joining two files (fai-bench's and sdpa_peers.py's) pairs two timers, run counts and sets of
inputs; a line on stderr says so.

One table per kind of row present in FAI_CSV:
  decode  (sq = 1)        GB/s of fai, flash and cudnn; fai/best = fai GB/s / best peer's
  prefill (sq > 1)        TFLOP/s of fai, flash and cudnn; fai/flash and fai/cudnn are speed
                          ratios (peer time / fai time; > 1: fai is faster)
  hybrid  (prefill_frac)  times in us of fai (one call), fai-nohost, fai-separate, flash and
                          cudnn; fai/best = best peer time / fai time, sep/fai = fai-separate
                          time / fai time (> 1: the one call is faster)
A ratio below 1 is marked '<'."""
import csv
import sys


def load(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def key(r):
    return (r["suite"], r.get("dtype", "") or "fp16", r["b"], r["sq"], r["sk"], r["hq"], r["hk"], r["d"],
            r.get("causal", ""), r.get("prefill_frac", ""))


PEERS = ("flash", "cudnn")  # the peers a row is compared with (a peer file may hold others)


def emit(head, rows, md):
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(str(x) for x in row) + " |")
    else:
        w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            print("  ".join(str(x).rjust(n) for x, n in zip(row, w)))


def ms_of(r):
    """The row's time in ms, or None (a shape the backend refused)."""
    return float(r["ms"]) if r and r.get("ms") else None


def ratio(peer_ms, fai_ms):
    """Speed of fai relative to a peer (peer time / fai time), as text with the '<' mark."""
    if peer_ms is None or not fai_ms:
        return ""
    x = peer_ms / fai_ms
    return f"{x:.3f}" + (" <" if x < 1 else "")


def decode_table(fai, by_key, ceil):
    head = ["suite", "b", "sk", "hq/hk", "fai GB/s", "%copy", "flash GB/s", "cudnn GB/s", "fai/best", "fai us"]
    rows, behind = [], 0
    for r in fai:
        p = by_key.get(key(r), {})
        if not r.get("gbps"):  # a shape fai-bench skipped or refused
            rows.append([r["suite"], r["b"], r["sk"], f'{r["hq"]}/{r["hk"]}', "n/a", "", "", "", "", ""])
            continue
        g = float(r["gbps"])
        best = max([float(p[b]["gbps"]) for b in PEERS if p.get(b, {}).get("gbps")] or [0])
        ratio_ = g / best if best else float("nan")
        behind += best > 0 and ratio_ < 1
        rows.append([r["suite"], r["b"], r["sk"], f'{r["hq"]}/{r["hk"]}', f"{g:.0f}",
                     f'{100 * g / ceil["copy"]:.1f}' if "copy" in ceil else "",
                     p.get("flash", {}).get("gbps", ""), p.get("cudnn", {}).get("gbps", ""),
                     f"{ratio_:.3f}" + (" <" if best and ratio_ < 1 else ""), f'{1000 * float(r["ms"]):.1f}'])
    return head, rows, behind


def prefill_table(fai, by_key):
    head = ["suite", "b", "sq", "sk", "hq/hk", "d", "fai TFLOP/s", "flash TFLOP/s", "cudnn TFLOP/s",
            "fai/flash", "fai/cudnn", "fai GB/s", "fai ms"]
    rows, behind = [], 0
    for r in fai:
        p = by_key.get(key(r), {})
        t = ms_of(r)
        peer = {b: ms_of(p.get(b)) for b in ("flash", "cudnn")}
        known = [x for x in peer.values() if x is not None]
        best = min(known) if known else None
        behind += bool(t and best is not None and best < t)
        rows.append([r["suite"], r["b"], r["sq"], r["sk"], f'{r["hq"]}/{r["hk"]}', r["d"],
                     f'{float(r["tflops"]):.1f}' if t else "n/a",
                     p.get("flash", {}).get("tflops", ""), p.get("cudnn", {}).get("tflops", ""),
                     ratio(peer["flash"], t), ratio(peer["cudnn"], t),
                     f'{float(r["gbps"]):.0f}' if t else "", f"{t:.4f}" if t else ""])
    return head, rows, behind


def hybrid_table(fai_all, by_key):
    """One line per hybrid shape; fai's three backends come from FAI_CSV."""
    mine, order = {}, []
    for r in fai_all:
        if r.get("prefill_frac"):
            if key(r) not in mine:
                order.append(key(r))
            mine.setdefault(key(r), {})[r["backend"]] = r
    head = ["suite", "b", "frac", "fai us", "nohost us", "sep us", "flash us", "cudnn us", "fai/best", "sep/fai"]
    rows, behind = [], 0

    def us(ms):
        return f"{1000 * ms:.1f}" if ms is not None else "n/a"

    for k in order:
        f, p = mine[k], by_key.get(k, {})
        t, nohost, sep = (ms_of(f.get(b)) for b in ("fai", "fai-nohost", "fai-separate"))
        peer = [x for x in (ms_of(p.get("flash")), ms_of(p.get("cudnn"))) if x is not None]
        best = min(peer) if peer else None
        behind += bool(t and best is not None and best < t)
        r = f.get("fai") or next(iter(f.values()))
        rows.append([r["suite"], r["b"], r["prefill_frac"], us(t), us(nohost), us(sep),
                     us(ms_of(p.get("flash"))) if "flash" in p else "",
                     us(ms_of(p.get("cudnn"))) if "cudnn" in p else "",
                     ratio(best, t), ratio(sep, t)])
    return head, rows, behind


def main(argv):
    md = "--markdown" in argv
    paths = [a for a in argv if not a.startswith("--")]
    fai = load(paths[0])
    peers = load(paths[1]) if len(paths) > 1 else fai
    if len(paths) > 1 and paths[1] != paths[0]:
        print(f"compare.py: fai from {paths[0]}, peers from {paths[1]}: two runs (timers, run counts, inputs); "
              "bench/compare.py's CSV alone times them alike", file=sys.stderr)
    ceil = {r["backend"]: float(r["gbps"]) for r in fai if r["suite"] == "ceiling"}
    by_key = {}
    for r in peers:
        if r["ms"] and r["backend"] in PEERS:
            by_key.setdefault(key(r), {})[r["backend"]] = r
    plain = [r for r in fai if r["suite"] != "ceiling" and not r.get("prefill_frac") and r["backend"] == "fai"]
    decode = [r for r in plain if r["sq"] == "1"]
    prefill = [r for r in plain if r["sq"] != "1"]
    printed = False
    if decode:
        head, rows, behind = decode_table(decode, by_key, ceil)
        emit(head, rows, md)
        if ceil:
            print(f'ceilings: copy {ceil.get("copy", 0):.0f} GB/s, read {ceil.get("read", 0):.0f} GB/s')
        if by_key:
            print(f"rows behind the best peer: {behind} of {len(rows)}")
        printed = True
    for table, rows_in, what in ((prefill_table, prefill, "prefill"), (hybrid_table, fai, "hybrid")):
        head, rows, behind = table(rows_in, by_key)
        if not rows:
            continue
        if printed:
            print()
        emit(head, rows, md)
        if by_key:
            print(f"{what} rows behind the best peer: {behind} of {len(rows)}")
        printed = True
    if ceil and not decode:
        print(f'ceilings: copy {ceil.get("copy", 0):.0f} GB/s, read {ceil.get("read", 0):.0f} GB/s')
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
