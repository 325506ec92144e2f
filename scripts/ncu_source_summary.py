#!/usr/bin/env python3
"""Where a kernel's warps stall, per SASS instruction, from Nsight Compute's source page
(ncu -i REPORT --page source --csv --print-source sass, of a launch profiled with the
SourceCounters section): the instructions with the most warp-state samples, each with its
share of all samples and its largest stall reasons where the page has them, then the samples
summed by opcode. The page's column names differ between Nsight Compute versions, so the
columns are found by name patterns; what cannot be found is left out. Standard library only.

  python3 scripts/ncu_source_summary.py src-LABEL.csv [--top N]"""
import csv
import re
import sys


def number(text):
    try:
        return float(str(text).replace(",", ""))
    except ValueError:
        return None


def main(argv):
    if not argv:
        sys.exit(__doc__)
    top = 40
    if "--top" in argv:
        top = int(argv[argv.index("--top") + 1])
    with open(argv[0], newline="") as fh:
        lines = list(fh)
    # the page's header is the first row naming the instruction text (ncu may print more first)
    start = next((i for i, l in enumerate(lines) if re.search(r'"(# )?Address"', l) and "Source" in l), None)
    if start is None:
        sys.exit(f"{argv[0]}: no source page header found")
    rows = list(csv.reader(lines[start:]))
    header = rows[0]
    col = {name: i for i, name in enumerate(header)}
    src = next(i for n, i in col.items() if n == "Source")
    addr = next(i for n, i in col.items() if re.match(r"(# )?Address$", n))
    samples = next((i for n, i in col.items() if re.match(r"Warp Stall Sampling \(All", n)), None)
    if samples is None:
        sys.exit(f"{argv[0]}: no warp stall sampling column (profile with --section SourceCounters)")
    # per-reason columns, where this version prints them (names like stall_wait or "Stall Wait")
    reasons = {i: re.sub(r"^(smsp__pcsamp_warps_issue_)?stall(ed)?[_ ]?", "", n, flags=re.I)
               for n, i in col.items() if re.match(r"(smsp__pcsamp_warps_issue_)?stall(ed)?[_ ]", n, re.I)}
    data = []
    for r in rows[1:]:
        if len(r) <= max(src, addr, samples):
            continue
        s = number(r[samples])
        if s is None:
            continue
        why = sorted(((number(r[i]) or 0.0, name) for i, name in reasons.items() if i < len(r)), reverse=True)
        data.append((s, r[addr], r[src].strip(), [(v, n) for v, n in why[:3] if v > 0]))
    total = sum(d[0] for d in data) or 1.0
    print(f"# {argv[0]}: {len(data)} instructions, {total:.0f} samples")
    print(f"{'samples':>8} {'%':>5}  {'address':>8}  instruction  [top reasons]")
    for s, a, text, why in sorted(data, key=lambda d: -d[0])[:top]:
        extra = " [" + ", ".join(f"{n} {v:.0f}" for v, n in why) + "]" if why else ""
        print(f"{s:8.0f} {100 * s / total:5.1f}  {a:>8}  {text[:70]}{extra}")
    by_op = {}
    for s, _, text, _ in data:
        op = re.sub(r"^@!?U?P\w+\s+", "", text).split(" ")[0] if text else "?"
        by_op[op] = by_op.get(op, 0.0) + s
    print("\n# samples by opcode")
    for op, s in sorted(by_op.items(), key=lambda t: -t[1])[:25]:
        print(f"{s:8.0f} {100 * s / total:5.1f}  {op}")


if __name__ == "__main__":
    main(sys.argv[1:])
