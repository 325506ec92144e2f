#!/usr/bin/env bash
# A quick device round for the KV-cache quantization work: the library, tests and fai-bench,
# test_api, test_decode (FP16 and every quantized cache, written by fai_kv_append), memcheck
# and racecheck on the small shapes, the sm_80-only build's test_decode --small (software
# FP8 decoding), then fai-bench --suite kv-quant.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
status=0
stamp build
cmake -S . -B build-q -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$OUT/build.log" 2>&1 &&
    cmake --build build-q -j16 >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
build-q/tests/test_api | tail -n 2 || status=1
stamp "test_decode ${QUANT_TEST_ARGS:-} (cache dtypes ${FAI_TEST_DTYPES:-all})"
build-q/tests/test_decode ${QUANT_TEST_ARGS:-} >"$OUT/test_decode.log" 2>&1 || status=1
grep -E "FAIL|test_decode:|\[int8\]|\[e4m3\]|\[e5m2\]" "$OUT/test_decode.log" | grep -vE "^  (call|simt)" | tail -n 60
grep -E "vs fp16" "$OUT/test_decode.log" | awk '{print $NF, $(NF-1)}' | sort | uniq -c | sort -rn | head -5
if [ "${QUANT_SANITIZE:-1}" = 1 ]; then
    for tool in memcheck racecheck; do
        stamp "$tool test_decode --small"
        compute-sanitizer --tool $tool --error-exitcode 9 build-q/tests/test_decode --small >"$OUT/$tool.log" 2>&1 || status=1
        grep -E "ERROR SUMMARY|RACECHECK SUMMARY|test_decode:" "$OUT/$tool.log" | tail -n 2
    done
fi
stamp "sm_80-only test_decode --small"
cmake -S . -B build-q80 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=80 -DFAI_BUILD_TOOLS=OFF >>"$OUT/build.log" 2>&1 &&
    cmake --build build-q80 -j16 --target test_decode >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
build-q80/tests/test_decode --small >"$OUT/test_decode80.log" 2>&1 || status=1
grep -E "FAIL|test_decode:" "$OUT/test_decode80.log" | tail -n 5
stamp "fai-bench --suite kv-quant"
build-q/tools/fai-bench --suite kv-quant --reps ${QUANT_REPS:-30} --csv "$OUT/kv-quant.csv" 2>/dev/null | tail -n 30 || status=1
stamp "done (status $status)"
exit $status
