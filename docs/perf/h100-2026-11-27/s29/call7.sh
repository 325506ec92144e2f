#!/bin/bash
# session 29 call 7: the full test_decode on the tip (paged int8 HOIST 2 merged in 41a9cc7)
t0=$SECONDS
cd .ab/t && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a > $OUT/build.log 2>&1 && cmake --build build -j16 --target test_decode test_prefill_cache >> $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
echo "built $((SECONDS-t0)) s"
timeout 300 build/tests/test_decode > $OUT/test_decode.txt 2>&1; echo "test_decode rc $? $((SECONDS-t0)) s"; tail -2 $OUT/test_decode.txt
timeout 120 build/tests/test_prefill_cache > $OUT/test_prefill_cache.txt 2>&1; echo "test_prefill_cache rc $? $((SECONDS-t0)) s"; tail -2 $OUT/test_prefill_cache.txt
