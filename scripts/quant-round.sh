#!/usr/bin/env bash
# A quick device round for the KV-cache quantization work: the library and tests (no
# fai-bench), test_api, test_decode (FP16 and every quantized cache, written by fai_kv_append),
# memcheck on the small shapes, the sm_80-only build's test_decode --small (software FP8
# decoding), then the kv-quant timings (tools/bench_quant.c, stand-alone).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
status=0
stamp build
cmake -S . -B build-q -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch -DFAI_BUILD_TOOLS=OFF >"$OUT/build.log" 2>&1 &&
    cmake --build build-q -j16 >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
build-q/tests/test_api | tail -n 2 || status=1
stamp test_decode
build-q/tests/test_decode >"$OUT/test_decode.log" 2>&1 || status=1
grep -E "FAIL|test_decode:|\[int8\]|\[e4m3\]|\[e5m2\]" "$OUT/test_decode.log" | grep -vE "^  (call|simt)" | tail -n 60
grep -E "vs fp16" "$OUT/test_decode.log" | awk '{print $NF, $(NF-1)}' | sort | uniq -c | sort -rn | head -5
if [ "${QUANT_SANITIZE:-1}" = 1 ]; then
    stamp "memcheck test_decode --small"
    compute-sanitizer --tool memcheck --error-exitcode 9 build-q/tests/test_decode --small >"$OUT/memcheck.log" 2>&1 || status=1
    grep -E "ERROR SUMMARY|test_decode:" "$OUT/memcheck.log" | tail -n 2
fi
stamp "sm_80-only test_decode --small"
cmake -S . -B build-q80 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=80 -DFAI_BUILD_TOOLS=OFF >>"$OUT/build.log" 2>&1 &&
    cmake --build build-q80 -j16 --target test_decode >>"$OUT/build.log" 2>&1 || { tail -n 30 "$OUT/build.log"; exit 1; }
build-q80/tests/test_decode --small >"$OUT/test_decode80.log" 2>&1 || status=1
grep -E "FAIL|test_decode:" "$OUT/test_decode80.log" | tail -n 5
stamp "kv-quant timings"
gcc -std=c11 -O2 -DFAI_BENCH_QUANT_STANDALONE -Iinclude -Isrc -Itools -I/usr/local/cuda/include -c tools/bench_quant.c -o build-q/bq.o &&
    nvcc -O2 -Iinclude -Isrc -c tools/bench_util.cu -o build-q/bu.o &&
    nvcc build-q/bq.o build-q/bu.o build-q/libfai.a -o build-q/bench_quant &&
    build-q/bench_quant ${QUANT_REPS:-30} "$OUT/kv-quant.csv" || status=1
stamp "done (status $status)"
exit $status
