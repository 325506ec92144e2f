#!/usr/bin/env bash
# One device call: how much of a short call's time is the L2 flush's write-back. fai-bench's
# decode and kv-quant suites and the 4K-window-over-128K decode row, and bench/compare.py's
# decode suites (fai and both SDPA backends), each with --flush write (do_bench's memset) and
# --flush read. Output: $OUT/flush.tar.gz (CSVs and tables), $OUT/summary.txt.
set -uo pipefail
OUT=${OUT:-$PWD/flush-out}
mkdir -p "$OUT/r"
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*" | tee -a "$OUT/summary.txt"; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
stamp "build (sm_$arch) on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
cmake -S . -B build-flush -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$OUT/r/build.log" 2>&1 &&
    cmake --build build-flush -j16 --target fai-bench fai_shared >>"$OUT/r/build.log" 2>&1 || { tail -20 "$OUT/r/build.log"; exit 3; }
B=build-flush/tools/fai-bench
for f in ${FLUSH_MODES:-write read}; do
    stamp "fai-bench --flush $f"
    timeout 120 $B --flush $f --suite decode,kv-quant --reps 30 --csv "$OUT/r/fb-$f.csv" >"$OUT/r/fb-$f.txt" 2>&1
    for w in -1 4096; do
        timeout 40 $B --flush $f --window $w --shape b=1,sq=1,sk=131072,hq=32,hk=8,d=128 --shape b=1,sq=1,sk=4096,hq=32,hk=8,d=128 \
            --reps 50 --csv "$OUT/r/win$w-$f.csv" >"$OUT/r/win$w-$f.txt" 2>&1
    done
    grep -hE "^(decode|kv-|fp16|int8|fp8)" "$OUT/r/win-1-$f.txt" "$OUT/r/win4096-$f.txt" | head -8 >>"$OUT/summary.txt"
done
for f in ${FLUSH_MODES:-write read}; do
    stamp "compare.py --flush $f"
    FAI_LIBRARY=$PWD/build-flush/libfai.so PYTHONPATH=$PWD/python timeout 110 python3 bench/compare.py \
        --suite decode-seq,decode-batch,decode-gqa --flush $f --csv "$OUT/r/cmp-$f.csv" >"$OUT/r/cmp-$f.log" 2>&1
    echo "rc $?" >>"$OUT/summary.txt"
done
stamp done
tar -C "$OUT/r" -czf "$OUT/flush.tar.gz" . && rm -rf "$OUT/r"
