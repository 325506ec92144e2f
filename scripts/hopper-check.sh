#!/usr/bin/env bash
# One device round for the Hopper prefill kernel (prefill_sm90.cu): build for sm_90a, run
# test_wgmma, test_prefill and test_prefill_cache (with FAI_PREFILL_SM90=1: the kernel on
# every call it serves), fai-bench's prefill, hybrid and chunked suites with the kernel on
# (as shipped) and off, then memcheck and racecheck on test_prefill's "wgmma path" cases. Each
# step is bounded by a timeout (a barrier bug hangs rather than fails). Logs under $OUT.
#   scripts/hopper-check.sh [extra ctest regex]
# HOPPER_TARGETS: the targets to build (default: the three tests; "all" for everything).
set -uo pipefail
OUT=${OUT:-$PWD/hopper-out}
mkdir -p "$OUT"
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
stamp "build (sm_90a)"
cmake -S . -B build-h -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a >"$OUT/build.log" 2>&1 &&
    cmake --build build-h -j16 --target ${HOPPER_TARGETS:-test_prefill test_prefill_cache test_wgmma fai-bench} \
        >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
status=0
stamp "test_wgmma"
timeout 120 build-h/tests/test_wgmma 2>&1 | tail -n 2 || status=1
# (FAI_PREFILL_SM90=1: the Hopper kernel on every call it serves, short sequences too, as ctest runs it)
export FAI_PREFILL_SM90=1
stamp "test_prefill"
timeout 300 build-h/tests/test_prefill >"$OUT/test_prefill.log" 2>&1 || status=1
grep -E "FAIL|test_prefill:" "$OUT/test_prefill.log" | tail -n 20
stamp "test_prefill_cache"
timeout 300 build-h/tests/test_prefill_cache >"$OUT/test_prefill_cache.log" 2>&1 || status=1
grep -E "FAIL|test_prefill_cache:" "$OUT/test_prefill_cache.log" | tail -n 10
if [ -x build-h/tools/fai-bench ] && [ -z "${HOPPER_NO_BENCH:-}" ]; then
    stamp "fai-bench prefill, hybrid and chunked suites, Hopper kernel on, then off (FAI_PREFILL_SM90=0)"
    env -u FAI_PREFILL_SM90 build-h/tools/fai-bench --suite prefill,hybrid,chunked --csv "$OUT/bench-sm90.csv" \
        >"$OUT/bench-sm90.txt" 2>&1
    FAI_PREFILL_SM90=0 build-h/tools/fai-bench --suite prefill,hybrid,chunked --csv "$OUT/bench-mma.csv" >"$OUT/bench-mma.txt" 2>&1
    python3 - "$OUT/bench-sm90.csv" "$OUT/bench-mma.csv" <<'PY' || true
import csv, sys
def rows(p):
    with open(p) as f:
        return list(csv.DictReader(f))
a, b = rows(sys.argv[1]), rows(sys.argv[2])
keys = ("suite", "backend", "b", "sq", "sk", "hq", "hk", "d", "causal", "prefill_frac")
print(f"{'row':58s} {'sm90 ms':>9s} {'TFLOP/s':>8s} {'mma ms':>9s} {'speedup':>8s}")
for x, y in zip(a, b):
    name = " ".join(str(x.get(k, "")) for k in keys)[:58]
    try:
        print(f"{name:58s} {float(x['ms']):9.4f} {x.get('tflops', ''):>8s} {float(y['ms']):9.4f} "
              f"{float(y['ms']) / float(x['ms']):8.2f}")
    except (KeyError, ValueError):
        pass
PY
fi
cs=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
for tool in memcheck racecheck; do
    stamp "$tool: test_prefill wgmma-path cases"
    FAI_TEST_NAME="wgmma path" timeout 240 "$cs" --tool $tool --error-exitcode 86 build-h/tests/test_prefill \
        >"$OUT/$tool.log" 2>&1
    rc=$?
    [ $rc -ne 0 ] && status=1
    echo "   rc $rc; $(grep -cE '^=+ (Invalid|Error|Race|.*hazard)' "$OUT/$tool.log") reports"
    grep -E "ERROR SUMMARY|RACECHECK SUMMARY|FAIL" "$OUT/$tool.log" | tail -n 3
done
if [ $# -gt 0 ]; then
    stamp "ctest -R $1"
    ctest --test-dir build-h -R "$1" --output-on-failure 2>&1 | tail -n 15 || status=1
fi
stamp "done, status $status"
exit $status
