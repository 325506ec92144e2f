#!/usr/bin/env bash
# One device call: the GPU tests' --random mode (cases drawn from a seed, every option combined
# at random) for decode, prefill and prefill over a cache, both prefill kernels on a Hopper GPU.
# Prints each run's failures and its row of the table as it ends; the logs go to $OUT.
#   scripts/random-round.sh [SEED]
# Environment: RANDOM_DECODE, RANDOM_PREFILL, RANDOM_CACHE (cases per run: 150, 150, 100; the
# mma.sync runs take half); RANDOM_S (each run's time limit, 80 s: five runs and a fresh build
# fit the device tool's 10 minutes).
# A run stopped by its limit is not a failure; its "checked" column counts only the cases whose
# every result line reached the log (the tests' output is line-buffered here, so a stop loses
# at most the case it was in). Exit status 1 when a run failed (a FAIL line, or an exit status
# other than 0 and the limit's 124), else 0.
set -uo pipefail
out=${OUT:-$PWD/random-out}
mkdir -p "$out"
seed=${1:-$(date +%s)}
t0=$SECONDS
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
echo "device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), seed $seed"
cmake -S . -B build-r -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="$arch" >"$out/build.log" 2>&1 &&
    cmake --build build-r -j"$(nproc)" --target test_decode test_prefill test_prefill_cache >>"$out/build.log" 2>&1 ||
    { tail -n 30 "$out/build.log"; exit 1; }
echo "== build: $((SECONDS - t0)) s"
limit=${RANDOM_S:-80}
status=0
half() { echo $(( $1 / 2 > 0 ? $1 / 2 : 1 )); }
run() { # run NAME ENV TEST COUNT CHECKED_PATTERN
    local log="$out/$1.log" s=$SECONDS
    env FAI_TEST_SEED="$seed" $2 timeout "$limit" stdbuf -oL -eL "build-r/tests/$3" --random "$4" >"$log" 2>&1
    local rc=$?
    local fails checked
    fails=$(grep -c "FAIL" "$log")
    checked=$(grep -cE "$5" "$log")
    grep -B1 "FAIL" "$log" | head -n 20
    [ "$fails" -gt 0 ] || { [ "$rc" -ne 0 ] && [ "$rc" -ne 124 ]; } && status=1
    printf '%-18s rc %-3s asked %-4s started %-4s checked %-4s FAIL lines %-4s %4d s\n' "$1" "$rc" "$4" \
        "$(grep -c '^random ' "$log")" "$checked" "$fails" $((SECONDS - s))
}
# A case is checked once its last line is out: test_decode's time line after its plans,
# test_prefill's workspace line after its calls (graph cases label theirs otherwise),
# test_prefill_cache's "no plan" result.
dec='^  \([0-9.]+ s\)$'
pre='^  workspace '
cache='^  no plan '
run decode "X=1" test_decode "${RANDOM_DECODE:-150}" "$dec"
run prefill-sm90 "FAI_PREFILL_SM90=1" test_prefill "${RANDOM_PREFILL:-150}" "$pre"
run prefill-mma-sync "FAI_PREFILL_SM90=0" test_prefill "$(half "${RANDOM_PREFILL:-150}")" "$pre"
run cache-sm90 "FAI_PREFILL_SM90=1" test_prefill_cache "${RANDOM_CACHE:-100}" "$cache"
run cache-mma-sync "FAI_PREFILL_SM90=0" test_prefill_cache "$(half "${RANDOM_CACHE:-100}")" "$cache"
echo "== seed $seed, $((SECONDS - t0)) s, status $status"
exit $status
