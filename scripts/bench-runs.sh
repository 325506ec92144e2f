#!/usr/bin/env bash
# One device call: build fai-bench for this GPU, then run it once per argument list of
# BENCH_RUNS (';'-separated), each with a time limit of BENCH_RUN_S seconds (default 60).
# Output: $OUT/runs.tar.gz (run-N.txt, run-N.csv, build.log) and $OUT/summary.txt (each
# run's arguments, exit status and last lines).
#   BENCH_RUNS="--flush read --suite decode;--flush read --suite decode --page-size 16" scripts/bench-runs.sh
set -uo pipefail
OUT=${OUT:-$PWD/runs-out}
mkdir -p "$OUT/r"
t0=$SECONDS
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)" >"$OUT/summary.txt"
cmake -S . -B build-runs -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$OUT/r/build.log" 2>&1 &&
    cmake --build build-runs -j16 --target fai-bench >>"$OUT/r/build.log" 2>&1 || { tail -20 "$OUT/r/build.log"; exit 3; }
echo "built in $((SECONDS - t0)) s" >>"$OUT/summary.txt"
IFS=';' read -r -a runs <<<"${BENCH_RUNS:---suite decode}"
n=0
for args in "${runs[@]}"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    timeout "${BENCH_RUN_S:-60}" build-runs/tools/fai-bench $args --csv "$OUT/r/run-$n.csv" >"$OUT/r/run-$n.txt" 2>&1
    { echo "== run $n (rc $?, $((SECONDS - t0)) s): $args"; grep -vE "^\[|^#|^fai-bench" "$OUT/r/run-$n.txt" | tail -n 4; } >>"$OUT/summary.txt"
done
tar -C "$OUT/r" -czf "$OUT/runs.tar.gz" . && rm -rf "$OUT/r"
cat "$OUT/summary.txt"
