#!/bin/bash
# 40 seeds of the "paged 16 int8" test_decode cases (FP32 and BF16X2 scales), --small
for s in $(seq 1 40); do FAI_TEST_SEED=$s FAI_TEST_NAME="paged 16 int8" timeout 20 build/tests/test_decode --small; done > $OUT/sweep.txt 2>&1
echo "sweep: $(grep -c ' ok$' $OUT/sweep.txt) ok, $(grep -c ' FAIL$' $OUT/sweep.txt) FAIL"
