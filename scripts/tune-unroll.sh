#!/usr/bin/env bash
# Tuning experiment (GPU machine): rebuild fai-bench with other per-lane unroll depths and
# time the decode suites with --tune for each. Results in $OUT/unroll-*.txt.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
for v in "$@"; do   # each v: HB1,HB4 e.g. 4,4 8,2
    hb1=${v%,*} hb4=${v#*,}
    dir=build-u$hb1-$hb4
    flags="-DFAI_DECODE_UNROLL_HB1=$hb1 -DFAI_DECODE_UNROLL_HB4=$hb4"
    cmake -S . -B $dir -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a -DFAI_BUILD_TESTS=OFF \
        -DCMAKE_C_FLAGS="$flags" -DCMAKE_CUDA_FLAGS="$flags" >/dev/null && cmake --build $dir -j16 --target fai-bench >/dev/null || exit 1
    $dir/tools/fai-bench --suite decode --tune --reps 30 >"$OUT/unroll-$hb1-$hb4.txt" 2>/dev/null
    echo "== unroll HB1=$hb1 HB4=$hb4: best plan per row"
    awk 'NR>3' "$OUT/unroll-$hb1-$hb4.txt" | sort -k1,1 -k2,2n -k3,3n -k9,9n | awk '{k=$1" "$2" "$3; if (k!=p) {p=k; print $1, $2, $3, $6, $8, $9, $10}}'
done
