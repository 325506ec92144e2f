#!/bin/bash
# session 30 call 6: the final tree f: test_decode in full, test_prefill_cache, the Python package
# (test_device included) and test_api, test_extremes.
t0=$SECONDS
cd .ab/f && cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90a > $OUT/build.log 2>&1 && cmake --build build -j16 --target fai_shared abi_layout test_decode test_prefill_cache test_api test_extremes >> $OUT/build.log 2>&1 || { tail -20 $OUT/build.log; exit 1; }
echo "built $((SECONDS-t0)) s"
timeout 120 build/tests/test_prefill_cache > $OUT/test_prefill_cache.txt 2>&1; echo "test_prefill_cache rc $? $((SECONDS-t0)) s: $(tail -1 $OUT/test_prefill_cache.txt)"
(cd build && timeout 90 ctest -R "python_package|test_api|test_extremes" --output-on-failure > $OUT/ctest.txt 2>&1); echo "ctest rc $? $((SECONDS-t0)) s: $(grep 'tests passed' $OUT/ctest.txt)"
timeout 300 build/tests/test_decode > $OUT/test_decode.txt 2>&1; echo "test_decode rc $? $((SECONDS-t0)) s"; head -1 $OUT/test_decode.txt; tail -1 $OUT/test_decode.txt; grep FAIL $OUT/test_decode.txt | head
