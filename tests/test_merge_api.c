/* CPU test of the argument checks of fai_merge_states and fai_merge_state: each bad input gives
 * its status and a message naming the function and the argument. Runs without a GPU: the
 * checks come before any device query, and no call here reaches a launch (the only calls
 * that succeed have zero rows, which launch nothing). */
#include <stdio.h>
#include <string.h>

#include "fai.h"

#include "cpu_check.h"


typedef struct merge_problem {
    fai_merge_params p;
    fai_tensor parts[FAI_MERGE_MAX_PARTS];
    const float *lses[FAI_MERGE_MAX_PARTS];
} merge_problem;

/* A valid merge of n parts: 37 rows, 8 heads of 128, [rows, heads, dim] FP16 tensors. */
static void valid(merge_problem *m, int n)
{
    m->p = fai_merge_params_default();
    m->p.num_parts = n;
    m->p.num_rows = 37;
    m->p.num_heads = 8;
    for (int i = 0; i < FAI_MERGE_MAX_PARTS; i++) {
        m->parts[i] = (fai_tensor){FAKE(1 + i), FAI_DTYPE_FP16, 8 * 128, 128};
        m->lses[i] = (const float *)FAKE(32 + i);
    }
    m->p.parts = m->parts;
    m->p.parts_lse = m->lses;
    m->p.o = (fai_tensor){FAKE(64), FAI_DTYPE_FP16, 8 * 128, 128};
    m->p.lse = (float *)FAKE(65);
}

static void expect_reject(int line, const merge_problem *m, fai_status want, const char *needle)
{
    const fai_status s = fai_merge_states(&m->p, 0);
    CHECK(s == want, "line %d: gave %s, want %s (%s)", line, fai_status_string(s), fai_status_string(want),
          fai_last_error());
    CHECK(strstr(fai_last_error(), needle) != NULL, "line %d: message '%s' lacks '%s'", line, fai_last_error(),
          needle);
    CHECK(strncmp(fai_last_error(), "fai_merge_states: ", 18) == 0, "line %d: '%s' does not name the function",
          line, fai_last_error());
}
#define REJECT(m, want, needle) expect_reject(__LINE__, &(m), want, needle)

static void test_defaults(void)
{
    const fai_merge_params p = fai_merge_params_default();
    CHECK(p.num_parts == 2 && p.num_rows == 0 && p.num_heads == 32 && p.head_dim == 128, "defaults");
    CHECK(p.o.dtype == FAI_DTYPE_FP16 && !p.o.data && !p.parts && !p.parts_lse && !p.lse, "default pointers");
    CHECK(FAI_MERGE_MAX_PARTS == 16, "max parts %d", FAI_MERGE_MAX_PARTS);
}

static void test_params(void)
{
    merge_problem m;
    const fai_status s = fai_merge_states(NULL, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_NULL_POINTER && strstr(fai_last_error(), "params is NULL"), "%s",
          fai_last_error());

    valid(&m, 2), m.p.num_parts = 0;
    REJECT(m, FAI_ERROR_BAD_PARAM_SHAPE, "num_parts (0) must be >= 1");
    valid(&m, 2), m.p.num_parts = -3;
    REJECT(m, FAI_ERROR_BAD_PARAM_SHAPE, "num_parts (-3)");
    valid(&m, 2), m.p.num_parts = FAI_MERGE_MAX_PARTS + 1;
    REJECT(m, FAI_ERROR_NOT_SUPPORTED, "num_parts (17) is more than FAI_MERGE_MAX_PARTS (16)");
    valid(&m, 2), m.p.num_rows = -1;
    REJECT(m, FAI_ERROR_BAD_PARAM_SHAPE, "num_rows (-1) is negative");
    valid(&m, 2), m.p.num_heads = 0;
    REJECT(m, FAI_ERROR_BAD_PARAM_SHAPE, "num_heads (0) must be >= 1");
    const int bad_dims[] = {0, 4, 12, 100, 264, 512, -8};
    for (size_t i = 0; i < sizeof bad_dims / sizeof bad_dims[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "head_dim (%d) is not supported", bad_dims[i]);
        valid(&m, 2), m.p.head_dim = bad_dims[i];
        REJECT(m, FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, needle);
    }
    valid(&m, 2), m.p.parts = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts (the host array of part outputs) is NULL");
    valid(&m, 2), m.p.parts_lse = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts_lse (the host array of part LSEs) is NULL");
}

