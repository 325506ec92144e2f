/* fai-bench's result files: every row goes to the CSV (--csv) and the JSON file (--json) through
 * one function, so the two always hold the same rows. */
#ifndef FAI_BENCH_REPORT_H
#define FAI_BENCH_REPORT_H

#include <stdio.h>

/* One result row. The CSV columns are those of shared/tools/sdpa_peers.py, then `check` and
 * `commit`:
 *   device,suite,backend,dtype,b,sq,sk,hq,hk,d,causal,prefill_frac,ms,tflops,gbps,note,check,commit
 * A negative ms, tflops or gbps is an empty field (null in JSON). A measured row's note (any of
 * the three set) ends in "flush F; reps N": the run's --flush and the row's timed runs. */
typedef struct report_row {
    const char *suite, *backend, *dtype;
    int b, sq, sk, hq, hk, d, causal;
    const char *prefill_frac; /* "" when not a hybrid row */
    double ms, tflops, gbps;
    const char *note;  /* free text; commas and line breaks become ';' in the CSV */
    const char *check; /* "pass", "FAIL", "n/a", or "" (no --check) */
    int reps;          /* timed runs of the row's median; 0: the run's --reps */
} report_row;

/* What the JSON header object holds (and the CSV's device and commit columns). */
typedef struct report_info {
    const char *device;
    int sms, cc_major, cc_minor, driver, runtime, fai_version;
    const char *commit; /* git describe at configure time, "unknown" outside a checkout */
    const char *date;   /* UTC, ISO 8601 */
    double copy_gbps, read_gbps, gemm_tflops, gemm_ms;
    int gemm_n, check, reps, warmup;
    int argc;
    char **argv;
    const char *flush; /* --flush: "write", "read" or "none" */
} report_info;

/* Opens the files (either path may be NULL) and writes the CSV header line and the JSON header
 * object; 0 on success, -1 (with a message on stderr) when a file cannot be written. The JSON
 * file is finished at exit: "complete": true only after report_close. */
int report_open(const char *csv_path, const char *json_path, const report_info *info);
void report_row_write(const report_row *r);
void report_close(void);
/* Whether a CSV is being written (the tables print a few things only then). */
int report_active(void);

#endif
