#!/usr/bin/env bash
# One device call that exercises the measurement-tooling changes (docs/perf/README.md's
# methods): fai-bench's kv-quant suite alone (the unreported warm-up row, FP16 before and after
# the quantized dtypes), the 'flush F; reps N' that ends every measured row's note, the
# windowed pair and byte counts (a window over every key must count the plain row's FLOPs; a
# windowed hybrid row's decode sequences only the window's keys), and bench/compare.py eager
# and as graph replays (rotated order, warm-up row, notes, versions, fai's difference from
# cuDNN). Builds build-gpu (fai-bench and libfai.so only), which scripts/gpu-check.sh reuses.
# Output: $OUT/tooling.tar.gz (CSVs, tables, logs), $OUT/summary.txt.
set -uo pipefail
OUT=${OUT:-$PWD/tooling-out}
mkdir -p "$OUT/r"
R=$OUT/r
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*" | tee -a "$OUT/summary.txt"; }
say() { tee -a "$OUT/summary.txt"; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
stamp "build (sm_$arch) on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch >"$R/build.log" 2>&1 &&
    cmake --build build-gpu -j16 --target fai-bench fai_shared >>"$R/build.log" 2>&1 || { tail -20 "$R/build.log"; exit 3; }
B=build-gpu/tools/fai-bench

stamp "kv-quant alone: the warm-up row, FP16 before / after"
timeout 240 $B --suite kv-quant --reps 30 --csv "$R/kvq.csv" >"$R/kvq.txt" 2>"$R/kvq.err" || echo "rc $?" | say
grep -m1 "warm-up run" "$R/kvq.err" | say
grep -A22 "^kv-quant: decoding" "$R/kvq.txt" | say
timeout 60 $B --shape b=1,sq=1,sk=131072,hq=32,hk=8,d=128,kv=fp8_e4m3 --flush read --reps 30 --csv "$R/kvshape.csv" \
    >"$R/kvshape.txt" 2>"$R/kvshape.err" || echo "rc $?" | say
grep -m1 "warm-up run" "$R/kvshape.err" | say
cut -d, -f2,4,13,16 "$R/kvshape.csv" | say

stamp "notes: flush and reps (write, the default; read) and the JSON header"
timeout 90 $B --suite decode-batch,prefill-batch --csv "$R/notes-write.csv" --json "$R/notes-write.json" \
    >"$R/notes-write.txt" 2>&1 || echo "rc $?" | say
timeout 60 $B --suite decode-batch --flush read --reps 20 --csv "$R/notes-read.csv" >"$R/notes-read.txt" 2>&1 || echo "rc $?" | say
cut -d, -f2,3,5,16 "$R/notes-write.csv" "$R/notes-read.csv" | head -14 | say
grep '"flush"' "$R/notes-write.json" | say

stamp "window counts: plain, a window over every key, a 16-key window"
for w in -1 1000000 15; do
    timeout 120 $B --suite prefill-seq,hybrid --window $w --reps 10 --csv "$R/win$w.csv" >"$R/win$w.txt" 2>&1 || echo "rc $?" | say
done
python3 - "$R" <<'PY' | say
import csv, os, sys
def rows(w):
    return [r for r in csv.DictReader(open(os.path.join(sys.argv[1], f"win{w}.csv")))
            if r["suite"] != "ceiling" and r["backend"] == "fai" and r["ms"]]
plain, big, w15 = rows(-1), rows(1000000), rows(15)
print("FLOPs of a window over every key / plain's (want 1.000):",
      " ".join(f"{float(b['tflops']) * float(b['ms']) / (float(p['tflops']) * float(p['ms'])):.3f}" for p, b in zip(plain, big)))
out = []
for r in w15:
    if not r["prefill_frac"]:
        continue
    b, sq, sk, hq, hk, d = (int(r[k]) for k in ("b", "sq", "sk", "hq", "hk", "d"))
    npre = round(b * float(r["prefill_frac"]))
    ndec = b - npre
    want = 2 * (2 * (npre * sq + ndec) * hq * d + 2 * (npre * sk + ndec * min(16, sk)) * hk * d)
    out.append(f"{float(r['gbps']) * float(r['ms']) * 1e6 / want:.3f}")
print("hybrid bytes with a 16-key window / expected (want 1.000):", " ".join(out))
PY

export FAI_LIBRARY=$PWD/build-gpu/libfai.so PYTHONPATH=$PWD/python PYTHONUNBUFFERED=1
stamp "bench/compare.py eager (write flush)"
timeout 200 python3 bench/compare.py --suite decode-batch,hybrid,head-dims --csv "$R/cmp-eager.csv" >"$R/cmp-eager.log" 2>&1 ||
    echo "rc $?" | say
head -n 8 "$R/cmp-eager.log" | say
grep "max|" "$R/cmp-eager.log" | say
stamp "bench/compare.py --graphs --flush read"
timeout 150 python3 bench/compare.py --suite decode-batch,hybrid --graphs --flush read --csv "$R/cmp-graphs.csv" \
    >"$R/cmp-graphs.log" 2>&1 || echo "rc $?" | say
head -n 5 "$R/cmp-graphs.log" | say
head -n 3 "$R/cmp-graphs.csv" | say
python3 scripts/compare.py "$R/cmp-eager.csv" | say
stamp done
tar -C "$R" -czf "$OUT/tooling.tar.gz" . && rm -rf "$R"
