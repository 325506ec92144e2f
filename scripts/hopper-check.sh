#!/usr/bin/env bash
# One device round for the Hopper prefill kernel (prefill_sm90.cu): build for sm_90a, run
# test_wgmma, test_prefill and test_prefill_cache (with FAI_PREFILL_SM90=1: the kernel on
# every call it serves; and with FAI_PREFILL_SM90_PINGPONG=1), fai-bench's prefill, hybrid
# and chunked suites (HOPPER_SUITES) as shipped, with one block per work item
# (FAI_PREFILL_SM90_PERSISTENT=0), with ping-pong and on the mma.sync kernel, then memcheck and
# racecheck on test_prefill's "wgmma path" cases. Each step is bounded by a timeout (a
# barrier bug hangs rather than fails).
#   scripts/hopper-check.sh [extra ctest regex]
# HOPPER_TARGETS: the targets to build (default: the tests above and fai-bench; "all").
set -uo pipefail
# At most 8 files come back from the device tool: everything is written to a scratch folder,
# and at exit the CSVs, this output (summary.txt) and a tarball of the logs go to $OUT.
FINAL=${OUT:-$PWD/hopper-out}
mkdir -p "$FINAL"
OUT=$(mktemp -d)
finish() {
    exec >/dev/null 2>&1 # (tee sees the end of its input and writes the rest of summary.txt)
    sleep 1
    cp "$OUT"/*.csv "$FINAL"/ 2>/dev/null
    tar -C "$OUT" --exclude='*.csv' -czf "$FINAL/logs.tar.gz" . 2>/dev/null
    cp "$OUT/summary.txt" "$FINAL"/ 2>/dev/null
}
trap finish EXIT
exec > >(tee "$OUT/summary.txt") 2>&1
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
stamp "test_prefill --small, ping-pong"
FAI_PREFILL_SM90_PINGPONG=1 timeout 200 build-h/tests/test_prefill --small >"$OUT/test_prefill_pingpong.log" 2>&1 || status=1
grep -E "FAIL|test_prefill:" "$OUT/test_prefill_pingpong.log" | tail -n 10
stamp "test_prefill_cache"
timeout 300 build-h/tests/test_prefill_cache >"$OUT/test_prefill_cache.log" 2>&1 || status=1
grep -E "FAIL|test_prefill_cache:" "$OUT/test_prefill_cache.log" | tail -n 10
if [ -x build-h/tools/fai-bench ] && [ -z "${HOPPER_NO_BENCH:-}" ]; then
    # The Hopper kernel as shipped (planner's choice), then each experiment's switch, then the
    # mma.sync kernel, same call: one CSV each, compared row by row against the first.
    stamp "fai-bench prefill, hybrid and chunked suites: default, PERSISTENT=0, PINGPONG=1, SM90=0"
    runs="default:FAI_PREFILL_SM90_UNSET=1 tiles:FAI_PREFILL_SM90_PERSISTENT=0 pingpong:FAI_PREFILL_SM90_PINGPONG=1 mma:FAI_PREFILL_SM90=0"
    for r in $runs; do
        env -u FAI_PREFILL_SM90 ${r#*:} build-h/tools/fai-bench --suite ${HOPPER_SUITES:-prefill,hybrid,chunked} \
            --csv "$OUT/bench-${r%%:*}.csv" >"$OUT/bench-${r%%:*}.txt" 2>&1
    done
    python3 - "$OUT" <<'PY' || true
import csv, os, sys
def rows(name):
    with open(os.path.join(sys.argv[1], f"bench-{name}.csv")) as f:
        return list(csv.DictReader(f))
names = ["default", "tiles", "pingpong", "mma"]
data = {n: rows(n) for n in names}
keys = ("suite", "backend", "b", "sq", "sk", "hq", "hk", "d", "causal", "prefill_frac")
print(f"{'row':52s} {'default ms':>10s} {'TFLOP/s':>8s}  time / default: {'tiles':>6s} {'pingpong':>8s} {'mma':>6s}")
for i, x in enumerate(data["default"]):
    name = " ".join(str(x.get(k, "")) for k in keys)[:52]
    try:
        base = float(x["ms"])
        ratios = [float(data[n][i]["ms"]) / base for n in names[1:]]
    except (KeyError, ValueError, IndexError):
        continue
    print(f"{name:52s} {base:10.4f} {x.get('tflops', ''):>8s}  {'':15s}" + "".join(f"{r:8.3f}" for r in ratios))
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
# The paged reads (hopper-paged): memcheck over test_prefill_cache's paged cases.
stamp "memcheck: test_prefill_cache --small paged cases"
FAI_TEST_NAME="paged" timeout 200 "$cs" --tool memcheck --error-exitcode 86 build-h/tests/test_prefill_cache --small \
    >"$OUT/memcheck-cache.log" 2>&1
rc=$?
[ $rc -ne 0 ] && status=1
echo "   rc $rc"; grep -E "ERROR SUMMARY|FAIL" "$OUT/memcheck-cache.log" | tail -n 3
if [ $# -gt 0 ]; then
    stamp "ctest -R $1"
    ctest --test-dir build-h -R "$1" --output-on-failure 2>&1 | tail -n 15 || status=1
fi
stamp "done, status $status"
exit $status
