/* fai-bench's CSV and JSON output (see bench_report.h). The JSON file is
 *   {"header": {...}, "rows": [{...}, ...], "complete": true}
 * with the rows streamed as they are measured; a run that stops early still leaves a valid
 * file, with "complete": false. */
#include "bench_report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static FILE *g_rcsv, *g_rjson;
static int g_rows_written;
static char g_rdevice[256], g_rcommit[128], g_rflush[16];
static int g_rreps;

/* A CSV field of free text: no commas or line breaks. */
static void csv_text(FILE *f, const char *s)
{
    for (; s && *s; s++)
        fputc(*s == ',' || *s == '\n' || *s == '\r' ? ';' : *s, f);
}

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(f, "\\%c", *p);
        else if (*p == '\n')
            fputs("\\n", f);
        else if (*p == '\t')
            fputs("\\t", f);
        else if (*p < 0x20)
            fprintf(f, "\\u%04x", *p);
        else
            fputc(*p, f);
    }
    fputc('"', f);
}

/* A number with printf format `fmt`, or null when negative or not finite (not measured). */
static void json_number(FILE *f, const char *fmt, double x)
{
    if (x >= 0 && isfinite(x))
        fprintf(f, fmt, x);
    else
        fputs("null", f);
}

static void json_finish(int complete)
{
    if (!g_rjson)
        return;
    fprintf(g_rjson, "%s  ],\n  \"complete\": %s\n}\n", g_rows_written ? "\n" : "", complete ? "true" : "false");
    fclose(g_rjson);
    g_rjson = NULL;
}

static void at_exit_finish(void)
{
    json_finish(0);
    if (g_rcsv) {
        fclose(g_rcsv);
        g_rcsv = NULL;
    }
}

/* The row's note as written: a measured row's ends in "flush F; reps N" (the note of a row
 * that was not timed, a skipped shape's reason, is left as it is). */
static void full_note(char *buf, size_t size, const report_row *r)
{
    snprintf(buf, size, "%s", r->note ? r->note : "");
    if (r->ms < 0 && r->tflops < 0 && r->gbps < 0)
        return;
    const size_t len = strlen(buf);
    snprintf(buf + len, size - len, "%sflush %s; reps %d", len ? "; " : "", g_rflush, r->reps > 0 ? r->reps : g_rreps);
}

int report_active(void)
{
    return g_rcsv != NULL;
}

int report_open(const char *csv_path, const char *json_path, const report_info *in)
{
    snprintf(g_rdevice, sizeof g_rdevice, "%s", in->device);
    snprintf(g_rcommit, sizeof g_rcommit, "%s", in->commit);
    snprintf(g_rflush, sizeof g_rflush, "%s", in->flush ? in->flush : "write");
    g_rreps = in->reps;
    static int registered;
    if (!registered) {
        atexit(at_exit_finish);
        registered = 1;
    }
    if (csv_path) {
        g_rcsv = fopen(csv_path, "w");
        if (!g_rcsv) {
            fprintf(stderr, "fai-bench: cannot write %s\n", csv_path);
            return -1;
        }
        fprintf(g_rcsv, "device,suite,backend,dtype,b,sq,sk,hq,hk,d,causal,prefill_frac,ms,tflops,gbps,note,check,"
                        "commit\n");
    }
    if (json_path) {
        g_rjson = fopen(json_path, "w");
        if (!g_rjson) {
            fprintf(stderr, "fai-bench: cannot write %s\n", json_path);
            return -1;
        }
        FILE *f = g_rjson;
        fputs("{\n  \"header\": {\n    \"tool\": \"fai-bench\",\n    \"fai_version\": ", f);
        fprintf(f, "%d,\n    \"device\": ", in->fai_version);
        json_string(f, in->device);
        fprintf(f, ",\n    \"sms\": %d,\n    \"compute_capability\": \"%d.%d\",\n", in->sms, in->cc_major,
                in->cc_minor);
        fprintf(f, "    \"driver_version\": %d,\n    \"runtime_version\": %d,\n    \"commit\": ", in->driver,
                in->runtime);
        json_string(f, in->commit);
        fputs(",\n    \"date_utc\": ", f);
        json_string(f, in->date);
        fputs(",\n    \"command\": [", f);
        for (int i = 0; i < in->argc; i++) {
            if (i)
                fputs(", ", f);
            json_string(f, in->argv[i]);
        }
        fprintf(f, "],\n    \"reps\": %d,\n    \"warmup\": %d,\n    \"check\": %s,\n    \"flush\": ", in->reps,
                in->warmup, in->check ? "true" : "false");
        json_string(f, g_rflush);
        fputs(",\n", f);
        fputs("    \"ceilings\": {\"copy_gbps\": ", f);
        json_number(f, "%.1f", in->copy_gbps);
        fputs(", \"read_gbps\": ", f);
        json_number(f, "%.1f", in->read_gbps);
        fputs(", \"cublas_tflops\": ", f);
        json_number(f, "%.2f", in->gemm_tflops > 0 ? in->gemm_tflops : -1.0);
        fprintf(f, ", \"cublas_gemm\": \"FP16 %d^3 FP32 accumulate\"}\n  },\n  \"rows\": [", in->gemm_n);
        g_rows_written = 0;
    }
    return 0;
}

