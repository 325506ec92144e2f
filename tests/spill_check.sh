#!/usr/bin/env bash
# Every kernel of the built library is spill-free, on every architecture it holds: ptxas puts
# spilled registers in the stack frame (STACK) or local memory (LOCAL), which
# `cuobjdump -res-usage` lists per function and architecture; both must be 0. The
# head-dim-128 prefill kernels sit at 252-255 registers, where an edit can tip ptxas into a
# spill (docs/design/prefill.md, "Registers"): this catches it on the machine that builds.
# Needs cuobjdump, from the CUDA toolkit or NVIDIA's PyPI wheel nvidia-cuda-cuobjdump (which
# .ci/run installs); skips (77) without it. scripts/sass-check.sh also counts the MMAs.
#   spill_check.sh LIBRARY [CUDA_BIN_DIR]
set -euo pipefail
lib=$1
cuobjdump=$(command -v cuobjdump || true)
if [ -z "$cuobjdump" ] && [ -n "${2:-}" ] && [ -x "$2/cuobjdump" ]; then
    cuobjdump=$2/cuobjdump
fi
if [ -z "$cuobjdump" ]; then
    echo "spill_check: no cuobjdump (CUDA toolkit or pip's nvidia-cuda-cuobjdump): skipped"
    exit 77
fi
report=$("$cuobjdump" -res-usage "$lib")
# Lines: "arch = sm_XX" ahead of each cubin, " Function NAME:", then "  REG:n STACK:n ... LOCAL:n ...".
echo "$report" | awk '
    /arch = / { arch = $3 }
    /^ *Function / { fn = $2; sub(/:$/, "", fn) }
    /STACK:/ {
        n++
        stack = $0; sub(/.*STACK:/, "", stack); sub(/ .*/, "", stack)
        local = $0; sub(/.*LOCAL:/, "", local); sub(/ .*/, "", local)
        if (stack + 0 != 0 || local + 0 != 0) { printf "spill: %s %s STACK %s LOCAL %s\n", arch, fn, stack, local; bad++ }
    }
    END {
        if (n == 0) { print "spill_check: no kernels found in the report"; exit 1 }
        printf "spill_check: %d kernel entries, %d with a stack frame or local memory\n", n, bad
        exit (bad > 0)
    }'
