#!/usr/bin/env bash
# A/B round on the device: the same fai-bench runs on several source trees in one call, so
# that a change is timed against its baseline on the same card, and the tests of the first
# tree. The trees are snapshots made here before the call (they travel as a carried,
# git-ignored folder):
#   mkdir -p .ab && for c in HEAD b0b17cc; do mkdir -p .ab/$c && git archive $c | tar -x -C .ab/$c; done
# Knobs (environment):
#   AB_TREES   the trees under .ab/, the first is the one under test (default: every folder)
#   AB_BENCH   fai-bench argument lists separated by ';' (default: the decode suites and kv-quant);
#              leading NAME=value words set that run's environment; ab.csv's second column
#              is "#run args" (commas replaced by '+'), so repeated runs stay apart
#   AB_TESTS   "name|timeout|command;..." tests run in the first tree (default: API, decode and
#              prefill small sets, memcheck of decode), or 0 to skip them; a command may name
#              another tree's binaries as ../TREE/build/...
#   AB_FULL    the trees built with every target (default: the first; the others: fai-bench)
#   AB_FULL_TARGETS  what "every target" means (default: all; e.g. "fai-bench test_decode" to
#              spend less of the call on the build)
# Output in $OUT: ab.txt (every run's table, tree by tree), ab.csv (the CSV rows with the
# tree and the run's arguments in front), tests.txt (FAIL lines and tails), summary.txt;
# scripts/ab_compare.py ab.csv --base TREE prints the shapes x (tree, run) table of times.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
t0=$SECONDS
stamp() { echo "== [$((SECONDS - t0)) s] $*"; }
arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d .)
[ "$arch" = 90 ] && arch=90a
read -r -a trees <<<"${AB_TREES:-$(cd .ab && ls -d */ | tr -d / | tr '\n' ' ')}"
first=${trees[0]}
summary="device: $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1)"$'\n'

stamp "build ${trees[*]} (sm_$arch)"
for t in "${trees[@]}"; do
    targets="fai-bench"
    [[ " ${AB_FULL:-$first} " == *" $t "* ]] && targets="${AB_FULL_TARGETS:-all}"
    (cmake -S ".ab/$t" -B ".ab/$t/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=$arch \
        >".ab/$t.build.log" 2>&1 && cmake --build ".ab/$t/build" -j16 --target $targets >>".ab/$t.build.log" 2>&1 ||
        echo "BUILD FAILED" >>".ab/$t.build.log") &
done
wait
for t in "${trees[@]}"; do
    if grep -q "BUILD FAILED" ".ab/$t.build.log"; then
        tail -n 30 ".ab/$t.build.log"
        summary+="build $t: FAILED"$'\n'
    fi
done
stamp "built"

test_run() { # name, timeout, command... (in the first tree)
    local name=$1 limit=$2
    shift 2
    stamp "test $name"
    (cd ".ab/$first" && timeout "$limit" "$@") >"$OUT/$name.log" 2>&1
    local rc=$?
    summary+="$(printf '%-24s rc %-3s %s' "$name" "$rc" "$(grep -E 'cases, [0-9]+ failed|ERROR SUMMARY|RACECHECK SUMMARY|checks passed|^OK|^FAILED|Ran [0-9]+ tests|tests passed' "$OUT/$name.log" | tr '\n' ' ' | cut -c1-110)")"$'\n'
    { echo "==== $name (rc $rc)"; grep -B2 -A3 -E "FAIL|ERROR|Error" "$OUT/$name.log" | head -n 60; echo "---- tail"; tail -n 15 "$OUT/$name.log"; } >>"$OUT/tests.txt"
    rm -f "$OUT/$name.log"
}

# AB_TESTS: "name|timeout|command" entries separated by ';' (run in the first tree), or 0
default_tests="test_api|30|build/tests/test_api;test_decode_small|150|build/tests/test_decode --small"
default_tests+=";test_prefill_small|120|build/tests/test_prefill --small"
default_tests+=";memcheck_decode|150|compute-sanitizer --tool memcheck --error-exitcode 9 build/tests/test_decode --small"
if [ "${AB_TESTS:-}" != 0 ]; then
    IFS=';' read -r -a tests <<<"${AB_TESTS:-$default_tests}"
    for entry in "${tests[@]}"; do
        IFS='|' read -r name limit cmd <<<"$entry"
        # shellcheck disable=SC2086
        test_run "$name" "$limit" $cmd
    done
fi

IFS=';' read -r -a benches <<<"${AB_BENCH:---suite decode --reps 30;--suite kv-quant --reps 20}"
run=0
for args in "${benches[@]}"; do
    run=$((run + 1))
    # leading NAME=value words are the run's environment (FAI_PREFILL_SM90_PINGPONG=1 --suite ...)
    envs=() rest=()
    for w in $args; do
        if [ ${#rest[@]} -eq 0 ] && [[ $w =~ ^[A-Z_][A-Z0-9_]*= ]]; then envs+=("$w"); else rest+=("$w"); fi
    done
    label="#$run ${args//,/+}" # (no commas: the label is a CSV column)
    for t in "${trees[@]}"; do
        [ -x ".ab/$t/build/tools/fai-bench" ] || continue
        stamp "bench $t: $args"
        echo "######## $t: $label" >>"$OUT/ab.txt"
        timeout 200 env "${envs[@]}" ".ab/$t/build/tools/fai-bench" "${rest[@]}" --csv "$OUT/run.csv" >>"$OUT/ab.txt" 2>"$OUT/run.err" ||
            { echo "bench $t ($args) failed"; tail -n 5 "$OUT/run.err"; }
        [ -f "$OUT/run.csv" ] && sed "s|^|$t,$label,|" "$OUT/run.csv" >>"$OUT/ab.csv"
        rm -f "$OUT/run.csv" "$OUT/run.err"
    done
done
stamp "done"
printf '%s' "$summary" | tee "$OUT/summary.txt"
