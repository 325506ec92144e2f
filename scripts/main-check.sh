#!/usr/bin/env bash
# One device call after a merge: build everything for this GPU, run ctest (in parallel, the
# prefill tests on the Hopper kernel as ctest sets them up), the sanitizers over a chosen set
# of (tool, test) pairs on small shapes, and optionally bench/compare.py on chosen suites.
# Every phase is bounded by a timeout; at most 8 files come back from the device tool, so the
# logs go into one tarball and $OUT gets summary.txt, logs.tar.gz and the CSVs.
#   scripts/main-check.sh
# Environment:
#   CHECK_CTEST_EXCLUDE  ctest -E regex (default ^$: every test; test_decode takes about 150 s of it
#                        since the tests' host work runs on threads, session 21)
#   CHECK_CTEST_S        ctest time limit (default 300)
#   CHECK_SANITIZE       "tool:test ..." pairs (default: racecheck, initcheck and synccheck
#                        of test_prefill and test_prefill_cache); "" skips
#   CHECK_SANITIZE_S     time limit of all sanitizer runs together (default 200)
#   CHECK_COMPARE        bench/compare.py suites ("" skips, the default); CHECK_COMPARE_S (180)
#   CHECK_TOTAL_S        the whole call's limit (default 570): each phase's limit is cut to what
#                        is left of it, the compare run's share kept back from the sanitizers
set -uo pipefail
FINAL=${OUT:-$PWD/check-out}
mkdir -p "$FINAL"
LOGS=$(mktemp -d)
finish() {
    exec >/dev/null 2>&1
    sleep 1
    cp "$LOGS"/*.csv "$FINAL"/ 2>/dev/null
    cp "$LOGS/summary.txt" "$FINAL"/ 2>/dev/null
    tar -C "$LOGS" --exclude='*.csv' -czf "$FINAL/logs.tar.gz" . 2>/dev/null
}
trap finish EXIT
exec > >(tee "$LOGS/summary.txt") 2>&1
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
total=${CHECK_TOTAL_S:-570}
cmp_s=0
[ -n "${CHECK_COMPARE:-}" ] && cmp_s=${CHECK_COMPARE_S:-180}
upto() { # upto LIMIT RESERVE: LIMIT cut to what is left of the call less RESERVE (at least 1)
    local left=$((total - (SECONDS - t0) - $2))
    [ $left -lt $1 ] && echo $((left > 1 ? left : 1)) || echo $1
}
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
echo "device: $(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
status=0

stamp "build (sm_$arch)"
cmake -S . -B build-c -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$LOGS/build.log" 2>&1 &&
    cmake --build build-c -j"$(nproc)" >>"$LOGS/build.log" 2>&1 || { tail -n 30 "$LOGS/build.log"; exit 1; }

stamp "ctest -E '${CHECK_CTEST_EXCLUDE-^\$}'"
timeout "$(upto ${CHECK_CTEST_S:-300} $cmp_s)" ctest --test-dir build-c -j6 -E "${CHECK_CTEST_EXCLUDE-^\$}" --output-on-failure \
    >"$LOGS/ctest.log" 2>&1 || status=1
grep -E "tests passed|tests failed|\*\*\*|Failed|Timeout" "$LOGS/ctest.log" | tail -n 12

cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
pairs=${CHECK_SANITIZE-racecheck:test_prefill racecheck:test_prefill_cache initcheck:test_prefill synccheck:test_prefill initcheck:test_prefill_cache synccheck:test_prefill_cache}
deadline=$((SECONDS + $(upto ${CHECK_SANITIZE_S:-200} $cmp_s)))
for pair in $pairs; do
    tool=${pair%%:*} test=${pair#*:}
    left=$((deadline - SECONDS))
    if [ $left -le 5 ]; then
        echo "   $tool $test: not run (time)"
        continue
    fi
    stamp "$tool $test --small"
    FAI_PREFILL_SM90=1 timeout $left "$cs" --tool "$tool" --error-exitcode 86 "build-c/tests/$test" --small \
        >"$LOGS/$tool-$test.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && status=1
    echo "   rc $rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|cases,' "$LOGS/$tool-$test.log" | tail -n 2 | tr '\n' ' ')"
done

if [ -n "${CHECK_COMPARE:-}" ]; then
    stamp "bench/compare.py --suite $CHECK_COMPARE"
    FAI_LIBRARY="$PWD/build-c/libfai.so" PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1 \
        timeout "$(upto $cmp_s 0)" python3 bench/compare.py --suite "$CHECK_COMPARE" --csv "$LOGS/compare.csv" \
        >"$LOGS/compare.log" 2>&1 || status=1
    grep -c ' ms ' "$LOGS/compare.log"
fi
stamp "done, status $status"
exit $status
