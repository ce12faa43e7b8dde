/* pattn-bench: rows and their machine-readable output (CSV, JSON). The JSON rows have the
 * same keys as the peers' (bench/peers/run_peers.py), so either can be fed to --compare. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"

bench_row *row_new(bench_env *env, const char *suite, const char *op, const char *impl,
                   pattn_dtype dt) {
  if (env->nrows == env->caprows) {
    int cap = env->caprows ? 2 * env->caprows : 64;
    bench_row *r = realloc(env->rows, (size_t)cap * sizeof(*r));
    if (!r) return NULL;
    env->rows = r;
    env->caprows = cap;
  }
  bench_row *r = &env->rows[env->nrows++];
  memset(r, 0, sizeof(*r));
  snprintf(r->suite, sizeof(r->suite), "%s", suite);
  snprintf(r->op, sizeof(r->op), "%s", op);
  snprintf(r->impl, sizeof(r->impl), "%s", impl);
  snprintf(r->dtype, sizeof(r->dtype), "%s", dtype_name(dt));
  r->status = ROW_OK;
  r->device_inputs_mb = -1;
  r->err_max_abs = r->err_rel_l2 = r->err_ref_norm = -1;
  return r;
}

void row_shape(bench_row *r, const char *name, int64_t v) {
  if (r->nshape == BENCH_MAX_SHAPE) return;
  snprintf(r->shape_name[r->nshape], sizeof(r->shape_name[0]), "%s", name);
  r->shape_val[r->nshape++] = v;
}

/* the key is the shape sorted by field name, so C and Python build it the same way */
void row_finish_key(bench_row *r) {
  int idx[BENCH_MAX_SHAPE];
  for (int i = 0; i < r->nshape; i++) idx[i] = i;
  for (int i = 1; i < r->nshape; i++) /* insertion sort: a handful of fields */
    for (int j = i; j > 0 && strcmp(r->shape_name[idx[j - 1]], r->shape_name[idx[j]]) > 0; j--) {
      int t = idx[j];
      idx[j] = idx[j - 1];
      idx[j - 1] = t;
    }
  size_t off = 0;
  r->key[0] = 0;
  for (int i = 0; i < r->nshape && off < sizeof(r->key); i++)
    off += (size_t)snprintf(r->key + off, sizeof(r->key) - off, "%s%s=%lld", i ? " " : "",
                            r->shape_name[idx[i]], (long long)r->shape_val[idx[i]]);
}

void row_fail(bench_row *r, row_status st, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
  va_end(ap);
  for (char *p = r->reason; *p; p++) /* one line, so tables and CSV stay intact */
    if (*p == '\n' || *p == '\r') *p = ' ';
  r->status = st;
}

const char *status_mark(const bench_row *r) { return r->status == ROW_OK ? "✓" : "✗"; }

void fmt_time(char *buf, size_t n, const bench_row *r, int digits) {
  if (r->status != ROW_OK) snprintf(buf, n, "N/A");
  else snprintf(buf, n, "%.*f", digits, r->median);
}

/* GFLOP/s on the CPU backend, TFLOP/s elsewhere; 0 where no FLOP count applies */
double throughput_flops(const bench_env *env, const bench_row *r, const char **unit) {
  *unit = env->is_cpu ? "GFLOP/s" : "TFLOP/s";
  if (r->status != ROW_OK || r->flops <= 0 || r->median <= 0) return 0;
  return r->flops / (r->median * 1e-3) / (env->is_cpu ? 1e9 : 1e12);
}

static const char *status_word(const bench_row *r) {
  return r->status == ROW_OK ? "ok" : r->status == ROW_SKIP ? "skipped" : "failed";
}

static void csv_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '"') fputc('"', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

void report_csv(FILE *f, const bench_env *env) {
  fprintf(f, "suite,op,impl,backend,dtype,key,median_ms,mean_ms,std_ms,min_ms,runs,memory_mb,"
             "workspace_mb,theory_mb,flops,bytes,status,reason,note,max_abs_err,rel_l2_err\n");
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    fprintf(f, "%s,%s,", r->suite, r->op);
    csv_str(f, r->impl);
    fprintf(f, ",%s,%s,", env->backend_name, r->dtype);
    csv_str(f, r->key);
    fprintf(f, ",%.6g,%.6g,%.6g,%.6g,%d,%.4f,%.4f,%.4f,%.6g,%.6g,%s,", r->median, r->mean, r->std,
            r->min, r->runs, r->memory_mb, r->workspace_mb, r->theory_mb, r->flops, r->bytes,
            status_word(r));
    csv_str(f, r->reason);
    fputc(',', f);
    csv_str(f, r->note);
    if (r->err_max_abs >= 0) fprintf(f, ",%.6g,%.6g\n", r->err_max_abs, r->err_rel_l2);
    else fprintf(f, ",,\n");
  }
}

static void json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
    else if (c < 0x20) fprintf(f, "\\u%04x", c);
    else fputc(c, f);
  }
  fputc('"', f);
}

void report_json(FILE *f, const bench_env *env) {
  fprintf(f, "[\n");
  for (int i = 0; i < env->nrows; i++) {
    const bench_row *r = &env->rows[i];
    fprintf(f, "  {\"suite\": ");
    json_str(f, r->suite);
    fprintf(f, ", \"op\": ");
    json_str(f, r->op);
    fprintf(f, ", \"impl\": ");
    json_str(f, r->impl);
    fprintf(f, ", \"backend\": ");
    json_str(f, env->backend_name);
    fprintf(f, ", \"device\": ");
    json_str(f, env->device_name);
    fprintf(f, ", \"dtype\": ");
    json_str(f, r->dtype);
    fprintf(f, ", \"shape\": {");
    for (int k = 0; k < r->nshape; k++)
      fprintf(f, "%s\"%s\": %lld", k ? ", " : "", r->shape_name[k], (long long)r->shape_val[k]);
    fprintf(f, "}, \"key\": ");
    json_str(f, r->key);
    fprintf(f, ",\n   \"time_ms\": {\"median\": %.6g, \"mean\": %.6g, \"std\": %.6g, \"min\": %.6g}, "
               "\"runs\": %d, \"memory_mb\": %.6g, \"workspace_mb\": %.6g, \"theory_mb\": %.6g, "
               "\"inputs_mb\": %.6g, \"device_inputs_mb\": %.6g, "
               "\"flops\": %.6g, \"bytes\": %.6g, \"status\": \"%s\", \"reason\": ",
            r->median, r->mean, r->std, r->min, r->runs, r->memory_mb, r->workspace_mb,
            r->theory_mb, r->inputs_mb, r->device_inputs_mb, r->flops, r->bytes, status_word(r));
    json_str(f, r->reason);
    fprintf(f, ", \"note\": ");
    json_str(f, r->note);
    if (r->err_max_abs >= 0) /* the same keys as run_peers.py's f32acc rows */
      fprintf(f, ",\n   \"max_abs_err\": %.6g, \"rel_l2_err\": %.6g, \"ref_norm\": %.17g",
              r->err_max_abs, r->err_rel_l2, r->err_ref_norm);
    fprintf(f, "}%s\n", i + 1 < env->nrows ? "," : "");
  }
  fprintf(f, "]\n");
}
