#!/usr/bin/env python3
"""The table of an A/B round (scripts/ab-round.sh's ab.csv): one row per benchmark shape, one
column per (tree, run), each a time in ms and its ratio to the base tree's time on that
shape in the same run (else in the base tree's first run); the base is --base TREE, by
default the last tree in the file (ab-round's convention: the baseline goes last). Ceiling rows are left out. A
row's note joins its key without the measured numbers some suites write there (chunked: "x whole
1.213", kv-quant: "x_fp16 1.785; other kernel 3.45 ms") and without the "flush F; reps N" that
ends every measured row's note (a prefill row's reps are cut where its runs would take over
3 s, which a slower tree can hit alone), so that the trees' rows line up.
Standard library only.

  python3 scripts/ab_compare.py ab.csv [--base main] [--runs 1,3]"""
import csv
import re
import sys

KEY = ("suite", "dtype", "b", "sq", "sk", "hq", "hk", "d", "causal", "prefill_frac", "note")


def note_key(note):
    """The note as part of a row's key: no timing words, no measured numbers."""
    note = re.sub(r"(; )?flush \w+; reps \d+", "", note)
    return re.sub(r" ?-?\d+\.\d+", "", note)


def main(argv):
    if not argv:
        sys.exit(__doc__)
    path, base, runs = argv[0], None, None
    if "--base" in argv:
        base = argv[argv.index("--base") + 1]
    if "--runs" in argv:
        runs = set(argv[argv.index("--runs") + 1].split(","))
    header, columns, table, order, labels = None, [], {}, [], []
    with open(path, newline="") as fh:
        for rec in csv.reader(fh):
            if len(rec) < 3:
                continue
            # (files of older rounds have commas inside the label column: the label is what
            # lies between the tree and the run's own columns)
            if "device" in rec[1:]:  # a run's header row
                header = rec[rec.index("device", 1):]
                continue
            if header is None or len(rec) < len(header) + 2:
                continue
            cut = len(rec) - len(header)
            tree, label, rest = rec[0], ",".join(rec[1:cut]), rec[cut:]
            row = dict(zip(header, rest))
            if row.get("suite") == "ceiling" or not row.get("ms"):
                continue
            if label not in labels:
                labels.append(label)
            run = label.split(" ")[0].lstrip("#") if label.startswith("#") else str(labels.index(label) + 1)
            if runs and run not in runs:
                continue
            col = (tree, run)
            if col not in columns:
                columns.append(col)
            key = tuple(note_key(row.get(k, "")) if k == "note" else row.get(k, "") for k in KEY)
            if key not in table:
                table[key] = {}
                order.append(key)
            table[key][col] = float(row["ms"])
    if not columns:
        sys.exit(f"{path}: no timed rows")
    base = base or columns[-1][0]
    base_col = next((c for c in columns if c[0] == base), columns[-1])
    names = [f"{t}#{r}" for t, r in columns]
    print(f"# {path}: ms, and time / {base_col[0]}'s in the same run")
    for i, label in enumerate(labels):
        print(f"#   run {label if label.startswith('#') else f'#{i + 1} {label}'}")
    print(f"{'shape':<54}" + "".join(f"{n:>18}" for n in names))
    for key in order:
        row = table[key]
        shape = " ".join(x for x in (key[0], f"b{key[2]}", f"{key[3]}x{key[4]}", f"{key[5]}/{key[6]}",
                                     f"d{key[7]}", key[1], key[10]) if x)
        cells = []
        for c in columns:
            v = row.get(c)
            ref = row.get((base_col[0], c[1]), row.get(base_col))  # the base tree's same run first
            cells.append(f"{v:9.4f} {v / ref:7.3f}" if v is not None and ref else
                         (f"{v:9.4f} {'':>7}" if v is not None else f"{'-':>17}"))
        print(f"{shape[:54]:<54}" + "".join(f"{x:>18}" for x in cells))


if __name__ == "__main__":
    main(sys.argv[1:])
