#!/usr/bin/env bash
# One device call: the GPU tests' --random mode (cases drawn from a seed, every option combined
# at random) for decode, prefill and prefill over a cache, both prefill kernels on a Hopper GPU.
# Prints each run's failures and a table last; the logs go to $OUT.
#   scripts/random-round.sh [SEED]
# Environment: RANDOM_DECODE, RANDOM_PREFILL, RANDOM_CACHE (cases per run: 150, 150, 100);
# RANDOM_S (each run's time limit, 100 s).
set -uo pipefail
out=${OUT:-$PWD/random-out}
mkdir -p "$out"
seed=${1:-$(date +%s)}
t0=$SECONDS
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), seed $seed"
cmake -S . -B build-r -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/build.log" 2>&1 &&
    cmake --build build-r -j"$(nproc)" --target test_decode test_prefill test_prefill_cache >>"$out/build.log" 2>&1 ||
    { tail -n 30 "$out/build.log"; exit 1; }
echo "== build: $((SECONDS - t0)) s"
limit=${RANDOM_S:-100}
rows=()
run() { # run NAME ENV TEST COUNT
    local log="$out/$1.log" s=$SECONDS
    env FAI_TEST_SEED="$seed" $2 timeout "$limit" "build-r/tests/$3" --random "$4" >"$log" 2>&1
    local rc=$?
    local fails
    fails=$(grep -c "FAIL" "$log")
    grep -B1 "FAIL" "$log" | head -n 20
    rows+=("$(printf '%-22s rc %-3s cases %-4s FAIL lines %-4s %4d s' "$1" "$rc" "$(grep -c '^random ' "$log")" "$fails" $((SECONDS - s)))")
}
run decode "X=1" test_decode "${RANDOM_DECODE:-150}"
run prefill-sm90 "FAI_PREFILL_SM90=1" test_prefill "${RANDOM_PREFILL:-150}"
run prefill-mma-sync "FAI_PREFILL_SM90=0" test_prefill "$(( ${RANDOM_PREFILL:-150} / 2 ))"
run cache-sm90 "FAI_PREFILL_SM90=1" test_prefill_cache "${RANDOM_CACHE:-100}"
run cache-mma-sync "FAI_PREFILL_SM90=0" test_prefill_cache "$(( ${RANDOM_CACHE:-100} / 2 ))"
echo "== seed $seed, $((SECONDS - t0)) s"
printf '%s\n' "${rows[@]}"
