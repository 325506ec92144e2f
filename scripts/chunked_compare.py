#!/usr/bin/env python3
"""Time ratios of two trees' `--suite chunked` rows in one ab-round.sh CSV.

usage: chunked_compare.py ab.csv TREE BASE

ab_compare.py keys rows by their note, which for the chunked suite holds each row's ratio to
the whole prompt and so differs between trees; this script keys them by the note's first
clause instead. Prints, per run and row, both times (ms) and TREE's time / BASE's, then the
`--check` results seen.
"""
import collections
import csv
import sys


def main():
    path, tree, base = sys.argv[1:4]
    header = None
    times = collections.defaultdict(dict)
    checks = set()
    for row in csv.reader(open(path)):
        if row[2] == "device":  # each run's CSV header, after the tree and run columns
            header = row
            continue
        rec = dict(zip(header, row))
        if rec["suite"] != "chunked":
            continue
        key = (row[1], rec["dtype"], rec["note"].split(";")[0][:40])
        times[key][row[0]] = float(rec["ms"])
        if rec.get("check"):
            checks.add((row[0], row[1].split()[0], rec["check"]))
    for key in sorted(times):
        t = times[key]
        if tree in t and base in t:
            print(f"{key[0][:48]:48s} {key[1]} {key[2]:42s} {tree} {t[tree]:8.4f} {base} {t[base]:8.4f}"
                  f"  {t[tree] / t[base]:.3f}")
    print("checks:", sorted(checks))


if __name__ == "__main__":
    main()
