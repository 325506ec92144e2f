#!/bin/bash
# session 30 call 4: tree n4 (bf16-scales tip): test_decode int8 cases in full, test_prefill_cache,
# and a seed sweep of the "paged 16 int8" cases (FP32 and BF16X2 scales) for the max_err bound.
t0=$SECONDS
cd .ab/n4 && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a > $OUT/build.log 2>&1 && cmake --build build -j16 --target test_decode test_prefill_cache >> $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
echo "built $((SECONDS-t0)) s"
for s in $(seq 1 40); do FAI_TEST_SEED=$s FAI_TEST_NAME="paged 16 int8" timeout 20 build/tests/test_decode --small; done > $OUT/sweep.txt 2>&1
echo "sweep $((SECONDS-t0)) s: $(grep -c ' ok$' $OUT/sweep.txt) ok, $(grep -c ' FAIL$' $OUT/sweep.txt) FAIL"
timeout 120 build/tests/test_prefill_cache > $OUT/test_prefill_cache.txt 2>&1; echo "test_prefill_cache rc $? $((SECONDS-t0)) s"; tail -1 $OUT/test_prefill_cache.txt
FAI_TEST_DTYPES=int8 timeout 200 build/tests/test_decode > $OUT/test_decode_int8.txt 2>&1; echo "test_decode int8 rc $? $((SECONDS-t0)) s"; head -1 $OUT/test_decode_int8.txt; tail -1 $OUT/test_decode_int8.txt; grep FAIL $OUT/test_decode_int8.txt | head
