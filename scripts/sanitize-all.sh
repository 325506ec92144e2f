#!/usr/bin/env bash
# Every GPU test under compute-sanitizer's four tools (memcheck, racecheck, initcheck,
# synccheck) on small shapes, each run bounded by a timeout, then a table test x tool ->
# clean / N errors / timeout / ... (issue 7).
#
#   scripts/sanitize-all.sh [BUILD_DIR]
#
# Without BUILD_DIR it configures and builds build-sanitize for this GPU's architecture
# (tools off); with one it uses that build as it is. The tests are the known GPU tests
# (test_decode, test_prefill, test_concurrency, test_guards, test_graphs and test_prefill_cache
# with --small; test_codec_device) and every other test labelled gpu in ctest
# (`ctest -N -L gpu`), so GPU tests added later are included without editing this script;
# test_large only when SANITIZE_TESTS names it (it has no small shapes).
# Environment:
#   SANITIZE_TOOLS    tools to run (default "memcheck racecheck initcheck synccheck")
#   SANITIZE_TESTS    only these tests (names, space-separated; default: all found)
#   SANITIZE_TIMEOUT  seconds per (test, tool) run (default 300); a run past it is "timeout"
#   SANITIZE_BUDGET   seconds for all runs together (default none); runs left when it is
#                     spent are "not run" (the device tool allows 10 minutes a command:
#                     split the work with SANITIZE_TOOLS / SANITIZE_TESTS)
#   SANITIZE_LOGS     folder for one log per run and summary.txt (default ./sanitize-out)
#   SANITIZE_ARGS_<test>  arguments for that test, replacing the defaults below
#   COMPUTE_SANITIZER the compute-sanitizer binary (default: on PATH, else /usr/local/cuda)
# Exit status: 0 when every run is clean (or skipped for want of a GPU), 1 otherwise.
set -uo pipefail

tools=${SANITIZE_TOOLS:-memcheck racecheck initcheck synccheck}
limit=${SANITIZE_TIMEOUT:-300}
budget=${SANITIZE_BUDGET:-0}
logs=${SANITIZE_LOGS:-$PWD/sanitize-out}
mkdir -p "$logs"
ERR_RC=86 # --error-exitcode: the sanitizer found errors

cs=${COMPUTE_SANITIZER:-$(command -v compute-sanitizer || true)}
[ -z "$cs" ] && for c in /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer; do
    [ -x "$c" ] && cs=$c
done
if [ -z "$cs" ] || [ ! -x "$cs" ]; then
    echo "sanitize-all: compute-sanitizer not found (set COMPUTE_SANITIZER)" >&2
    exit 2
fi

build=${1:-}
if [ -z "$build" ]; then
    build=build-sanitize
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d .)
    [ "$arch" = 90 ] && arch=90a
    echo "== configure + build $build (sm_${arch:-90a})"
    cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES="${arch:-90a}" \
        -DFAI_BUILD_TOOLS=OFF >"$logs/build.log" 2>&1 &&
        cmake --build "$build" -j"$(nproc)" >>"$logs/build.log" 2>&1 || { tail -n 30 "$logs/build.log"; exit 2; }
fi

# Default arguments: the small shapes where a test has them (the others are small as they are).
declare -A args=([test_decode]="--small" [test_prefill]="--small" [test_graphs]="--small" [test_guards]="--small"
    [test_prefill_cache]="--small" [test_concurrency]="--small" [test_prefill_mma_sync]="--small" [test_prefill_pingpong]="--small"
    [test_decode_random]="--random 8" [test_prefill_random]="--random 8" [test_prefill_cache_random]="--random 6")
# The environment ctest gives a test (on a Hopper GPU, which prefill kernel runs).
declare -A envs=([test_prefill]="FAI_PREFILL_SM90=1" [test_prefill_cache]="FAI_PREFILL_SM90=1" [test_graphs]="FAI_PREFILL_SM90=1"
    [test_concurrency]="FAI_PREFILL_SM90=1" [test_prefill_random]="FAI_PREFILL_SM90=1" [test_prefill_cache_random]="FAI_PREFILL_SM90=1"
    [test_prefill_mma_sync]="FAI_PREFILL_SM90=0" [test_prefill_pingpong]="FAI_PREFILL_SM90=1 FAI_PREFILL_SM90_PINGPONG=1")

