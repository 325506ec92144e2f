#!/usr/bin/env bash
# Nsight Compute of single decode launches under fai-bench, in one device call: per named run,
# one launch of the kernel whose mangled name matches the run's regex, with the speed-of-light,
# warp-state, instruction and memory sections, and (NCU_SOURCE=1) warp-state sampling per SASS
# instruction summarized by scripts/ncu_source_summary.py.
#   scripts/ncu-decode.sh
# Environment:
#   NCU_RUNS    "label|mangled-name regex|fai-bench args;..." (default: the tensor-core kernel's
#               int8 and FP8 E4M3 instantiations on MHA 128 x 8K, as the kv-quant rows run them)
#   NCU_SOURCE  1: also the per-SASS stall summary of each run (source-LABEL.txt)
# Output in $OUT (or ./ncu-out): summary.txt (scripts/ncu_summary.py over every run),
# source-*.txt, ncu-raw.tar.gz (raw CSVs and ncu's stderr).
set -uo pipefail
OUT=${OUT:-$PWD/ncu-out}
RAW=$OUT/raw
mkdir -p "$OUT" "$RAW"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
build=build-ncu
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" \
    >"$OUT/build.log" 2>&1 && cmake --build "$build" -j"$(nproc)" --target fai-bench >>"$OUT/build.log" 2>&1 ||
    { tail -n 30 "$OUT/build.log"; exit 2; }
ncu=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu /usr/local/cuda/bin/ncu 2>/dev/null | head -1)
[ -n "$ncu" ] || { echo "ncu-decode: ncu not found" >&2; exit 2; }
mha="--shape b=128,sq=1,sk=8192,hq=32,hk=32"
runs=${NCU_RUNS:-"int8|decode_mma_kernelILi128ELi3ELi1E|$mha,kv=int8;e4m3|decode_mma_kernelILi128ELi3ELi2E|$mha,kv=fp8_e4m3"}
IFS=';' read -r -a list <<<"$runs"
for entry in "${list[@]}"; do
    IFS='|' read -r label regex args <<<"$entry"
    echo "== $label: $regex, fai-bench $args"
    # shellcheck disable=SC2086
    "$ncu" --clock-control none --kernel-name-base mangled --kernel-name "regex:$regex" --launch-count 1 \
        --section SpeedOfLight --section ComputeWorkloadAnalysis --section WarpStateStats --section Occupancy \
        --section LaunchStats --section InstructionStats --section MemoryWorkloadAnalysis \
        --metrics dram__bytes_read.sum --csv --page raw \
        "$build/tools/fai-bench" $args --reps 1 --warmup 0 >"$RAW/ncu-$label.csv" 2>"$RAW/ncu-$label.err" ||
        { echo "ncu failed for $label"; tail -n 5 "$RAW/ncu-$label.err"; }
    if [ "${NCU_SOURCE:-0}" = 1 ]; then
        # shellcheck disable=SC2086
        "$ncu" --clock-control none --kernel-name-base mangled --kernel-name "regex:$regex" --launch-count 1 \
            --section SourceCounters --section WarpStateStats -f -o "$RAW/src-$label" \
            "$build/tools/fai-bench" $args --reps 1 --warmup 0 >/dev/null 2>"$RAW/src-$label.err" &&
            "$ncu" -i "$RAW/src-$label.ncu-rep" --page source --csv --print-source sass >"$RAW/src-$label.csv" \
                2>>"$RAW/src-$label.err" &&
            python3 "$(dirname "$0")/ncu_source_summary.py" "$RAW/src-$label.csv" >"$OUT/source-$label.txt" ||
            { echo "ncu source page failed for $label"; tail -n 5 "$RAW/src-$label.err"; }
        rm -f "$RAW/src-$label.ncu-rep"
    fi
done
python3 "$(dirname "$0")/ncu_summary.py" "$RAW"/ncu-*.csv >"$OUT/summary.txt" 2>&1
cat "$OUT/summary.txt"
tar -C "$RAW" -czf "$OUT/ncu-raw.tar.gz" . && rm -rf "$RAW"
