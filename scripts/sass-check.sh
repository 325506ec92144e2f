#!/usr/bin/env bash
# SASS of every kernel, on any machine (no GPU): compiles src/kernels/*.cu for sm_80 and
# sm_90a and counts per kernel the tensor-core MMAs (HMMA; HGMMA: Hopper's warpgroup MMAs),
# ldmatrix (LDSM), cp.async (LDGSTS), TMA loads (UTMALDG) and local-memory traffic (LDL/STL:
# spills, must be 0). Needs cuobjdump: the CUDA
# toolkit's, or the one in NVIDIA's PyPI wheel (pip download --no-deps nvidia-cuda-cuobjdump,
# unzip, put its bin/ on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v cuobjdump >/dev/null || { echo "sass-check: cuobjdump not found (see the comment at the top)"; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0
for src in src/kernels/*.cu; do
    obj="$tmp/$(basename "$src" .cu).o"
    nvcc -std=c++17 -O3 -Iinclude -Isrc -DFAI_HAVE_SM90A=1 -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90a,code=sm_90a \
        -c "$src" -o "$obj"
    for arch in sm_80 sm_90a; do
        cuobjdump -sass -arch "$arch" "$obj" | awk -v arch="$arch" '
            /Function :/ { f = $3; n[f] = 1 }
            /[^G]HMMA/ { h[f]++ } /HGMMA/ { w[f]++ } /LDSM/ { l[f]++ } /LDGSTS/ { g[f]++ } /UTMALDG/ { t[f]++ }
            /[^A-Z](LDL|STL)[. ]/ { s[f]++ }
            END { for (k in n) printf "%-6s %-70s HMMA %4d HGMMA %3d LDSM %4d LDGSTS %4d UTMALDG %2d LDL/STL %d\n",
                                      arch, k, h[k], w[k], l[k], g[k], t[k], s[k] }'
    done
done | sort -k2 | tee "$tmp/report"
if awk '$NF != 0 { bad = 1 } END { exit !bad }' "$tmp/report"; then
    echo "sass-check: local-memory traffic (spills) in the kernels above"; status=1
fi
exit $status
