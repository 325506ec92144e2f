#!/usr/bin/env bash
# Hardware counters of fai's kernels under named fai-bench runs, in one device call: Nsight
# Compute captures every launch whose kernel name matches NCU_KERNEL (default: the prefill
# kernel), and scripts/ncu_summary.py prints per launch the time, instructions, pipe use
# (tensor, FMA, ALU, XU = the MUFU's exp2/rcp/tanh), occupancy and the top warp stalls, so
# two variants (paged and packed K/V, soft-capped and plain) can be set side by side.
#
#   scripts/ncu-prefill.sh [BUILD_DIR]        (default: configure and build build-ncu)
# Environment:
#   NCU_RUNS     "label|fai-bench args;..." (default below: the chunked suite, and 4 x 8K
#                GQA plain and soft-capped); each run is one fai-bench call with --reps 1
#                --warmup 0 added, so each row launches its kernels once. A run written
#                "label|regex|fai-bench args" captures the one launch whose mangled kernel
#                name matches regex instead (decode kernels: "int8|decode_mma_kernelILi128ELi3ELi1E|
#                --shape b=128,sq=1,sk=8192,hq=32,hk=32,kv=int8" is the tensor-core kernel's
#                int8 instantiation at head dim 128 with a 3-stage ring)
#   NCU_KERNEL   ncu --kernel-name regex (default: both prefill kernels, mma.sync and Hopper)
#   NCU_COUNT    launches captured per run (default 16)
#   NCU_MEMORY   1: also the memory workload section and the DRAM bytes read (MBread)
#   NCU_SOURCE   1: also, per run, one launch with warp-state sampling per SASS instruction
#                (SourceCounters): scripts/ncu_source_summary.py lists the instructions
#                where the warps stall most, and why (source-LABEL.txt)
# Output in $OUT (or ./ncu-out): summary.txt, source-*.txt, and ncu-raw.tar.gz holding
# ncu-LABEL.csv (every raw metric of the sections), the source pages and ncu's stderr (one
# file: the device tool returns at most 8). ncu runs with --clock-control none (the device's own clocks; see the device
# notes), so times are the kernel's own under replay, for comparing, not for reporting.
set -uo pipefail
OUT=${OUT:-$PWD/ncu-out}
RAW=$OUT/raw
mkdir -p "$OUT" "$RAW"
build=${1:-}
if [ -z "$build" ]; then
    build=build-ncu
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
    [ "$arch" = 90 ] && arch=90a
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" \
        >"$OUT/build.log" 2>&1 && cmake --build "$build" -j"$(nproc)" --target fai-bench >>"$OUT/build.log" 2>&1 ||
        { tail -n 30 "$OUT/build.log"; exit 2; }
fi
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "ncu-prefill: ncu not found" >&2; exit 2; }
gqa="--shape b=4,sq=8192,sk=8192,hq=32,hk=8,d=128,causal=1"
runs=${NCU_RUNS:-"chunked|--suite chunked;plain|$gqa;softcap|$gqa --softcap 50"}
IFS=';' read -r -a list <<<"$runs"
for entry in "${list[@]}"; do
    IFS='|' read -r label f2 f3 <<<"$entry"
    if [ -n "$f3" ]; then # label|mangled-name regex|args: that one launch
        args=$f3
        pick=(--kernel-name-base mangled --kernel-name "regex:$f2")
        count=1
    else
        args=$f2
        pick=(--kernel-name "regex:${NCU_KERNEL:-prefill(_sm90)?_kernel}")
        count=${NCU_COUNT:-16}
    fi
    echo "== $label: fai-bench $args"
    # shellcheck disable=SC2086
    "$ncu" --clock-control none "${pick[@]}" --launch-count "$count" \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
        --section LaunchStats --section InstructionStats ${NCU_MEMORY:+--section MemoryWorkloadAnalysis --metrics dram__bytes_read.sum} --csv --page raw \
        "$build/tools/fai-bench" $args --reps 1 --warmup 0 >"$RAW/ncu-$label.csv" 2>"$RAW/ncu-$label.err" ||
        { echo "ncu failed for $label"; tail -n 5 "$RAW/ncu-$label.err"; }
    if [ "${NCU_SOURCE:-0}" = 1 ]; then
        # shellcheck disable=SC2086
        "$ncu" --clock-control none "${pick[@]}" --launch-count 1 \
            --section SourceCounters --section WarpStateStats -f -o "$RAW/src-$label" \
            "$build/tools/fai-bench" $args --reps 1 --warmup 0 >/dev/null 2>"$RAW/src-$label.err" &&
            "$ncu" -i "$RAW/src-$label.ncu-rep" --page source --csv --print-source sass >"$RAW/src-$label.csv" \
                2>>"$RAW/src-$label.err" &&
            python3 "$(dirname "$0")/ncu_source_summary.py" "$RAW/src-$label.csv" >"$OUT/source-$label.txt" ||
            { echo "ncu source page failed for $label"; tail -n 5 "$RAW/src-$label.err"; }
        rm -f "$RAW/src-$label.ncu-rep"
    fi
done
python3 "$(dirname "$0")/ncu_summary.py" "$RAW"/ncu-*.csv | tee "$OUT/summary.txt"
tar -C "$RAW" -czf "$OUT/ncu-raw.tar.gz" . && rm -rf "$RAW"
