#!/usr/bin/env bash
# The side-by-side report's device round (issue 8), in one device call: build, then
#   1. bench/compare.py: fai through the Python package and PyTorch SDPA's FlashAttention-2
#      and cuDNN backends on the same tensors, every standard suite, eager calls ->
#      compare.csv, then each call as a CUDA graph replay -> compare-graphs.csv
#   2. fai-bench --check on every suite (each row's output against the CPU reference)
#   3. optional sanitizer runs (REPORT_SANITIZE: "tool:test ..." with the tests' --small)
# Charts are drawn afterwards on any machine: scripts/plot_perf.py --out DIR compare.csv.
#   scripts/report-round.sh
# Environment: REPORT_COMPARE_S (each mode), REPORT_CHECK_S (time limits, default 240 and 120),
# REPORT_CHECK=0 skips fai-bench --check,
# REPORT_SANITIZE (default none), REPORT_SUITES (compare.py --suite, default every suite),
# REPORT_DTYPE (compare.py --dtype: fp16, the default, or bf16 for every backend),
# REPORT_MODES (default "eager graphs": either alone runs compare.py once),
# REPORT_BUILD (a build folder already built for this GPU, e.g. .ab/TREE/build: no build here).
# Output in $OUT (or ./report-out): compare{,-graphs}.{csv,log}, check.txt, summary.txt.
set -uo pipefail
OUT=${OUT:-$PWD/report-out}
mkdir -p "$OUT"
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
summary="device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"$'\n'

B=${REPORT_BUILD:-build-gpu}
if [ -z "${REPORT_BUILD:-}" ]; then
    stamp "build (sm_$arch)"
    cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$OUT/build.log" 2>&1 &&
        cmake --build build-gpu -j"$(nproc)" >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 2; }
fi

for mode in ${REPORT_MODES:-eager graphs}; do
    stamp "bench/compare.py ($mode)"
    name=compare && [ $mode = graphs ] && name=compare-graphs
    FAI_LIBRARY="$(cd "$B" && pwd)/libfai.so" PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1 \
        timeout "${REPORT_COMPARE_S:-240}" python3 bench/compare.py ${REPORT_SUITES:+--suite "$REPORT_SUITES"} ${REPORT_DTYPE:+--dtype "$REPORT_DTYPE"} \
        $([ $mode = graphs ] && echo --graphs) --csv "$OUT/$name.csv" >"$OUT/$name.log" 2>&1
    summary+="compare.py $mode rc $?: $(grep -c ' ms ' "$OUT/$name.log") timed, $(grep -c 'n/a' "$OUT/$name.log") n/a"$'\n'
done

if [ "${REPORT_CHECK:-1}" != 0 ]; then
    stamp "fai-bench --check, every suite"
    timeout "${REPORT_CHECK_S:-120}" "$B/tools/fai-bench" --suite all --check --reps 3 >"$OUT/check.txt" 2>"$OUT/check.err"
    rc=$?
    summary+="fai-bench --check rc $rc: $(grep -- '--check' "$OUT/check.err" | tail -n 1)"$'\n'
    tail -n 3 "$OUT/check.err" >>"$OUT/check.txt"
fi

for run in ${REPORT_SANITIZE:-}; do
    tool=${run%%:*} test=${run#*:}
    stamp "$tool $test --small"
    timeout 150 compute-sanitizer --tool "$tool" --error-exitcode 9 "$B/tests/$test" --small >"$OUT/san.log" 2>&1
    rc=$?
    summary+="$(printf '%-10s %-20s rc %-3s %s' "$tool" "$test" "$rc" "$(grep -E 'SUMMARY|cases' "$OUT/san.log" | tr '\n' ' ' | cut -c1-100)")"$'\n'
done
rm -f "$OUT/san.log" "$OUT/check.err"
stamp "done"
printf '%s' "$summary" | tee "$OUT/summary.txt"
