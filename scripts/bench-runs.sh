#!/usr/bin/env bash
# One device call: build fai-bench for this GPU, then time each argument list of BENCH_RUNS
# (';'-separated) through scripts/bench-ab.sh (runs run-1, run-2, ... in order, each row's
# time against the first run that timed the same shape).
# Output: $OUT/runs.tar.gz (run-N.txt, run-N.csv, build.log) and $OUT/summary.txt (the device
# and bench-ab's table).
#   BENCH_RUNS="--flush read --suite decode;--flush read --suite decode --page-size 16" scripts/bench-runs.sh
set -uo pipefail
OUT=${OUT:-$PWD/runs-out}
mkdir -p "$OUT/r"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
cmake -S . -B build-runs -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$OUT/r/build.log" 2>&1 &&
    cmake --build build-runs -j16 --target fai-bench >>"$OUT/r/build.log" 2>&1 || { tail -20 "$OUT/r/build.log"; exit 3; }
IFS=';' read -r -a runs <<<"${BENCH_RUNS:---suite decode}"
config=$(mktemp)
for i in "${!runs[@]}"; do
    echo "run-$((i + 1)) | | ${runs[$i]}" >>"$config"
done
{
    echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
    bash "$(dirname "$0")/bench-ab.sh" "$config" build-runs "$OUT/r"
} >"$OUT/summary.txt" 2>&1
tar -C "$OUT/r" -czf "$OUT/runs.tar.gz" . && rm -rf "$OUT/r"
cat "$OUT/summary.txt"
