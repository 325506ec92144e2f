#!/usr/bin/env bash
# Tries other prefill tile shapes in one GPU round: builds fai-bench once per variant with
# -D overrides of src/prefill_args.h (in parallel), then times every variant on the same
# rows. Registers and spills of each variant's prefill kernels come from ptxas -v.
#   scripts/prefill-tune.sh "name:-DFAI_PREFILL_BN_128=64 -DFAI_PREFILL_STAGES_128=2" ...
# The baseline (no overrides) always runs first. Rows: FAI_TUNE_SHAPES (space-separated
# fai-bench --shape values) or the default set below. Output in $OUT (or ./gpu-out).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
shapes=${FAI_TUNE_SHAPES:-"b=16,sq=8192,sk=8192,hq=32,hk=32,d=128,causal=1 b=32,sq=4096,sk=4096,hq=32,hk=32,d=128,causal=1 b=128,sq=1024,sk=1024,hq=32,hk=32,d=128,causal=1 b=2048,sq=128,sk=128,hq=32,hk=32,d=128,causal=1 b=2,sq=16384,sk=16384,hq=32,hk=32,d=64,causal=1 b=2,sq=16384,sk=16384,hq=16,hk=16,d=256,causal=1 b=100,sq=128,sk=128,prefill_frac=0.6 b=100,sq=128,sk=128,prefill_frac=0.9"}
args=()
for s in $shapes; do args+=(--shape "$s"); done

variants=("base:" "$@")
for v in "${variants[@]}"; do
    name=${v%%:*} flags=${v#*:}
    (cmake -S . -B "build-tune-$name" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" \
        -DFAI_BUILD_TESTS=OFF -DCMAKE_C_FLAGS="$flags" -DCMAKE_CUDA_FLAGS="$flags -Xptxas -v" >"$OUT/tune-build-$name.log" 2>&1 &&
        cmake --build "build-tune-$name" -j6 --target fai-bench >>"$OUT/tune-build-$name.log" 2>&1 ||
        echo "variant $name: build failed (see tune-build-$name.log)") &
done
wait
for v in "${variants[@]}"; do
    name=${v%%:*}
    echo "== $name: ${v#*:}"
    awk '/Compiling entry function .*prefill_kernel/ { match($0, /ILi[0-9]+/); d = substr($0, RSTART + 3, RLENGTH - 3) }
         d && /spill stores/ { sp = $5 } d && /Used [0-9]+ registers/ { printf "  d%s: %s registers, %s B spill stores\n", d, $5, sp; d = "" }' \
        "$OUT/tune-build-$name.log" | sort -u
    [ -x "build-tune-$name/tools/fai-bench" ] || continue
    "build-tune-$name/tools/fai-bench" "${args[@]}" --csv "$OUT/tune-$name.csv" >"$OUT/tune-$name.txt" 2>/dev/null
    grep -vE "^#|^$|suite" "$OUT/tune-$name.txt"
done