static void test_tensors(void)
{
    merge_problem m;
    valid(&m, 3), m.p.o.data = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "o.data is NULL");
    valid(&m, 3), m.p.o.data = (char *)FAKE(64) + 8;
    REJECT(m, FAI_ERROR_BAD_PARAM_MISALIGNED, "o.data");
    valid(&m, 3), m.p.o.token_stride = 8 * 128 + 4;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "o.token_stride (1028)");
    valid(&m, 3), m.p.o.head_stride = -8;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "o.head_stride (-8)");
    valid(&m, 3), m.p.o.token_stride = 128; /* o's rows overlap: an output */
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "o strides (token_stride 128, head_stride 128) make elements overlap");
    valid(&m, 3), m.p.o.dtype = FAI_DTYPE_INT8;
    REJECT(m, FAI_ERROR_NOT_SUPPORTED_DTYPE, "o.dtype (2) is not supported");
    valid(&m, 3), m.parts[2].data = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts[2].data is NULL");
    valid(&m, 3), m.parts[1].data = (char *)FAKE(2) + 2;
    REJECT(m, FAI_ERROR_BAD_PARAM_MISALIGNED, "parts[1].data");
    valid(&m, 3), m.parts[1].head_stride = 100;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "parts[1].head_stride (100)");
    valid(&m, 3), m.parts[0].dtype = FAI_DTYPE_BF16;
    REJECT(m, FAI_ERROR_NOT_SUPPORTED_DTYPE, "parts[0].dtype (1) is FAI_DTYPE_BF16 but o.dtype is FAI_DTYPE_FP16");
    valid(&m, 3), m.parts[2].dtype = FAI_DTYPE_FP8_E4M3;
    REJECT(m, FAI_ERROR_NOT_SUPPORTED_DTYPE, "parts[2].dtype (3)");
    /* Inputs may overlap themselves (a stride of 0 broadcasts one row to every token). */
    valid(&m, 3), m.parts[1].token_stride = 0, m.p.num_rows = 0;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "%s", fai_last_error());
    /* The parts beyond num_parts are not looked at. */
    valid(&m, 2), m.parts[2].data = NULL, m.lses[2] = NULL, m.p.num_rows = 0;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "%s", fai_last_error());
}

static void test_lse(void)
{
    merge_problem m;
    valid(&m, 4), m.lses[3] = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts_lse[3] is NULL");
    valid(&m, 4), m.lses[0] = (const float *)((char *)FAKE(32) + 2);
    REJECT(m, FAI_ERROR_BAD_PARAM_MISALIGNED, "parts_lse[0]");
    valid(&m, 4), m.p.lse = (float *)((char *)FAKE(65) + 1);
    REJECT(m, FAI_ERROR_BAD_PARAM_MISALIGNED, "lse (");
    /* The output LSE overlapping a part's without being it. */
    valid(&m, 4), m.p.lse = (float *)m.lses[2] + 4;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "overlaps parts_lse[2]");
    valid(&m, 4), m.p.lse = (float *)m.lses[2] - 36 * 8;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "overlaps parts_lse[2]");
    /* The same array (in place) is fine (zero rows: a valid call with rows would launch). */
    valid(&m, 4), m.p.lse = (float *)m.lses[2], m.p.num_rows = 0;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "%s", fai_last_error());
}

static void test_in_place(void)
{
    merge_problem m;
    /* o is part 1 exactly: accepted. */
    valid(&m, 3), m.p.o = m.parts[1], m.p.num_rows = 0;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "%s", fai_last_error());
    /* o at part 1's address with other strides: rejected. */
    valid(&m, 3), m.p.o.data = m.parts[1].data, m.p.o.token_stride = 16 * 128;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "o aliases parts[1]");
    valid(&m, 3), m.p.o.data = m.parts[0].data, m.p.o.head_stride = 37 * 128, m.p.o.token_stride = 128;
    REJECT(m, FAI_ERROR_BAD_PARAM_STRIDE, "o aliases parts[0]");
    /* With one row, token strides do not matter: the alias check passes and a later check
     * (part 2's LSE) fails, so that no call here reaches the device. */
    valid(&m, 3), m.p.o.data = m.parts[0].data, m.p.o.token_stride = 0, m.p.num_rows = 1;
    m.lses[2] = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts_lse[2] is NULL");
}

