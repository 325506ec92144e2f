#!/usr/bin/env python3
"""Side-by-side table of fai-bench and sdpa_peers.py CSVs (same columns), joined on the
shape. Usage: compare.py FAI_CSV [PEERS_CSV] [--markdown]. Standard library only."""
import csv
import sys


def load(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def key(r):
    return (r["suite"], r["b"], r["sq"], r["sk"], r["hq"], r["hk"], r["d"], r.get("prefill_frac", ""))


def main(argv):
    md = "--markdown" in argv
    paths = [a for a in argv if not a.startswith("--")]
    fai = load(paths[0])
    peers = load(paths[1]) if len(paths) > 1 else []
    ceil = {r["backend"]: float(r["gbps"]) for r in fai if r["suite"] == "ceiling"}
    by_key = {}
    for r in peers:
        if r["ms"]:
            by_key.setdefault(key(r), {})[r["backend"]] = r
    head = ["suite", "b", "sk", "hq/hk", "fai GB/s", "%copy", "flash GB/s", "cudnn GB/s", "fai/best", "fai us"]
    rows, behind = [], 0
    for r in fai:
        if r["suite"] == "ceiling":
            continue
        p = by_key.get(key(r), {})
        g = float(r["gbps"])
        best = max([float(x["gbps"]) for x in p.values()] or [0])
        ratio = g / best if best else float("nan")
        behind += best > 0 and ratio < 1
        rows.append([r["suite"], r["b"], r["sk"], f'{r["hq"]}/{r["hk"]}', f"{g:.0f}",
                     f'{100 * g / ceil["copy"]:.1f}' if "copy" in ceil else "",
                     p.get("flash", {}).get("gbps", ""), p.get("cudnn", {}).get("gbps", ""),
                     f"{ratio:.3f}" + (" <" if best and ratio < 1 else ""), f'{1000 * float(r["ms"]):.1f}'])
    if md:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for row in rows:
            print("| " + " | ".join(str(x) for x in row) + " |")
    else:
        w = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
        for row in [head] + rows:
            print("  ".join(str(x).rjust(n) for x, n in zip(row, w)))
    if ceil:
        print(f'ceilings: copy {ceil.get("copy", 0):.0f} GB/s, read {ceil.get("read", 0):.0f} GB/s')
    if peers:
        print(f"rows behind the best peer: {behind} of {len(rows)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