void report_row_write(const report_row *r)
{
    char note[1024];
    full_note(note, sizeof note, r);
    if (g_rcsv) {
        FILE *f = g_rcsv;
        csv_text(f, g_rdevice);
        fprintf(f, ",%s,%s,%s,%d,%d,%d,%d,%d,%d,%d,%s,", r->suite, r->backend, r->dtype, r->b, r->sq, r->sk, r->hq,
                r->hk, r->d, r->causal, r->prefill_frac);
        if (r->ms >= 0)
            fprintf(f, "%.5f", r->ms);
        fputc(',', f);
        if (r->tflops >= 0)
            fprintf(f, "%.2f", r->tflops);
        fputc(',', f);
        if (r->gbps >= 0)
            fprintf(f, "%.1f", r->gbps);
        fputc(',', f);
        csv_text(f, note);
        fputc(',', f);
        csv_text(f, r->check);
        fputc(',', f);
        csv_text(f, g_rcommit);
        fputc('\n', f);
        fflush(f);
    }
    if (g_rjson) {
        FILE *f = g_rjson;
        fputs(g_rows_written ? ",\n    {" : "\n    {", f);
        fputs("\"device\": ", f);
        json_string(f, g_rdevice);
        fputs(", \"suite\": ", f);
        json_string(f, r->suite);
        fputs(", \"backend\": ", f);
        json_string(f, r->backend);
        fputs(", \"dtype\": ", f);
        json_string(f, r->dtype);
        fprintf(f, ", \"b\": %d, \"sq\": %d, \"sk\": %d, \"hq\": %d, \"hk\": %d, \"d\": %d, \"causal\": %d", r->b,
                r->sq, r->sk, r->hq, r->hk, r->d, r->causal);
        fputs(", \"prefill_frac\": ", f);
        if (r->prefill_frac && *r->prefill_frac)
            fputs(r->prefill_frac, f); /* Python's repr of a float: a valid JSON number */
        else
            fputs("null", f);
        fputs(", \"ms\": ", f);
        json_number(f, "%.5f", r->ms);
        fputs(", \"tflops\": ", f);
        json_number(f, "%.2f", r->tflops);
        fputs(", \"gbps\": ", f);
        json_number(f, "%.1f", r->gbps);
        fputs(", \"note\": ", f);
        json_string(f, note);
        fputs(", \"check\": ", f);
        json_string(f, r->check);
        fputs(", \"commit\": ", f);
        json_string(f, g_rcommit);
        fputc('}', f);
        fflush(f);
        g_rows_written++;
    }
}

void report_close(void)
{
    json_finish(1);
    if (g_rcsv) {
        fclose(g_rcsv);
        g_rcsv = NULL;
    }
}
