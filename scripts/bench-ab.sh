#!/usr/bin/env bash
# Same-call A/B timing with fai-bench: each line of a config file is one run,
#   name | environment (VAR=value ...) | fai-bench arguments
# run in order, one CSV each (DIR/name.csv); then a table of every row's time against the
# first run that timed the same shape (suite, backend, sizes, causal; the dtype and the note,
# e.g. 'softcap 30', may differ: a BF16 or soft-capped run is compared with the plain one). Blank lines and lines starting with # are skipped.
#   scripts/bench-ab.sh CONFIG BUILD_DIR OUT_DIR
# Example line:  sm90-short | FAI_PREFILL_SM90=1 | --suite prefill-seq,prefill-batch
set -uo pipefail
config=$1 build=$2 dir=$3
mkdir -p "$dir"
names=()
while IFS='|' read -r name envs args; do
    name=$(echo "$name" | sed 's/^ *//; s/ *$//')
    { [ -z "$name" ] || [ "${name:0:1}" = "#" ]; } && continue
    names+=("$name")
    echo "== $name: $(echo $envs) fai-bench $(echo $args)"
    # shellcheck disable=SC2086
    env -u FAI_PREFILL_SM90 $envs timeout 120 "$build/tools/fai-bench" $args --csv "$dir/$name.csv" \
        >"$dir/$name.txt" 2>&1 || echo "   rc $?: $(tail -n 1 "$dir/$name.txt")"
done <"$config"
python3 - "$dir" "${names[@]}" <<'PY'
import csv, os, sys
d, names = sys.argv[1], sys.argv[2:]
shape = ("suite", "backend", "b", "sq", "sk", "hq", "hk", "d", "causal", "prefill_frac")
keys = shape + ("dtype", "note", "check")
seen = {}  # row key -> (run name, ms) of its first timing
print(f"{'run':14s} {'row':64s} {'ms':>9s} {'TFLOP/s':>8s} {'GB/s':>7s}  vs first run of the row")
for n in names:
    path = os.path.join(d, n + ".csv")
    if not os.path.exists(path):
        continue
    for r in csv.DictReader(open(path)):
        if r["suite"] == "ceiling":
            continue
        k = tuple(r.get(x, "") for x in shape)
        label = " ".join(str(r.get(x, "")) for x in keys if r.get(x, "") not in ("", None))[:64]
        try:
            ms = float(r["ms"])
        except ValueError:
            continue
        ref = seen.setdefault(k, (n, ms))
        ratio = f"{ms / ref[1]:.3f} x {ref[0]}" if ref[0] != n else ""
        print(f"{n:14s} {label:64s} {ms:9.4f} {r.get('tflops', ''):>8s} {r.get('gbps', ''):>7s}  {ratio}")
PY
