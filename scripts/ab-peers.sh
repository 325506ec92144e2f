#!/usr/bin/env bash
# After scripts/ab-round.sh (trees built under .ab/ with their shared library): PyTorch SDPA's
# flash and cuDNN backends against each tree's libfai through bench/compare.py, the trees
# alternating, AB_PEER_ROUNDS rounds (default 2), on AB_PEER_SUITES (default decode-gqa) with
# AB_PEER_ARGS (default --graphs). Output: $OUT/peers-TREE-ROUND.csv and one line a row and run
# (scripts/compare.py's side by side).
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
read -r -a trees <<<"${AB_TREES:-$(cd .ab && ls -d */ | tr -d / | tr '\n' ' ')}"
for r in $(seq 1 "${AB_PEER_ROUNDS:-2}"); do
    for t in "${trees[@]}"; do
        lib=".ab/$t/build/libfai.so"
        [ -f "$lib" ] || { echo "no $lib"; continue; }
        FAI_LIBRARY="$PWD/$lib" PYTHONPATH="$PWD/.ab/$t/python" PYTHONUNBUFFERED=1 \
            timeout 300 python3 "bench/compare.py" --suite "${AB_PEER_SUITES:-decode-gqa}" ${AB_PEER_ARGS:---graphs} \
            --csv "$OUT/peers-$t-$r.csv" >"$OUT/peers-$t-$r.log" 2>&1 || tail -n 3 "$OUT/peers-$t-$r.log"
        echo "== $t round $r"
        python3 scripts/compare.py "$OUT/peers-$t-$r.csv" | grep -E "^ *decode|behind"
        rm -f "$OUT/peers-$t-$r.log"
    done
done
