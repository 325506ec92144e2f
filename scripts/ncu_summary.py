#!/usr/bin/env python3
"""A compact table of Nsight Compute's raw CSV (ncu --csv --page raw), one row per captured
launch: the kernel's template arguments, time, instructions, pipe use (% of peak while
active), achieved occupancy and the three largest warp stalls (cycles per issued
instruction). Metrics that this ncu does not have are left blank. Standard library only.

  python3 scripts/ncu_summary.py ncu-chunked.csv [ncu-plain.csv ...]"""
import csv
import re
import sys

COLUMNS = [  # (header, metric)
    ("us", "gpu__time_duration.sum"),
    ("Minst", "smsp__inst_executed.sum"),
    ("regs", "launch__registers_per_thread"),
    ("occ%", "sm__warps_active.avg.pct_of_peak_sustained_active"),
    ("tensor%", "tensor"),  # the busiest tensor pipe: hmma (mma.sync) or gmma (wgmma), see TENSOR
    ("fma%", "sm__pipe_fma_cycles_active.avg.pct_of_peak_sustained_active"),
    ("alu%", "sm__pipe_alu_cycles_active.avg.pct_of_peak_sustained_active"),
    # (these two under other names in some Nsight Compute versions: the first one present counts)
    ("xu%", ("sm__pipe_xu_cycles_active.avg.pct_of_peak_sustained_active",
             "sm__inst_executed_pipe_xu.avg.pct_of_peak_sustained_active")),
    ("issue%", ("sm__inst_issued.avg.pct_of_peak_sustained_active",
                "sm__issue_active.avg.pct_of_peak_sustained_active",
                "sm__issue_active.avg.pct_of_peak_sustained_elapsed")),
    ("dram%", "gpu__dram_throughput.avg.pct_of_peak_sustained_elapsed"),
    ("MBread", "dram__bytes_read.sum"),  # with ncu-prefill.sh's NCU_MEMORY=1
]
# Tensor pipes by name (mma.sync counts on hmma; Hopper's wgmma on a gmma pipe where this ncu
# has one): the column takes the largest.
TENSOR = re.compile(r"^sm__pipe_tensor_op_[a-z0-9_]+_cycles_active\.avg\.pct_of_peak_sustained_active$")
# (the stall metrics' names vary a little between Nsight Compute versions)
STALL = re.compile(r"smsp__average_warps?_(?:latency_)?issue_stalled_([a-z_]+?)(?:_per_issue_active)?\.ratio$")


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return None


def short_name(name):
    m = re.search(r"(prefill_sm90|prefill|decode_mma|decode)_kernel<([^>]*)>", name)
    return (m.group(1) + "<" + m.group(2).replace(" ", "") + ">") if m else name[:60]


def rows_of(path):
    with open(path, newline="") as fh:
        lines = list(fh)
    # ncu's CSV shares stdout with the profiled program's output: start at its header row
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID",')), len(lines))
    lines = lines[start:]
    reader = csv.reader(lines)
    header = next(reader, None)
    if not header:
        return []
    units = dict(zip(header, next(reader, [])))  # the units row
    out = []
    for rec in reader:
        rec = dict(zip(header, rec))
        if "Kernel Name" not in rec:
            continue
        cells = [short_name(rec["Kernel Name"])]
        for _, metric in COLUMNS:
            if metric == "tensor":
                vals = [number(x) for k, x in rec.items() if TENSOR.match(k)]
                vals = [x for x in vals if x is not None]
                cells.append(f"{max(vals):.1f}" if vals else "")
                continue
            if isinstance(metric, tuple):
                metric = next((x for x in metric if number(rec.get(x, "")) is not None), metric[0])
            v = number(rec.get(metric, ""))
            if v is not None and metric == "gpu__time_duration.sum":
                v /= 1000.0  # ns -> us
            if v is not None and metric == "smsp__inst_executed.sum":
                v /= 1e6
            if v is not None and metric == "dram__bytes_read.sum":
                unit = units.get(metric, "byte").lower()
                v *= {"kbyte": 1e3, "mbyte": 1e6, "gbyte": 1e9}.get(unit, 1.0) / 1e6
            cells.append("" if v is None else f"{v:.1f}")
        stalls = sorted(((number(v) or 0.0, STALL.match(k).group(1)) for k, v in rec.items() if STALL.match(k)),
                        reverse=True)[:3]
        cells.append(" ".join(f"{n}={x:.1f}" for x, n in stalls))
        out.append(cells)
    return out


def main(paths):
    head = ["kernel"] + [h for h, _ in COLUMNS] + ["top stalls (cycles/inst)"]
    for path in paths:
        rows = rows_of(path)
        print(f"# {path}: {len(rows)} launches")
        if not rows:
            continue
        w = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
        for r in [head] + rows:
            print("  ".join(str(x).ljust(n) if i in (0, len(head) - 1) else str(x).rjust(n)
                            for i, (x, n) in enumerate(zip(r, w))))


if __name__ == "__main__":
    main(sys.argv[1:])
