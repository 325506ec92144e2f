#!/usr/bin/env bash
# fai-bench's command line without a GPU (issue 8): --help documents every flag, --list
# prints the suites' rows, bad --shape items are refused with a message and exit 2, and a run
# on a machine without a usable GPU exits 1 with a message (on a GPU machine that run is
# skipped: it would time for real).
#   tests/fai_bench_cli.sh path/to/fai-bench
set -u
bench=$1
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

help=$("$bench" --help) || fail "--help exited $?"
for flag in --suite --shape --list --dtype --window --softcap --sinks --alibi --layout --page-size --page-order --pause --reps \
    --warmup --csv --json --check --splits --warps --kernel --tune --flush kv=; do
    grep -q -- "$flag" <<<"$help" || fail "--help does not mention $flag"
done

rows=$("$bench" --list --suite prefill-seq,decode-batch) || fail "--list exited $?"
[ "$(wc -l <<<"$rows")" -eq 18 ] || fail "--list --suite prefill-seq,decode-batch: $(wc -l <<<"$rows") lines, want 18"
grep -q '^prefill-seq,16,8192,8192,32,32,128,1,$' <<<"$rows" || fail "--list lacks the prefill-seq 8192 row"
[ "$("$bench" --list --shape b=3,sq=1,sk=77,hq=8,hk=2,d=64 | tail -n 1)" = "shape,3,1,77,8,2,64,0," ] ||
    fail "--list --shape: not the shape given"

refused() { # expected message, then the arguments
    local want=$1
    shift
    local out rc
    out=$("$bench" "$@" 2>&1)
    rc=$?
    [ $rc -eq 2 ] || fail "fai-bench $*: exit $rc, want 2"
    grep -q -- "$want" <<<"$out" || fail "fai-bench $*: message '$out' lacks '$want'"
}
refused "kv= is for decode rows" --list --shape b=4,sq=2,kv=int8
refused "want fp16, int8, fp8_e4m3, fp8_e5m2 or int8_bf16x2" --list --shape kv=int9
refused "bad --shape value" --list --shape b=-1
refused "unknown --shape key" --list --shape batch=4
refused "unknown or incomplete option" --frobnicate
refused "--flush takes write, read or none" --list --flush dirty
"$bench" --list --flush none >/dev/null || fail "--list --flush none exited $?"
refused "--page-order takes scrambled or sequential" --list --page-order random
refused "--pause takes milliseconds from 0 to 60000" --list --pause -1
refused "--pause takes milliseconds from 0 to 60000" --list --pause 5ms
"$bench" --list --pause 0 >/dev/null || fail "--list --pause 0 exited $?"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    out=$("$bench" --shape b=1,sk=128 2>&1)
    rc=$?
    [ $rc -eq 1 ] || fail "without a GPU: exit $rc, want 1"
    grep -q "no usable CUDA device" <<<"$out" || fail "without a GPU: message '$out'"
fi
[ $fails -eq 0 ] && echo "fai_bench_cli: all checks pass"
exit $((fails > 0))
