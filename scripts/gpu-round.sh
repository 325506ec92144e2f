#!/usr/bin/env bash
# A short device round when device time is scarce: one build, the tests that changed (small
# shapes plus named long cases), the sanitizers on the small shapes, the Python device tests
# and fai-bench --suite kv-quant. Everything is bounded by `timeout` so one slow phase cannot
# eat the whole call; a compact summary comes last. Knobs (environment):
#   ROUND_DECODE_LONG   FAI_TEST_NAME of the long test_decode cases to run (default: the
#                       int8 70000-key split; "" skips)
#   ROUND_BENCH         fai-bench suites (default kv-quant; "" skips)
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
LOGS=$(mktemp -d) # full logs; $OUT gets all.txt (each phase's FAIL lines and tail) and summary.txt
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
status=0
summary=""
note() { summary+="$1"$'\n'; }
stamp build
cmake -S . -B build-r -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$OUT/build.log" 2>&1 &&
    cmake --build build-r -j16 >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
rm -f "$OUT/build.log"
run() { # name, timeout, command...
    local name=$1 limit=$2
    shift 2
    stamp "$name"
    timeout "$limit" "$@" >"$LOGS/$name.log" 2>&1
    local rc=$?
    [ $rc -ne 0 ] && status=1
    note "$(printf '%-28s rc %-3s %s' "$name" "$rc" "$(grep -E 'cases, [0-9]+ failed|ERROR SUMMARY|RACECHECK SUMMARY|checks passed|^OK|^FAILED|Ran [0-9]+ tests' "$LOGS/$name.log" | tr '\n' ' ' | cut -c1-120)")"
    printf '%s' "$summary" >"$OUT/summary.txt"
    { echo "==== $name (rc $rc)"; grep -B2 -A3 -E "FAIL|ERROR|Error" "$LOGS/$name.log" | head -n 80; echo "---- tail"; tail -n 25 "$LOGS/$name.log"; } >>"$OUT/all.txt"
    grep -E "FAIL" "$LOGS/$name.log" | head -n 8
}
# Most important first: a call cut short by the device budget still returns the logs so far.
run test_api 30 build-r/tests/test_api
run test_prefill 180 build-r/tests/test_prefill
run test_decode_small 150 build-r/tests/test_decode --small
run memcheck_prefill 120 compute-sanitizer --tool memcheck --error-exitcode 9 build-r/tests/test_prefill --small
FAI_LIBRARY="$PWD/build-r/libfai.so" FAI_ABI_LAYOUT="$PWD/build-r/tests/abi_layout" PYTHONPATH="$PWD/python" \
    run python_package 120 python3 -m unittest discover -s python/tests -v
[ -n "${ROUND_DECODE_LONG-GQA 32/8, 70000}" ] &&
    FAI_TEST_DTYPES=${ROUND_DECODE_DTYPES:-int8} FAI_TEST_NAME="${ROUND_DECODE_LONG-GQA 32/8, 70000}" run test_decode_long 120 build-r/tests/test_decode
run memcheck_decode 120 compute-sanitizer --tool memcheck --error-exitcode 9 build-r/tests/test_decode --small
run racecheck_prefill 150 compute-sanitizer --tool racecheck --error-exitcode 9 build-r/tests/test_prefill --small
if [ -n "${ROUND_BENCH-kv-quant}" ]; then
    stamp "fai-bench --suite ${ROUND_BENCH-kv-quant}"
    timeout 150 build-r/tools/fai-bench --suite "${ROUND_BENCH-kv-quant}" --reps 20 --csv "$OUT/bench.csv" >"$OUT/bench.txt" 2>"$OUT/bench.err" || status=1
    tail -n 32 "$OUT/bench.txt"
fi
stamp "summary (status $status)"
printf '%s' "$summary"
exit $status