# The tests: the known ones first, then whatever else ctest labels gpu.
known="test_decode test_prefill test_concurrency test_guards test_graphs test_codec_device"
found=$(ctest --test-dir "$build" -N -L gpu 2>/dev/null | sed -nE 's/^ *Test +#[0-9]+: +([^ ]+).*/\1/p')
tests=""
# test_large is left out unless SANITIZE_TESTS names it: its point is 20 GB buffers and
# offsets past 2^31 (no small shapes), and its kernels run under the tools in the other tests.
large_only="test_large"
for t in $known $found; do
    [[ " $tests " == *" $t "* ]] && continue
    [[ " $large_only " == *" $t "* && " ${SANITIZE_TESTS:-} " != *" $t "* ]] && continue
    tests+="$t "
done
if [ -n "${SANITIZE_TESTS:-}" ]; then
    sel=""
    for t in $tests; do [[ " $SANITIZE_TESTS " == *" $t "* ]] && sel+="$t "; done
    tests=$sel
fi

# The executable of a test: BUILD/tests/NAME or BUILD/NAME, else the first word of ctest's
# command for it (json-v1 through python3, when there is one).
exe_of() {
    local t=$1
    for p in "$build/tests/$t" "$build/$t"; do
        [ -x "$p" ] && { echo "$p"; return; }
    done
    command -v python3 >/dev/null || return
    ctest --test-dir "$build" --show-only=json-v1 -R "^$t\$" 2>/dev/null | python3 -c '
import json, sys
for t in json.load(sys.stdin).get("tests", []):
    if t.get("command"):
        print(t["command"][0]); break' 2>/dev/null
}

declare -A cell
status=0
t0=$SECONDS
for t in $tests; do
    exe=$(exe_of "$t")
    var="SANITIZE_ARGS_$t"
    a=${!var-${args[$t]-}}
    for tool in $tools; do
        key="$t/$tool"
        if [ -z "$exe" ]; then
            cell[$key]="not built"; status=1; continue
        fi
        if [ "$budget" -gt 0 ] && [ $((SECONDS - t0)) -ge "$budget" ]; then
            cell[$key]="not run"; status=1; continue
        fi
        log="$logs/$t.$tool.log"
        echo "== [$((SECONDS - t0)) s] $tool: $t $a"
        s0=$SECONDS
        # (racecheck: the default report is the analysis, one line per hazard found;
        # initcheck without --track-unused-memory: uninitialized reads only)
        # shellcheck disable=SC2086
        env ${envs[$t]-} timeout --kill-after=15 "$limit" "$cs" --tool "$tool" --error-exitcode $ERR_RC \
            --target-processes all "$exe" $a >"$log" 2>&1
        rc=$?
        secs=$((SECONDS - s0))
        errors=$(sed -nE 's/.*ERROR SUMMARY: ([0-9]+) error.*/\1/p' "$log" | tail -1)
        race=$(sed -nE 's/.*RACECHECK SUMMARY: [0-9]+ hazards? displayed \(([0-9]+) errors?, ([0-9]+) warnings?\).*/\1 \2/p' "$log" | tail -1)
        warn=""
        if [ -n "$race" ]; then
            errors=${race% *}
            w=${race#* }
            [ "$w" != 0 ] && warn=" ($w warn)"
        fi
        if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
            c="timeout"
        elif [ $rc -eq 77 ]; then
            c="skip (no GPU)"
        elif [ -n "$errors" ] && [ "$errors" != 0 ]; then
            c="$errors errors"
        elif [ $rc -eq 0 ]; then
            c="clean$warn"
        elif [ $rc -eq $ERR_RC ]; then
            c="errors"
        elif [ -n "$errors" ]; then
            c="clean, test rc $rc" # the sanitizer saw nothing; the test itself failed
        else
            c="rc $rc, no summary"
        fi
        [[ "$c" == clean || "$c" == "clean ("* || "$c" == skip* ]] || status=1
        cell[$key]="$c"
        printf '   %s (%d s)\n' "$c" "$secs"
        [[ "$c" == clean* || "$c" == skip* ]] ||
            grep -m 4 -E "Invalid|Uninitialized|Race|Barrier|Hazard|hazard|FAIL|error" "$log" | sed 's/^/   | /'
    done
done

# The table.
{
    printf '%-22s' "test"
    for tool in $tools; do printf ' %-18s' "$tool"; done
    printf '\n'
    for t in $tests; do
        var="SANITIZE_ARGS_$t"
        a=${!var-${args[$t]-}}
        printf '%-22s' "$t${a:+ $a}"
        for tool in $tools; do printf ' %-18s' "${cell[$t/$tool]-}"; done
        printf '\n'
    done
    echo "(compute-sanitizer $("$cs" --version 2>/dev/null | sed -nE 's/.*Version ([^ ]+).*/\1/p' | head -1); logs: $logs; status $status)"
} | tee "$logs/summary.txt"
exit $status