static void test_zero_rows(void)
{
    merge_problem m;
    /* Zero rows: the tensors and LSE pointers are not checked, nothing is launched. */
    valid(&m, 16), m.p.num_rows = 0, m.p.o.data = NULL, m.p.lse = NULL;
    for (int i = 0; i < 16; i++)
        m.parts[i].data = NULL, m.lses[i] = NULL;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "%s", fai_last_error());
    CHECK(fai_last_error()[0] == '\0', "message left set: %s", fai_last_error());
    /* ...but the shape fields and the host arrays still are. */
    m.p.head_dim = 7;
    CHECK(fai_merge_states(&m.p, 0) == FAI_ERROR_NOT_SUPPORTED_HEAD_DIM, "%s", fai_last_error());
    /* ...and so are the host arrays, the dtypes and lse's alignment (docs/api.md). */
    valid(&m, 2), m.p.num_rows = 0, m.p.parts = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts (the host array of part outputs) is NULL");
    valid(&m, 2), m.p.num_rows = 0, m.p.parts_lse = NULL;
    REJECT(m, FAI_ERROR_BAD_PARAM_NULL_POINTER, "parts_lse (the host array of part LSEs) is NULL");
    valid(&m, 2), m.p.num_rows = 0, m.parts[1].dtype = FAI_DTYPE_BF16;
    REJECT(m, FAI_ERROR_NOT_SUPPORTED_DTYPE, "parts[1].dtype (1) is FAI_DTYPE_BF16 but o.dtype is FAI_DTYPE_FP16");
    valid(&m, 2), m.p.num_rows = 0, m.p.lse = (float *)((char *)FAKE(65) + 2);
    REJECT(m, FAI_ERROR_BAD_PARAM_MISALIGNED, "lse (");
    valid(&m, 1), m.p.num_rows = 0;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "one part: %s", fai_last_error());
    valid(&m, 2), m.p.num_rows = 0, m.p.o.dtype = FAI_DTYPE_BF16;
    m.parts[0].dtype = m.parts[1].dtype = FAI_DTYPE_BF16;
    CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "bf16: %s", fai_last_error());
    /* Any multiple of 8 up to 256. */
    for (int d = 8; d <= 256; d += 8) {
        valid(&m, 2), m.p.num_rows = 0, m.p.head_dim = d;
        CHECK(fai_merge_states(&m.p, 0) == FAI_SUCCESS, "head_dim %d: %s", d, fai_last_error());
    }
}

static void test_pair(void)
{
    const fai_tensor good = {FAKE(1), FAI_DTYPE_FP16, 8 * 128, 128};
    fai_tensor b = good, o = good;
    b.data = FAKE(2);
    o.data = FAKE(3);
    const float *la = (const float *)FAKE(4), *lb = (const float *)FAKE(5);
    float *lo = (float *)FAKE(6);
    fai_status s = fai_merge_state(0, 8, 128, good, la, b, lb, o, lo, 0);
    CHECK(s == FAI_SUCCESS, "%s", fai_last_error());
    s = fai_merge_state(5, 8, 128, good, NULL, b, lb, o, lo, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_NULL_POINTER && strstr(fai_last_error(), "fai_merge_state: lse_a is NULL"), "%s",
          fai_last_error());
    s = fai_merge_state(5, 8, 128, good, la, b, (const float *)((char *)lb + 1), o, lo, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_MISALIGNED && strstr(fai_last_error(), "lse_b ("), "%s", fai_last_error());
    fai_tensor bad = b;
    bad.dtype = FAI_DTYPE_BF16;
    s = fai_merge_state(5, 8, 128, good, la, bad, lb, o, lo, 0);
    CHECK(s == FAI_ERROR_NOT_SUPPORTED_DTYPE && strstr(fai_last_error(), "o_b.dtype (1) is FAI_DTYPE_BF16"), "%s",
          fai_last_error());
    bad = good;
    bad.token_stride = 3;
    s = fai_merge_state(5, 8, 128, bad, la, b, lb, o, lo, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_STRIDE && strstr(fai_last_error(), "o_a.token_stride (3)"), "%s", fai_last_error());
    s = fai_merge_state(5, 8, 100, good, la, b, lb, o, lo, 0);
    CHECK(s == FAI_ERROR_NOT_SUPPORTED_HEAD_DIM && strstr(fai_last_error(), "fai_merge_state: head_dim (100)"), "%s",
          fai_last_error());
    o = b;
    o.head_stride = 0; /* one head: head strides do not matter (then lse_b's check fails) */
    s = fai_merge_state(5, 1, 128, good, la, b, NULL, o, lo, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_NULL_POINTER && strstr(fai_last_error(), "lse_b is NULL"), "%s", fai_last_error());
    o.token_stride = 256;
    s = fai_merge_state(5, 1, 128, good, la, b, lb, o, (float *)lb + 1, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_STRIDE && strstr(fai_last_error(), "o aliases o_b"), "%s", fai_last_error());
    o = b;
    s = fai_merge_state(5, 8, 128, good, la, b, lb, o, (float *)lb + 1, 0);
    CHECK(s == FAI_ERROR_BAD_PARAM_STRIDE && strstr(fai_last_error(), "lse (") &&
              strstr(fai_last_error(), "overlaps lse_b"),
          "%s", fai_last_error());
}

int main(void)
{
    test_defaults();
    test_params();
    test_tensors();
    test_lse();
    test_in_place();
    test_zero_rows();
    test_pair();
    if (failures) {
        printf("test_merge_api: %d failures\n", failures);
        return 1;
    }
    printf("test_merge_api: all checks passed\n");
    return 0;
}
