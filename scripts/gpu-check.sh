#!/usr/bin/env bash
# One round on the GPU machine: configure, build (this card's architecture only), run every
# test (GPU tests included), compute-sanitizer on the kernels (small shapes), fai-bench on
# the decode suites, bench/compare.py (fai through the Python package and PyTorch SDPA's flash
# and cuDNN backends, one timer, the same inputs) on the same shapes, the same for the prefill
# and hybrid suites, then compact tables last: fai-bench's own (with its ceilings) and
# compare.py's side by side. Logs and CSVs go to $OUT (or ./gpu-out).
#   scripts/gpu-check.sh [test] [test80] [sanitize] [bench] [peers] [tune]
#                        [test-prefill] [test-variants] [bench-prefill] [peers-prefill] [compare]
# Default: all but test-variants, tune and compare (bench/compare.py on every suite, with
# charts). peers / peers-prefill: bench/compare.py on the decode / prefill and hybrid suites
# (GPU_CHECK_COMPARE_ARGS: more of its arguments, e.g. "--graphs"; not "--flush read", whose decode-batch
# rows came out faster than the HBM in session 25, docs/perf/README.md); the side by
# side reads that CSV alone, not fai-bench's CSV joined with shared/tools/sdpa_peers.py's
# (two timers, run counts and inputs). test-prefill runs build-gpu/tests/test_prefill alone (for quick
# rounds; skipped when test runs, whose ctest includes it). bench-prefill times
# `fai-bench --suite prefill,hybrid`: ~58 calls a row, ~0.11 s for one call of every row at
# FlashAttention-2's speed on an H100 (the seq 8192 row alone ~26 ms), so ~10 s in all;
# fai-bench runs fewer reps (>= 10) of any row whose runs would take over 3 s.
set -uo pipefail
# The device tool brings back at most 8 files: everything is written to a scratch folder, and
# at exit the CSVs, this output (summary.txt) and a tarball of the logs go to $OUT.
FINAL=${OUT:-$PWD/gpu-out}
mkdir -p "$FINAL"
OUT=$(mktemp -d)
finish() {
    cp "$OUT"/*.csv "$FINAL"/ 2>/dev/null
    tar -C "$OUT" --exclude='*.csv' -czf "$FINAL/logs.tar.gz" . 2>/dev/null
    cp "$OUT/summary.txt" "$FINAL"/ 2>/dev/null
}
trap finish EXIT
exec > >(tee "$OUT/summary.txt") 2>&1
phases=${*:-test test80 sanitize bench peers test-prefill bench-prefill peers-prefill}
has() { [[ " $phases " == *" $1 "* ]]; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }

stamp "configure + build for sm_${arch:-90a}"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" >"$OUT/build.log" 2>&1 &&
    cmake --build build-gpu -j16 >>"$OUT/build.log" 2>&1 || { tail -n 40 "$OUT/build.log"; exit 1; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,temperature.gpu --format=csv,noheader

status=0
if has test; then
    stamp "ctest"
    # -j4: test_decode alone takes ~7 minutes (its references and the 2^31-offset caches
    # are host work), so the other tests run beside it on the same GPU.
    ctest --test-dir build-gpu -j4 -V >"$OUT/ctest.log" 2>&1 || status=1
    grep -E "FAIL|tests passed|tests failed|Test +#|test_decode:" "$OUT/ctest.log" | sed -E 's/^[0-9]+: //' | tail -n 40
fi
if has test80; then
    # The default build's other target: compute_80 code, JIT-compiled for this card.
    stamp "test_prefill and test_decode, sm_80-only build"
    cmake -S . -B build-80 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=80 >"$OUT/build80.log" 2>&1 &&
        cmake --build build-80 -j16 --target test_decode test_prefill test_codec_device >>"$OUT/build80.log" 2>&1 ||
        { tail -n 20 "$OUT/build80.log"; exit 1; }
    build-80/tests/test_codec_device 2>&1 | tail -n 3 || status=1
    build-80/tests/test_prefill >"$OUT/test80-prefill.log" 2>&1 || status=1
    grep -E "FAIL|test_prefill:" "$OUT/test80-prefill.log" | tail -n 5
    build-80/tests/test_decode ${FAI_TEST80_DECODE_ARGS:-} >"$OUT/test80.log" 2>&1 || status=1
    grep -E "FAIL|test_decode:" "$OUT/test80.log" | tail -n 5
fi
if has test-prefill && ! has test; then
    stamp "test_prefill"
    if [ -x build-gpu/tests/test_prefill ]; then
        build-gpu/tests/test_prefill >"$OUT/test-prefill.log" 2>&1 || status=1
        grep -E "FAIL|test_prefill:" "$OUT/test-prefill.log" | tail -n 10
    else
        echo "build-gpu/tests/test_prefill not built"; status=1
    fi
fi
if has test-variants; then
    # Prefill tile shapes that are not the default (src/prefill_args.h): the tests (and
    # memcheck) on a build with them, flags in both the C and CUDA compiles.
    flags=${FAI_VARIANT_FLAGS:--DFAI_PREFILL_BN_96=64 -DFAI_PREFILL_STAGES_96=2}
    stamp "test_prefill with $flags"
    cmake -S . -B build-variant -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" \
        -DFAI_BUILD_TOOLS=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CUDA_FLAGS="$flags" >"$OUT/build-variant.log" 2>&1 &&
        cmake --build build-variant -j16 --target test_prefill >>"$OUT/build-variant.log" 2>&1 ||
        { tail -n 20 "$OUT/build-variant.log"; exit 1; }
    build-variant/tests/test_prefill >"$OUT/test-variant.log" 2>&1 || status=1
    grep -E "FAIL|test_prefill:" "$OUT/test-variant.log" | tail -n 5
    compute-sanitizer --tool memcheck --error-exitcode 9 build-variant/tests/test_prefill --small \
        >"$OUT/sanitize-variant.log" 2>&1 || status=1
    grep -E "ERROR SUMMARY|test_prefill:" "$OUT/sanitize-variant.log" | tail -n 2
fi
if has sanitize; then
    for tool in ${FAI_SANITIZERS:-memcheck racecheck initcheck synccheck}; do
        stamp "compute-sanitizer $tool (small shapes)"
        compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/test_decode --small >"$OUT/sanitize-$tool.log" 2>&1 || status=1
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test_decode:" "$OUT/sanitize-$tool.log" | tail -n 3
        if [ -x build-gpu/tests/test_prefill ]; then
            stamp "compute-sanitizer $tool test_prefill (small shapes)"
            compute-sanitizer --tool $tool --error-exitcode 9 build-gpu/tests/test_prefill --small >"$OUT/sanitize-$tool-prefill.log" 2>&1 || status=1
            grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test_prefill:" "$OUT/sanitize-$tool-prefill.log" | tail -n 3
        else
            echo "build-gpu/tests/test_prefill not built"; status=1
        fi
    done
fi
if has bench; then
    stamp "fai-bench decode suites"
    build-gpu/tools/fai-bench --suite decode --csv "$OUT/fai.csv" >"$OUT/bench.txt" 2>/dev/null || status=1
    head -n 2 "$OUT/bench.txt"
fi
if has bench-prefill; then
    stamp "fai-bench prefill and hybrid suites"
    build-gpu/tools/fai-bench --suite prefill,hybrid --csv "$OUT/fai-prefill.csv" >"$OUT/bench-prefill.txt" 2>"$OUT/bench-prefill.err" ||
        { status=1; tail -n 5 "$OUT/bench-prefill.err"; }
    head -n 2 "$OUT/bench-prefill.txt"
fi
if has tune; then
    stamp "fai-bench --tune"
    build-gpu/tools/fai-bench --suite decode --tune --reps 20 >"$OUT/tune.txt" 2>/dev/null
    echo "best plan per row:"
    awk 'NR>3' "$OUT/tune.txt" | sort -k1,1 -k2,2n -k3,3n -k9,9n |
        awk '{k=$1" "$2" "$3; if (k!=p) {p=k; print $1, $2, $3, $4, $6, $7, $8, $9, $10}}'
fi
# fai (this build's libfai.so through the Python package) and the peers, timed alike.
compare_py() {  # SUITES CSV LOG
    FAI_LIBRARY="$PWD/build-gpu/libfai.so" PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1 \
        python3 bench/compare.py --suite "$1" ${GPU_CHECK_COMPARE_ARGS:-} --csv "$2" >"$3" 2>&1
}
if has peers; then
    stamp "bench/compare.py: fai and PyTorch SDPA, decode suites"
    compare_py decode-seq,decode-batch,decode-gqa "$OUT/peers.csv" "$OUT/peers.log" || tail -n 5 "$OUT/peers.log"
fi
if has peers-prefill; then
    stamp "bench/compare.py: fai and PyTorch SDPA, prefill and hybrid suites"
    compare_py prefill-seq,prefill-batch,hybrid,prefill-gqa,head-dims "$OUT/peers-prefill.csv" "$OUT/peers-prefill.log" ||
        tail -n 5 "$OUT/peers-prefill.log"
fi
if has compare; then
    # fai through the Python package and SDPA's flash/cuDNN on the same tensors, every suite.
    stamp "bench/compare.py (Python package vs SDPA)"
    FAI_LIBRARY="$PWD/build-gpu/libfai.so" PYTHONPATH="$PWD/python" PYTHONUNBUFFERED=1 \
        python3 bench/compare.py --csv "$OUT/compare.csv" >"$OUT/compare.log" 2>&1 || { status=1; tail -n 5 "$OUT/compare.log"; }
    [ -f "$OUT/compare.csv" ] && python3 scripts/plot_perf.py --out "$OUT/charts" "$OUT/compare.csv" | tail -n 1
fi
# fai-bench's tables alone (its own timer, %copy of its ceilings); then fai against the peers
# from compare.py's CSVs, each file holding fai's rows and the peers' of one run.
for f in fai fai-prefill; do
    [ -f "$OUT/$f.csv" ] || continue
    stamp "fai-bench: $f.csv"
    python3 scripts/compare.py "$OUT/$f.csv"
done
for f in peers peers-prefill; do
    [ -f "$OUT/$f.csv" ] || continue
    stamp "side by side (bench/compare.py, one timer): $f.csv"
    python3 scripts/compare.py "$OUT/$f.csv"
done
stamp "done (status $status)"
exit $status
